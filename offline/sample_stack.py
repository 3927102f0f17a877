"""The offline stack as its clients run it: the template deployed in moto beside a bioindex - its
tables, its stand-in serving them from several processes - with sample indexes loaded. The tests
(tests/stacks.py), `make demo` and `make sandbox` all compose it here; what differs is the database
(MariaDB or SQLite), the flag backend and how the stand-in is restarted after a flag change.
"""

from __future__ import annotations

from pathlib import Path

from offline import standin_hook
from offline.aws import OfflineAWS
from offline.bioindex_db import BioindexDatabase
from offline.bioindex_standin import BioindexStandin
from offline.deployer import DeployedStack
from offline.sample_index import load_index

# How the stack restarts the stand-in's processes after a flag change (the template's ReaderRefresh):
# "hook", the operator's Lambda, here one that restarts the stand-in (offline/standin_hook.py);
# "ecs-service", a new deployment of the bioindex's ECS service, which restarts the stand-in; or one
# that deploys nothing for the stand-in ("confirm", the template's default, where the operator
# restarts it; "requests"; "none").
REFRESHES = ("confirm", "hook", "ecs-service", "requests", "none")


class SampleStack:
    """A stack named `name` in moto, deployed with `parameters`, beside a bioindex stand-in over `db`;
    sample indexes go in with add_index, then start() starts the stand-in. close() stops it."""

    def __init__(
        self,
        aws: OfflineAWS,
        db: BioindexDatabase,
        name: str,
        data_bucket: str,
        *,
        backend: str = "mysql",
        refresh: str = "confirm",
        workers: int = 3,
        token: str | None = None,
        parameters: dict | None = None,
        template: dict | None = None,
    ) -> None:
        if refresh not in REFRESHES:
            raise ValueError(f"refresh is one of {', '.join(REFRESHES)}, not {refresh!r}")
        self.aws, self.db, self.name = aws, db, name
        # FlagBackend=http: the stand-in also serves its copy of the historic set-compressed endpoint.
        self.bioindex = BioindexStandin(
            db, data_bucket, workers=workers, token=token, set_endpoint=backend == "http", env=aws.env
        )
        self.indexes: dict[str, dict[str, bytes]] = {}  # index name -> key -> what was uploaded
        try:
            stack_parameters = {
                "FlagBackend": backend,
                "InsecureBioindexUrl": self.bioindex.url,  # the stand-in serves plain http on loopback
                **self._refresh_parameters(refresh),
                **(parameters or {}),
            }
            self.stack: DeployedStack = aws.deploy(name, data_bucket, stack_parameters, template)
        except BaseException:
            SampleStack.close(self)  # this class's part only: a subclass's close may need a stack
            raise

    def _refresh_parameters(self, refresh: str) -> dict[str, str]:
        if refresh == "hook":
            return standin_hook.parameters(self.aws, f"{self.name}-bioindex-restart", self.bioindex)
        if refresh == "ecs-service":
            ecs = self.aws.client("ecs")
            ecs.create_cluster(clusterName=f"{self.name}-bioindex")
            ecs.register_task_definition(
                family="bioindex", containerDefinitions=[{"name": "bioindex", "image": "bioindex", "memory": 512}]
            )
            ecs.create_service(
                cluster=f"{self.name}-bioindex",
                serviceName="bioindex",
                taskDefinition="bioindex",
                desiredCount=self.bioindex.workers,
            )
            self.aws.runner.restart_service = self._restart_service
            return {
                "ReaderRefresh": "ecs-service",
                "BioindexEcsCluster": f"{self.name}-bioindex",
                "BioindexEcsServices": "bioindex",
                "ReaderRefreshPollSeconds": "1",
            }
        return {"ReaderRefresh": refresh}

    def _restart_service(self, service: str) -> None:
        """A new deployment of the bioindex's ECS service: the stand-in restarts, one process at a time."""
        self.bioindex.restart(pause=0.2)

    def add_index(self, name: str, prefix: str, schema: str, root: Path, key_prefix: str = "") -> dict[str, bytes]:
        """The files under `root` uploaded to the data bucket under `key_prefix` (default: the prefix)
        and indexed as (name, prefix) in the bioindex's tables; key -> content of what was uploaded."""
        uploaded = load_index(
            self.aws.client("s3"), self.stack.data_bucket, self.db, name, prefix, schema, root, key_prefix
        )
        self.indexes[name] = uploaded
        return uploaded

    def start(self, frozen: int = 0) -> None:
        """Start the stand-in's processes; the first `frozen` of them never reload their cached flags
        (a process the refresh cannot reach)."""
        self.bioindex.start(frozen=frozen)

    def close(self) -> None:
        try:
            self.bioindex.close()
        finally:
            if self.aws.runner.restart_service == self._restart_service:  # ours, not another stack's
                self.aws.runner.restart_service = None

    def __enter__(self) -> SampleStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
