"""Which deployed stack to talk to: name and region from the flags, else samconfig.toml (as `sam`
uses them), and the stack's outputs (state machines, run bucket, image repository)."""

from __future__ import annotations

import json
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from batch_job.locations import Location, parse_s3_uri
from batch_job.runfolder import RunFolder, run_folder_uri
from batch_job.stores import S3Store
from bgz.errors import OperatorError

DEFAULT_STACK = "bgzip-workflow"
REQUIRED_OUTPUTS = ("CompressStateMachineArn", "RollbackStateMachineArn", "RunBucketName", "JobRepositoryUri")


def samconfig_defaults(path: Path) -> dict[str, str]:
    """stack_name and region as `sam deploy` reads them (global, then deploy parameters)."""
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            config = tomllib.load(f).get("default", {})
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise OperatorError(
            f"{path} is not valid TOML: {exc}", "fix it, or pass --config with another file, or --stack and --region"
        ) from exc
    if not isinstance(config, dict):
        raise OperatorError(f"{path}: [default] is not a table", "see `sam deploy --guided`, which writes this file")
    values = {}
    for section in ("global", "deploy"):
        values.update({k: v for k, v in config.get(section, {}).get("parameters", {}).items() if isinstance(v, str)})
    return values


def find_samconfig(start: Path) -> Path | None:
    """samconfig.toml in `start` or the nearest folder above it: bgz run from inside the project finds
    the project's, as git finds its repository."""
    for folder in (start, *start.parents):
        if (folder / "samconfig.toml").is_file():
            return folder / "samconfig.toml"
    return None


@dataclass
class Stack:
    name: str
    region: str | None
    profile: str | None = None
    source: str = "--stack"  # where the name came from, said when no such stack is deployed
    _described: dict | None = field(default=None, repr=False)
    _session: boto3.session.Session | None = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_args(cls, stack: str | None, region: str | None, profile: str | None, config: Path | None) -> Stack:
        """The flags, else `config` (default: the nearest samconfig.toml), else the default name."""
        if config is None:
            config = find_samconfig(Path.cwd())
        defaults = samconfig_defaults(config) if config is not None else {}
        if stack:
            source = "--stack"
        elif "stack_name" in defaults:
            source = f"stack_name in {config}"
        else:
            where = config or f"no samconfig.toml in {Path.cwd()} or above"
            source = f"the default name ({where})"
        name = stack or defaults.get("stack_name") or DEFAULT_STACK
        return cls(name, region or defaults.get("region"), profile, source)

    def session(self) -> boto3.session.Session:
        with self._lock:
            if self._session is None:
                self._session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
            return self._session

    def client(self, service: str):
        """One client per service for the stack's life (a command): each new one parses botocore's
        models again, 0.2 s of CPU, and `bgz watch` asks for clients on every poll. Clients are
        thread-safe; making them from the one session is not, hence the lock."""
        return self._client(service, service)

    def _client(self, key: str, service: str, config: Config | None = None):
        session = self.session()
        with self._lock:
            if key not in self._clients:
                self._clients[key] = session.client(service, config=config)
            return self._clients[key]

    def location(self, uri: str) -> Location:
        """An s3:// folder, read and written with this stack's profile and region."""
        bucket, prefix = parse_s3_uri(uri)
        return Location(S3Store(bucket, client=self.client("s3")), prefix, f"s3://{bucket}/{prefix}")

    def run_folder(self, execution_name: str) -> RunFolder:
        """An execution's run folder, read with this stack's profile and region (never the default session)."""
        return RunFolder(self.location(run_folder_uri(self.outputs()["RunBucketName"], execution_name)))

    @property
    def region_name(self) -> str:
        return self.session().region_name or "us-east-1"

    def _description(self) -> dict:
        """The stack as CloudFormation describes it, read once per command."""
        if self._described is None:
            try:
                self._described = self.client("cloudformation").describe_stacks(StackName=self.name)["Stacks"][0]
            except ClientError as exc:
                if "does not exist" in str(exc):
                    raise OperatorError(
                        f"stack {self.name!r} is not deployed in {self.region_name} (the name: {self.source})",
                        "deploy it with `sam build && sam deploy --guided`, or pass --stack/--region",
                    ) from exc
                raise
        return self._described

    def outputs(self) -> dict[str, str]:
        outputs = {o["OutputKey"]: o["OutputValue"] for o in self._description().get("Outputs", [])}
        missing = [k for k in REQUIRED_OUTPUTS if k not in outputs]
        if missing:
            raise OperatorError(
                f"stack {self.name!r} has no output {missing[0]}: it is not a bgzip-workflow stack",
                "pass --stack with the name you deployed bgzip-workflow as",
            )
        return outputs

    def parameters(self) -> dict[str, str]:
        """The stack's parameter values (job size, MaxvCpus, ...)."""
        return {p["ParameterKey"]: p.get("ParameterValue", "") for p in self._description().get("Parameters", [])}

    def invoke(self, output: str, payload: dict) -> dict:
        """Invoke one of the stack's Lambdas (named by its output) and return its result; a function
        error is raised as an OperatorError with the function's own error type and message."""
        name = self.outputs().get(output)
        if not name:
            raise OperatorError(f"stack {self.name!r} has no output {output}", "deploy this version: sam deploy")
        # Plan may list a large prefix for up to its 15 minutes; a retried invoke would list it again.
        client = self._client("lambda, once", "lambda", Config(read_timeout=900, retries={"max_attempts": 1}))
        resp = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
        body = json.loads(resp["Payload"].read() or b"{}")
        if resp.get("FunctionError"):
            raise OperatorError(f"{body.get('errorType', 'Error')}: {body.get('errorMessage', body)}")
        return body

    def has_bulk(self) -> bool:
        return "BulkStateMachineArn" in self.outputs()

    def machine_arn(self, machine: str) -> str:
        """The ARN of the compress, rollback or bulk machine."""
        if machine == "bulk" and not self.has_bulk():
            raise OperatorError(
                f"stack {self.name!r} has no bulk state machine", "deploy this version of bgzip-workflow: sam deploy"
            )
        return self.outputs()[f"{machine.capitalize()}StateMachineArn"]
