"""A fresh offline stack per test: offline/sample_stack.py's stack, as the demo runs it, with the
bioindex's tables in MariaDB, the sample index loaded, and what the tests drive and check besides
(running a machine, holding a job, the calls the roles refused)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from bgz.confirm import confirm
from bgz.stack import Stack
from offline import authorization, recorder
from offline.bioindex_db import BioindexDatabase
from offline.deployer import ACCOUNT, REGION
from offline.recorder import Call
from offline.sample_index import make_sample_index
from offline.sample_stack import SampleStack
from workflow import states

INDEX = "associations"
PREFIX = "associations/"
SCHEMA = "phenotype,chromosome:position"
# Over HTTP sample queries come from /api/bio/keys, which lists no loci: an index without one.
HTTP_SCHEMA = "phenotype,chromosome"


def upload_ca_bundle(s3, bucket: str, pem: str) -> str:
    """The test database's CA where an operator puts the RDS bundle: an S3 object; its s3:// URI."""
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="rds/global-bundle.pem", Body=pem.encode())
    return f"s3://{bucket}/rds/global-bundle.pem"


class Deployment(SampleStack):
    """A fresh stack, data bucket, bioindex database and bioindex stand-in for one test."""

    def __init__(
        self,
        aws,
        tmp_path: Path,
        mariadb,
        *,
        backend: str = "mysql",
        schema: str | None = None,
        subdir: str = "",
        token: str | None = None,
        workers: int = 3,
        frozen: int = 0,
        refresh: str = "hook",
        parameters: dict | None = None,
        lambda_env: dict | None = None,
        managed_secret: bool = False,
        data_bucket_key: bool = False,
        template: dict | None = None,
    ) -> None:
        name = f"bgz{uuid.uuid4().hex[:8]}"
        db = BioindexDatabase(mariadb.url(mariadb.create_schema(name)))
        db.create_tables()
        self.schema = schema or (HTTP_SCHEMA if backend == "http" else SCHEMA)
        self.subdir = subdir
        self.key_prefix = f"{subdir}/{PREFIX}" if subdir else PREFIX
        self.refresh = refresh
        self.confirmations: list[str] = []  # what `bgz confirm` said, ReaderRefresh=confirm
        login = mariadb.secret()
        if managed_secret:  # an RDS-managed master user secret: the host comes from parameters
            login = {k: login[k] for k in ("username", "password")}
            host = {"BioindexDatabaseHost": "127.0.0.1", "BioindexDatabasePort": str(mariadb.port)}
        secret = aws.client("secretsmanager").create_secret(Name=f"{name}-rds", SecretString=json.dumps(login))
        stack_parameters = {
            **(host if managed_secret else {}),
            "BioindexDatabaseSecretArn": secret["ARN"],
            "BioindexDatabaseCaBundle": upload_ca_bundle(aws.client("s3"), f"{name}-config", mariadb.ca_pem),
            "BioindexDatabaseSchema": name,
            "BioindexS3Subdir": subdir,
            "ReaderRefreshRequests": "32",
            "ReaderCheckRequests": "8",
            "Function.Environment": {"BIOINDEX_RETRY_BASE_SECONDS": "0.02", **(lambda_env or {})},
        }
        self.data_key = ""  # data_bucket_key: the data bucket is SSE-KMS with this key (Bucket Keys off)
        if data_bucket_key:
            self.data_key = aws.client("kms").create_key(Description=f"{name} data")["KeyMetadata"]["Arn"]
            stack_parameters["DataBucketKmsKeyArn"] = self.data_key
        self.s3 = aws.client("s3")
        super().__init__(
            aws,
            db,
            name,
            f"{name}-data",
            backend=backend,
            refresh=refresh,
            workers=workers,
            token=token,
            parameters={**stack_parameters, **(parameters or {})},
            template=template,
        )
        # Calls a test makes its components attempt on purpose, which template.yaml's roles refuse.
        self.expected_denials: set[str] = set()
        try:
            self._load(tmp_path, frozen, data_bucket_key)
        except BaseException:
            SampleStack.close(self)  # the fixture never gets this stack: stop its stand-in here
            raise
        self.states: list[str] = []
        self.confirm_automatically = True

    def _load(self, tmp_path: Path, frozen: int, data_bucket_key: bool) -> None:
        """The data bucket's encryption, the sample index, the stand-in started."""
        if data_bucket_key:
            default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.data_key}
            self.s3.put_bucket_encryption(
                Bucket=self.stack.data_bucket,
                ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": default}]},
            )
        root = tmp_path / "index"
        make_sample_index(root, ascii_keys=True)
        self.originals = self.add_index(INDEX, PREFIX, self.schema, root, self.key_prefix)
        self.row_id = self.db.row_id(INDEX, PREFIX)
        self.json_keys = sorted(k for k in self.originals if k.endswith(".json"))
        self.start(frozen=frozen)

    def confirm_when_asked(self, state: str) -> None:
        """ReaderRefresh=confirm: what the operator does when asked - restart the bioindex, `bgz confirm`."""
        if not state.endswith(" confirmation"):
            return
        stack = Stack(self.name, "us-east-1")
        arn = next(
            e["executionArn"]
            for e in self.aws.client("stepfunctions").list_executions(
                stateMachineArn=self.stack.compress_arn if self.machine == "compress" else self.stack.rollback_arn
            )["executions"]
            if e["name"] == self.execution
        )
        description = self.aws.client("stepfunctions").describe_execution(executionArn=arn)
        revert = states.main_state(state) == states.RELOAD_OLD_FLAG
        deadline = time.monotonic() + 60
        while (found := stack.run_folder(self.execution).read_refresh(revert)) is None or not found.task_token:
            assert time.monotonic() < deadline, "the confirmation state recorded no task token"
            time.sleep(0.1)
        self.bioindex.restart()
        self.confirmations.append(confirm(stack, description))

    def add_index(self, name: str, prefix: str, schema: str, root: Path, key_prefix: str = "") -> dict[str, bytes]:
        """Another index with its own files, under the stack's subdir if it has one."""
        key_prefix = key_prefix or (f"{self.subdir}/{prefix}" if self.subdir else prefix)
        return super().add_index(name, prefix, schema, root, key_prefix)

    def data_keys(self) -> set[str]:
        resp = self.s3.list_objects_v2(Bucket=self.stack.data_bucket, Prefix=self.key_prefix)
        return {o["Key"] for o in resp.get("Contents", [])}

    def read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.stack.data_bucket, Key=key)["Body"].read()

    def run(self, machine: str = "compress", index: str = INDEX, prefix: str = PREFIX, **extra) -> dict:
        arn = self.stack.compress_arn if machine == "compress" else self.stack.rollback_arn
        execution_input = {"index": index, "prefix": prefix, **extra}
        self.machine, self.execution = machine, f"{machine}-{uuid.uuid4().hex[:8]}"

        def on_state(state: str) -> None:
            self.states.append(state)
            if self.refresh == "confirm" and self.confirm_automatically:
                self.confirm_when_asked(state)

        return self.aws.run(arn, execution_input, self.execution, on_state=on_state)

    def locks(self) -> list[str]:
        """The prefix locks held in the data bucket."""
        resp = self.s3.list_objects_v2(Bucket=self.stack.data_bucket, Prefix=".bgzip-workflow/locks/")
        return [o["Key"] for o in resp.get("Contents", [])]

    def flag(self, index: str = INDEX, prefix: str = PREFIX) -> bool | None:
        return self.db.compressed(index, prefix)

    def hold_job(self, suffix: str) -> tuple[threading.Event, threading.Event]:
        """Hold the jobs whose names end with `suffix` (e.g. "-compress") until the test sets `let_go`,
        as if they ran long; each then fails, as a job TerminateJob killed does. (started, let_go)."""
        started, let_go = threading.Event(), threading.Event()

        def hold(job_name: str) -> None:
            if job_name.endswith(suffix):
                started.set()
                let_go.wait(60)
                raise RuntimeError("the container was killed by TerminateJob")  # it never did its work

        self.aws.runner.before_job = hold
        return started, let_go

    def originals_intact(self) -> bool:
        keys = self.data_keys()
        return all(k in keys and self.read(k) == self.originals[k] for k in self.json_keys)

    def calls(self) -> list[Call]:
        """Every AWS call this stack's jobs, Lambdas and state machines made so far."""
        return recorder.read(self.aws.calls, self.name)

    def denied(self) -> list[str]:
        """The calls their roles would not allow on AWS (offline/authorization.py)."""
        return authorization.denied(self.stack, self.calls(), REGION, ACCOUNT)

    def close(self) -> None:
        super().close()
        self.aws.runner.before_job = None
        self.aws.runner.before_invoke = None
        # Every test's runs, failures included, stay within their roles.
        denied = [line for line in self.denied() if line not in self.expected_denials]
        assert not denied, "calls the stack's roles do not allow:\n" + "\n".join(denied)
