"""Records every AWS API call the offline stack's components make, for the least-privilege check
(offline/authorization.py): which component, which operation, on what, and with what outcome.

Jobs and Lambdas run in their own processes: with BGZIP_CALL_LOG set, `install()` makes each append
one JSON line per call to that folder, in a file per component and process (so one stack's calls are
read without the others'), the component named by BGZIP_COMPONENT. The state
machines' service integrations run in the moto server's threads: `acting_as` names the component
for the calls made in one thread. A job's or Lambda's calls are also refused, as AWS would, when its
role does not allow them (offline/authorization.py's Enforcer).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CALL_LOG = "BGZIP_CALL_LOG"
ACCOUNT = "123456789012"  # moto's default account, the offline stack's
REGION = "us-east-1"  # the offline stack's region
COMPONENT = "BGZIP_COMPONENT"
# The parameters that name what a call acts on (and, for S3, whether a delete is conditional);
# bodies and payloads are never recorded.
NAMING = (
    "Bucket",
    "Key",
    "IfMatch",
    "CopySource",
    "FunctionName",
    "jobQueue",
    "jobDefinition",
    "jobId",
    "stateMachineArn",
    "executionArn",
    "SecretId",
    "TopicArn",
    "cluster",
    "service",
    "services",
)


@dataclass(frozen=True)
class Call:
    component: str  # "function:NAME", "job-definition:NAME" or "state-machine:NAME"
    service: str  # botocore's service name: s3, stepfunctions, batch, ...
    operation: str  # the API operation: PutObject, SubmitJob, ...
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the error code, if the call failed


_thread = threading.local()
_lock = threading.Lock()


@contextlib.contextmanager
def acting_as(component: str) -> Iterator[None]:
    """Calls this thread makes inside the block are the named component's."""
    before = getattr(_thread, "component", None)
    _thread.component = component
    try:
        yield
    finally:
        _thread.component = before


def _naming(params: dict[str, Any]) -> dict[str, Any]:
    kept = {name: params[name] for name in NAMING if name in params}
    if "Delete" in params:  # DeleteObjects: each key, and whether it carries the ETag it must still have
        kept["Objects"] = [{"Key": o["Key"], "ETag": o.get("ETag")} for o in params["Delete"]["Objects"]]
    return kept


def install(folder: str | Path, component: str | None = None, enforce: bool = False) -> None:
    """Record every botocore call of this process to `folder`; calls made outside `acting_as` are
    the `component`'s, or, without one, not recorded (the harness's own calls). With `enforce`, the
    component's calls are first decided against its role (offline/authorization.py's Enforcer)."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    if getattr(BaseClient, "_bgzip_recorded", None) is not None:
        return
    original = BaseClient._make_api_call
    folder = Path(folder)
    enforcer = None
    if enforce and component is not None:
        from offline.authorization import Enforcer

        enforcer = Enforcer(folder, component, os.environ.get("AWS_REGION", REGION), ACCOUNT)

    def _make_api_call(self, operation_name: str, api_params: dict) -> Any:
        who = getattr(_thread, "component", None) or component
        if who is None:
            return original(self, operation_name, api_params)
        call = Call(who, self.meta.service_model.service_name, operation_name, _naming(api_params))
        error = None
        try:
            if enforcer is not None:
                return enforcer.make(call, api_params, lambda params: original(self, operation_name, params))
            return original(self, operation_name, api_params)
        except ClientError as exc:
            error = exc.response.get("Error", {}).get("Code", "ClientError")
            raise
        finally:
            path = folder / f"calls-{who.replace(':', '_')}-{os.getpid()}.jsonl"
            with _lock, path.open("a") as out:
                out.write(json.dumps({**call.__dict__, "error": error}) + "\n")

    BaseClient._bgzip_recorded = original
    BaseClient._make_api_call = _make_api_call


def install_from_environment() -> None:
    """What a job's or a Lambda's process calls first: records if the offline runner asked for it."""
    if os.environ.get(CALL_LOG):
        install(os.environ[CALL_LOG], os.environ[COMPONENT], enforce=True)


def read(folder: str | Path, stack: str = "") -> list[Call]:
    """The calls recorded in `folder`; with `stack`, only those of that offline stack's components
    (named "<kind>:<stack>-<name>")."""
    calls = []
    for path in sorted(Path(folder).glob(f"calls-*_{stack}-*.jsonl" if stack else "calls-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                calls.append(Call(**json.loads(line)))
    return calls
