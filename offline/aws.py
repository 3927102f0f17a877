"""The stack, offline: a moto server runs the real ASL files, whose Batch jobs run the real
`bgzip-job` and whose Lambda invokes run the real handlers, all against moto's S3.

What comes from the repository, unchanged: statemachine/*.asl.json, the handlers and their
Handler strings and environment, and each job definition's command, parameters and environment
from template.yaml. What moto stands in for: the AWS APIs. Seven hooks into moto's internals make that
work; they touch private code, so moto is pinned exactly and
tests/test_offline_aws.py fails loudly when an upgrade breaks them:

1. Batch and Step Functions (startExecution) parameters and responses are mapped between the ASL's
   PascalCase and the service APIs through botocore's service model (moto 5.2.5 leaves that
   normalisation as a stub).
2. A `.sync` task is given no callback endpoint, so a Retry does not reuse the interrupted
   endpoint of the previous attempt; it looks at its job every 0.05 s (moto: 0.5 s), and a state's
   Retry waits a tenth of its interval (moto: all of it). Attempts, their order and their errors are
   AWS's; only the test waits less. StopExecution makes an execution ABORTED at once, as AWS does
   (moto: only once its running state returns), so a Lambda still working sees it stopped.
3. A submitted Batch job runs its container command in a fresh process (Ref:: parameters substituted,
   AWS_BATCH_JOB_ARRAY_INDEX set for array children) and ends SUCCEEDED or FAILED by its exit code,
   with AWS's status reason; a Lambda invoke runs the function's handler in a fresh process with the
   function's environment, and its log ends with Lambda's REPORT line (duration, peak memory). The
   processes are forked from a zygote that has the libraries imported (offline/warm_start.py).
4. DeleteObjects honours each object's ETag as S3 does (moto 5.2.5 ignores it): an object whose
   ETag differs is kept and reported with the error code PreconditionFailed; so is a key the bucket
   policy denies s3:DeleteObject to everyone on, with AccessDenied.
5. A state's service integration calls are recorded as its state machine's (offline/recorder.py),
   as the jobs' and the Lambdas' own calls are, for the least-privilege check.
6. ECS UpdateService with forceNewDeployment starts a deployment as ECS does - IN_PROGRESS beside the
   old one, which keeps its tasks - and has the runner replace the service's processes
   (`Runner.restart_service`, e.g. the bioindex stand-in's rolling restart); then the deployment is
   COMPLETED and the old one gone, or FAILED (a circuit breaker) if the restart failed.
7. Service Quotas answers for AWS Fargate's vCPU quotas (moto knows only the VPC's): the account's
   values are `Runner.quotas`, AWS's published defaults unless a test lowers them.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import fnmatch
import html
import io
import json
import logging
import os
import re
import signal
import socket
import tempfile
import threading
import time
import types
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import moto
import requests
from botocore import xform_name
from botocore.session import get_session
from moto.server import ThreadedMotoServer

from offline import authorization, cfn_yaml, recorder
from offline.intrinsics import Intrinsics, parameter_errors, parameter_values
from offline.warm_start import Zygote

ROOT = Path(__file__).resolve().parent.parent
PINNED_MOTO = "5.2.5"
# The stack parameters `bgz` reads: sizes, to estimate time and cost; where the bioindex's prefixes are.
SIZING = ("MaxvCpus", "JobVcpus", "JobMemoryMiB", "UseSpot", "BioindexS3Subdir")
REGION = "us-east-1"
ACCOUNT = recorder.ACCOUNT
# AWS Fargate's vCPU quotas, On-Demand and Spot, at AWS's published defaults.
FARGATE_QUOTAS = {"L-3032A538": 4000.0, "L-36FBB829": 4000.0}
SYNC_POLL_SECONDS = 0.05  # how often a .sync task looks at its Batch job (moto: 0.5 s)
RETRY_WAIT_SCALE = 0.1  # of a Retry's IntervalSeconds (with its backoff) that the offline stack waits
MOTO_CONFIG = {
    "batch": {"use_docker": False},
    "lambda": {"use_docker": False},
    "stepfunctions": {"execute_state_machine": True},
}


# ---- hooks into moto -------------------------------------------------------------------------


def _operation(service: str, action: str):
    model = get_session().get_service_model(service)
    names = {xform_name(name): name for name in model.operation_names}
    name = names.get(action) or names.get(xform_name(action))
    return model.operation_model(name) if name else None


def _normalise_parameters_by_model(self, parameters, boto_service_name=None, service_action_name=None):
    op = _operation(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
    if op is not None and op.input_shape is not None:
        self._to_boto_request(parameters, op.input_shape)


def _normalise_response_by_model(self, response, boto_service_name=None, service_action_name=None):
    op = _operation(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
    if op is not None and op.output_shape is not None:
        self._from_boto_response(response, op.output_shape)


@dataclass
class Runner:
    """Runs what the offline stack's jobs and functions do, and keeps their logs."""

    env: dict[str, str]
    job_logs: list[dict] = field(default_factory=list)
    lambda_logs: list[dict] = field(default_factory=list)
    # Called with the job name before a job runs: lets a test play a concurrent writer.
    before_job: Callable[[str], None] | None = None
    # Called with the function name before a Lambda runs: lets a test change the world between states.
    before_invoke: Callable[[str], None] | None = None
    # Function name -> its CloudWatch log group (the template's LoggingConfig), set by deploy.
    log_groups: dict[str, str] = field(default_factory=dict)
    # Called with an ECS service's name when a new deployment of it starts: replaces its processes,
    # returning when every one has been replaced (raising if the deployment fails).
    restart_service: Callable[[str], None] | None = None
    # The account's AWS Fargate quotas (Service Quotas code -> vCPUs), as `bgz selftest` reads them.
    quotas: dict[str, float] = field(default_factory=lambda: dict(FARGATE_QUOTAS))
    _started: Zygote | None = None
    _zygote_lock: threading.Lock = field(default_factory=threading.Lock)

    def _log(self, group: str, stream: str, text: str) -> None:
        """Write a process's output to CloudWatch Logs (moto's), one event per line, as AWS does."""
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            return
        logs = boto3.client("logs", region_name=REGION, endpoint_url=self.env["AWS_ENDPOINT_URL"])
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in lines]
        for start in range(0, len(events), 1000):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start : start + 1000])

    def run_job(self, job) -> None:
        if self.before_job is not None:
            self.before_job(job.job_name)
        container = job.job_definition.container_properties or {}
        params = {**job.job_definition.parameters, **job.parameters}
        command = [
            params.get(arg[len("Ref::") :], arg) if arg.startswith("Ref::") else arg
            for arg in job.container_overrides.get("command") or container["command"]
        ]
        env = dict(self.env)
        env.update({e["name"]: e["value"] for e in container.get("environment", [])})
        env.update({e["name"]: e["value"] for e in job.container_overrides.get("environment", [])})
        env["AWS_BATCH_JOB_ID"] = job.job_id
        log_options = container.get("logConfiguration", {}).get("options", {})
        job.log_stream_name = f"{log_options.get('awslogs-stream-prefix', 'job')}/default/{job.job_id}"
        env[recorder.COMPONENT] = f"job-definition:{job.job_definition.name}"
        if "index" in job.array_properties:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.array_properties["index"])
        with self._files("log") as (log,):  # stdout and stderr in one log, as awslogs keeps them
            runtime = ROOT / "offline" / "job_runtime.py"
            code = self._zygote().run(runtime, command, env, ROOT, os.devnull, log, log).code
            output = Path(log).read_text(errors="replace")
        self.job_logs.append({"job": job.job_name, "id": job.job_id, "command": command, "exit": code, "log": output})
        if "awslogs-group" in log_options:
            self._log(log_options["awslogs-group"], job.log_stream_name, output)
        job.exit_code = code
        if code:
            # What AWS Batch says for any non-zero exit: nothing of what the container printed.
            job.job_stopped_reason = "Essential container in task exited"

    def invoke(self, function, body: bytes) -> tuple[bytes, bool]:
        if self.before_invoke is not None:
            self.before_invoke(function.function_name)
        env = dict(self.env)
        env.update(function.environment_vars)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
                recorder.COMPONENT: f"function:{function.function_name}",
                "FUNCTION_ARN": function.function_arn,
                "POWERTOOLS_TRACE_DISABLED": "true",
                # The function's package, and the engine as EngineLayer brings it.
                "PYTHONPATH": f"{ROOT / 'lambdas'}{os.pathsep}{ROOT}",
            }
        )
        with self._files("event", "result", "log") as (event, result, log):
            Path(event).write_bytes(body or b"{}")
            runtime = ROOT / "offline" / "lambda_runtime.py"
            started = time.monotonic()
            ended = self._zygote().run(runtime, [function.handler], env, ROOT / "lambdas", event, result, log)
            duration = time.monotonic() - started
            payload, text = Path(result).read_bytes(), Path(log).read_text(errors="replace")
        # The line Lambda ends each invoke's log with (the tests read Max Memory Used from it).
        text += (
            f"REPORT Duration: {duration * 1000:.2f} ms\tMemory Size: {function.memory_size} MB\t"
            f"Max Memory Used: {ended.max_rss // 2**20} MB\n"
        )
        if ended.code != 0 and not payload.strip():
            payload = _runtime_exit(ended.code)
        self.lambda_logs.append({"function": function.function_name, "log": text})
        if function.function_name in self.log_groups:
            stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
            self._log(self.log_groups[function.function_name], stream, text)
        return payload, ended.code != 0

    def _zygote(self) -> Zygote:
        with self._zygote_lock:
            if self._started is None:
                self._started = Zygote()
            return self._started

    @contextlib.contextmanager
    def _files(self, *names: str) -> Iterator[tuple[str, ...]]:
        """Paths for one run's standard streams, removed after it."""
        with tempfile.TemporaryDirectory(prefix="bgzip-run-") as folder:
            paths = tuple(str(Path(folder) / name) for name in names)
            for path in paths:
                Path(path).touch()
            yield paths

    def close(self) -> None:
        if self._started is not None:
            self._started.close()
            self._started = None


_runner: Runner | None = None


def _finish_job_for_real(self, include_start_attempt: bool, job) -> None:
    """Replaces moto's 'mark every job SUCCEEDED at submit' with running it."""
    from moto.batch.utils import JobStatus

    self.backend._jobs[job.job_id] = job
    job.job_started_at = datetime.datetime.now()
    job.log_stream_name = job._stream_name
    if include_start_attempt:
        job._start_attempt()
    job.status = JobStatus.RUNNING

    def array_parent() -> None:
        while job._child_jobs is None:
            time.sleep(0.05)
        while not all(child.job_stopped for child in job._child_jobs):
            time.sleep(0.1)
        failed = sum(child.status == JobStatus.FAILED for child in job._child_jobs)
        if failed:
            job.job_stopped_reason = f"{failed} of {len(job._child_jobs)} child jobs failed"
        job._mark_stopped(success=not failed)

    def single() -> None:
        try:
            _runner.run_job(job)
        except Exception as exc:  # a harness error must fail the job, not hang the execution
            job.exit_code, job.job_stopped_reason = 99, f"offline runner error: {exc}"
        job._mark_stopped(success=job.exit_code == 0)

    target = array_parent if "size" in job.array_properties else single
    threading.Thread(target=target, daemon=True).start()


def _runtime_exit(code: int) -> bytes:
    """What Lambda answers when its runtime dies without an answer (killed, out of memory, os._exit)."""
    how = f"signal: {signal.strsignal(-code).lower()}" if code < 0 else f"exit status {code}"
    message = f"RequestId: {uuid.uuid4()} Error: Runtime exited with error: {how}"
    return json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message}).encode()


def _invoke_for_real(self, function_name, qualifier, body, headers, response_headers):
    function = self.get_function(function_name, qualifier)
    payload, failed = _runner.invoke(function, body if isinstance(body, bytes) else (body or "").encode())
    if failed:
        response_headers["x-amz-function-error"] = "Unhandled"
    return payload


def _ecs_deployments(original):
    def update_service(self, service_properties):
        force = service_properties.get("force_new_deployment", False)
        service = original(self, service_properties)
        if not force or not service.deployments or _runner.restart_service is None:
            return service
        new = service.deployments[0]  # moto gave it a new id in place
        old = dict(new, id=f"ecs-svc/{uuid.uuid4().int % 10**18}", status="ACTIVE", rolloutState="COMPLETED")
        old.update(runningCount=service.desired_count, pendingCount=0)
        new.update(rolloutState="IN_PROGRESS", runningCount=0, pendingCount=service.desired_count)
        new["rolloutStateReason"] = f"ECS deployment {new['id']} in progress."
        service.deployments = [new, old]

        def roll() -> None:
            try:
                _runner.restart_service(service.name)
            except Exception as exc:  # as a deployment circuit breaker: the old deployment stays
                new.update(rolloutState="FAILED", failedTasks=service.desired_count, pendingCount=0)
                new["rolloutStateReason"] = f"ECS deployment circuit breaker: tasks failed to start ({exc})."
                return
            new.update(runningCount=service.desired_count, pendingCount=0, rolloutState="COMPLETED")
            new["rolloutStateReason"] = f"ECS deployment {new['id']} completed."
            service.deployments = [new]

        threading.Thread(target=roll, daemon=True).start()
        return service

    return update_service


_precondition_failed = threading.local()  # this thread's DeleteObjects keys kept: key -> (code, message)
PRECONDITION_FAILED = "At least one of the pre-conditions you specified did not hold"


def _fargate_quotas(original):
    def get_service_quota(self, service_code: str, quota_code: str) -> dict:
        if service_code == "fargate" and quota_code in _runner.quotas:
            return {
                "ServiceCode": service_code,
                "QuotaCode": quota_code,
                "QuotaName": "Fargate vCPU resource count",
                "Value": _runner.quotas[quota_code],
                "Unit": "None",
                "Adjustable": True,
            }
        return original(self, service_code, quota_code)

    return get_service_quota


def _denied_deletes(bucket) -> list[str]:
    """The object ARN patterns the bucket policy denies s3:DeleteObject to everyone on: S3 checks
    each key of a DeleteObjects against them (moto 5.2.5 does not)."""
    if not bucket.policy:
        return []
    statements = json.loads(bucket.policy).get("Statement", [])
    patterns = []
    for st in statements if isinstance(statements, list) else [statements]:
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = st.get("Resource", [])
        everyone = st.get("Principal") in ("*", {"AWS": "*"}) and "Condition" not in st
        deletes = any(fnmatch.fnmatchcase("s3:DeleteObject", a) for a in actions)
        if st.get("Effect") == "Deny" and everyone and deletes:
            patterns += [resources] if isinstance(resources, str) else resources
    return patterns


def _conditional_delete_objects(original):
    def delete_objects(self, bucket_name, objects, bypass_retention=False):
        bucket = self.get_bucket(bucket_name)
        denied = _denied_deletes(bucket)
        kept, failed = [], {}
        for obj in objects:
            key = bucket.keys.get(obj["Key"])
            wanted = str(obj.get("ETag") or "").strip('"')
            if any(fnmatch.fnmatchcase(f"arn:aws:s3:::{bucket_name}/{obj['Key']}", p) for p in denied):
                failed[obj["Key"]] = ("AccessDenied", "Access Denied")
            elif wanted and key is not None and key.etag.strip('"') != wanted:
                failed[obj["Key"]] = ("PreconditionFailed", PRECONDITION_FAILED)
            else:
                kept.append(obj)
        _precondition_failed.keys = failed
        deleted, errored = original(self, bucket_name, kept, bypass_retention)
        return deleted, errored + list(failed)

    return delete_objects


def _precondition_failed_errors(original):
    def delete_keys(self, *args, **kwargs):
        _precondition_failed.keys = {}
        status, headers, body = original(self, *args, **kwargs)
        failed = _precondition_failed.keys
        if failed:
            text = body.decode() if isinstance(body, bytes) else body

            def relabel(match: re.Match) -> str:
                block = match.group(0)
                key = html.unescape(re.search(r"<Key>(.*?)</Key>", block).group(1))
                if key not in failed:
                    return block
                code, message = failed[key]
                block = re.sub(r"<Code>.*?</Code>", f"<Code>{code}</Code>", block)
                return re.sub(r"<Message>.*?</Message>", f"<Message>{message}</Message>", block)

            text = re.sub(r"<Error>.*?</Error>", relabel, text, flags=re.S)
            body = text.encode() if isinstance(body, bytes) else text
        return status, headers, body

    return delete_keys


def install_hooks(runner: Runner) -> None:
    """Patch moto's private internals (see the module docstring); refuses any other moto version."""
    global _runner
    if moto.__version__ != PINNED_MOTO:
        raise RuntimeError(f"the offline stack hooks moto {PINNED_MOTO} internals; found moto {moto.__version__}")
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.batch_simple.models import BatchSimpleBackend
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_batch,
        state_task_service_callback,
        state_task_service_sfn,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.backend.execution import Execution

    batch_task = state_task_service_batch.StateTaskServiceBatch
    batch_task._normalise_parameters = _normalise_parameters_by_model
    batch_task._normalise_response = _normalise_response_by_model

    sfn_task = state_task_service_sfn.StateTaskServiceSfn
    original_sfn_parameters = getattr(sfn_task, "_bgzip_original_normalise_parameters", sfn_task._normalise_parameters)
    sfn_task._bgzip_original_normalise_parameters = original_sfn_parameters

    def _sfn_normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        original_sfn_parameters(self, parameters, boto_service_name, service_action_name)  # Input as JSON text
        _normalise_parameters_by_model(self, parameters, boto_service_name, service_action_name)

    sfn_task._normalise_parameters = _sfn_normalise_parameters
    sfn_task._normalise_response = _normalise_response_by_model

    callback_task = state_task_service_callback.StateTaskServiceCallback
    original_eval_sync = getattr(callback_task, "_bgzip_original_eval_sync", callback_task._eval_sync)
    callback_task._bgzip_original_eval_sync = original_eval_sync

    def _eval_sync(self, env, sync_resolver, timeout_seconds, callback_endpoint, heartbeat_endpoint):
        if self.resource.condition == ResourceCondition.Sync:
            callback_endpoint = None
        return original_eval_sync(
            self,
            env=env,
            sync_resolver=sync_resolver,
            timeout_seconds=timeout_seconds,
            callback_endpoint=callback_endpoint,
            heartbeat_endpoint=heartbeat_endpoint,
        )

    callback_task._eval_sync = _eval_sync
    # The retrier's only use of `time` is its sleep.
    retrier_decl.time = types.SimpleNamespace(sleep=lambda seconds: time.sleep(seconds * RETRY_WAIT_SCALE))

    # StopExecution: ABORTED at once, as on AWS (moto: only once the running state has returned).
    original_stop = getattr(Execution, "_bgzip_original_stop", Execution.stop)
    Execution._bgzip_original_stop = original_stop

    def stop(self, stop_date, error, cause):
        original_stop(self, stop_date=stop_date, error=error, cause=cause)
        if self.exec_status == ExecutionStatus.RUNNING:
            self.exec_status, self.stop_date = ExecutionStatus.ABORTED, stop_date

    Execution.stop = stop
    # moto looks at a .sync task's job every 0.5 s: half a second lost per Batch state, a third of a
    # test run. Step Functions' own latency is not something any test measures.
    state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = SYNC_POLL_SECONDS

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask

    def recorded(eval_execution):
        def _eval_execution(self, env) -> None:
            machine = env.states.context_object.context_object_data["StateMachine"]["Name"]
            with recorder.acting_as(f"state-machine:{machine}"):
                return eval_execution(self, env)

        _eval_execution._bgzip_recorded = True
        return _eval_execution

    pending = [StateTask]
    while pending:
        task = pending.pop()
        pending.extend(task.__subclasses__())
        own = task.__dict__.get("_eval_execution")
        if own is not None and not getattr(own, "_bgzip_recorded", False):
            task._eval_execution = recorded(own)
    BatchSimpleBackend._mark_job_as_finished = _finish_job_for_real
    LambdaSimpleBackend.invoke = _invoke_for_real

    from moto.ecs.models import EC2ContainerServiceBackend

    if not hasattr(EC2ContainerServiceBackend, "_bgzip_original_update_service"):
        EC2ContainerServiceBackend._bgzip_original_update_service = EC2ContainerServiceBackend.update_service
    EC2ContainerServiceBackend.update_service = _ecs_deployments(
        EC2ContainerServiceBackend._bgzip_original_update_service
    )

    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    if not hasattr(S3Backend, "_bgzip_original_delete_objects"):
        S3Backend._bgzip_original_delete_objects = S3Backend.delete_objects
        S3Response._bgzip_original_delete_keys = S3Response._bucket_response_delete_keys
    S3Backend.delete_objects = _conditional_delete_objects(S3Backend._bgzip_original_delete_objects)
    S3Response._bucket_response_delete_keys = _precondition_failed_errors(S3Response._bgzip_original_delete_keys)

    from moto.servicequotas.models import ServiceQuotasBackend

    if not hasattr(ServiceQuotasBackend, "_bgzip_original_get_service_quota"):
        ServiceQuotasBackend._bgzip_original_get_service_quota = ServiceQuotasBackend.get_service_quota
    ServiceQuotasBackend.get_service_quota = _fargate_quotas(ServiceQuotasBackend._bgzip_original_get_service_quota)
    _runner = runner


# ---- the stack from template.yaml ------------------------------------------------------------


def load_template() -> dict:
    """A fresh copy each time: the SAM transform changes what it is given."""
    return cfn_yaml.loads((ROOT / "template.yaml").read_text())


def resolve(value: Any, refs: dict[str, Any], conditions: dict[str, Any] | None = None) -> Any:
    """Resolve the intrinsics the template uses in environments, substitutions and event patterns."""
    return Intrinsics(refs, conditions).resolve(value)


@dataclass
class DeployedStack:
    """What `OfflineAWS.deploy` created: its buckets, state machines and every resource's physical id."""

    name: str
    data_bucket: str
    run_bucket: str
    compress_arn: str
    rollback_arn: str
    refs: dict[str, str]

    @property
    def bulk_arn(self) -> str:
        return self.refs["BulkStateMachine"]


class OfflineAWS:
    """A moto server on loopback with the hooks installed; `deploy` creates the stack in it."""

    def __init__(self, port: int = 0) -> None:
        """On `port` of loopback (default: a free one)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "MOTO_PORT": str(self.port),
        }
        # Every AWS call of the stack's jobs, Lambdas and state machines (offline/recorder.py).
        self.calls = Path(tempfile.mkdtemp(prefix="bgzip-calls-"))
        self.runner = Runner({**os.environ, **self.env, "PYTHONPATH": str(ROOT), recorder.CALL_LOG: str(self.calls)})
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)

    def start(self) -> OfflineAWS:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        os.environ.update(self.env)
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            os.environ.pop(name, None)
        self._server.start()
        requests.post(f"{self.endpoint}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
        install_hooks(self.runner)
        recorder.install(self.calls)
        return self

    def stop(self) -> None:
        self._server.stop()
        self.runner.close()

    def client(self, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)

    def create_function(
        self,
        name: str,
        handler: str,
        variables: dict[str, str],
        timeout: int = 60,
        role: str | None = None,
        memory: int = 128,
    ) -> dict:
        """A Lambda function whose invokes run `handler` (found from lambdas/, or the repository root)."""
        if role is None:
            trust = json.dumps({"Version": "2012-10-17", "Statement": []})
            role = self.client("iam").create_role(RoleName=f"{name}-offline", AssumeRolePolicyDocument=trust)["Role"]
            role = role["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as zf:
            zf.writestr("README", "the offline runner loads the handler from lambdas/")
        return self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=handler,
            Code={"ZipFile": code.getvalue()},
            Environment={"Variables": variables},
            Timeout=timeout,
            MemorySize=memory,
        )

    def deploy(
        self, stack: str, data_bucket: str, parameters: dict[str, str], template: dict | None = None
    ) -> DeployedStack:
        """Create the template's resources in moto: buckets, Batch, the Lambdas, the state machines (in the
        template's order: the bulk machine, which names the other two, comes after them). `template`:
        another than template.yaml, e.g. one whose role grants more, to show what a check catches."""
        given = template
        template = copy.deepcopy(given) if given is not None else load_template()
        resources = template["Resources"]
        s3, batch, sfn, iam = (self.client(n) for n in ("s3", "batch", "stepfunctions", "iam"))
        run_bucket = f"{stack}-runs"
        refs = parameter_values(template, {**parameters, "DataBucket": data_bucket})
        names = Intrinsics(refs, template["Conditions"])  # resolves with refs as they fill in below
        refused = parameter_errors(template, refs)
        if refused:  # as CloudFormation would, before creating anything
            raise ValueError(f"stack {stack} refused: " + "; ".join(refused))
        for bucket in (data_bucket, run_bucket):
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=bucket)
        refs |= {
            "AWS::StackName": stack,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "RunBucket": run_bucket,
            "RunBucket.Arn": f"arn:aws:s3:::{run_bucket}",
        }
        logs = self.client("logs")
        for name, res in resources.items():
            if res["Type"] == "AWS::Logs::LogGroup" and "Condition" not in res:
                refs[name] = names.resolve(res["Properties"]["LogGroupName"])
                refs[f"{name}.Arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{refs[name]}:*"
                with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                    logs.create_log_group(logGroupName=refs[name])
        role = iam.create_role(
            RoleName=f"{stack}-offline", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )["Role"]["Arn"]

        env = batch.create_compute_environment(
            computeEnvironmentName=f"{stack}-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
        )
        refs["JobQueue"] = batch.create_job_queue(
            jobQueueName=f"{stack}-queue",
            priority=1,
            state="ENABLED",
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
        )["jobQueueArn"]
        for name, res in resources.items():
            if res["Type"] != "AWS::Batch::JobDefinition":
                continue
            props = res["Properties"]
            container = props["ContainerProperties"]
            refs[name] = batch.register_job_definition(
                jobDefinitionName=names.resolve(props["JobDefinitionName"]),
                type="container",
                parameters=props.get("Parameters", {}),
                containerProperties={
                    "image": "bgzip-job:offline",
                    "command": container["Command"],
                    "environment": [
                        {"name": e["Name"], "value": str(names.resolve(e["Value"]))}
                        for e in container.get("Environment", [])
                    ],
                    "logConfiguration": {
                        "logDriver": container["LogConfiguration"]["LogDriver"],
                        "options": names.resolve(container["LogConfiguration"]["Options"]),
                    },
                    "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}],
                },
                platformCapabilities=props.get("PlatformCapabilities", []),
            )["jobDefinitionArn"]

        for name, res in resources.items():
            if res["Type"] != "AWS::Serverless::Function" or "Condition" in res:
                continue  # the offline stack deploys the defaults: optional parts (notifications) are left out
            props = res["Properties"]
            variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
            variables.update(props.get("Environment", {}).get("Variables", {}))
            variables = {k: str(v) for k, v in names.resolve(variables).items()}
            variables.update(parameters.get("Function.Environment", {}))
            variables.update(parameters.get(f"{name}.Environment", {}))
            memory = props.get("MemorySize", template["Globals"]["Function"].get("MemorySize", 128))
            fn = self.create_function(
                f"{stack}-{name}", props["Handler"], variables, props.get("Timeout", 3), role, memory
            )
            refs[name] = fn["FunctionName"]
            refs[f"{name}.Arn"] = fn["FunctionArn"]
            self.runner.log_groups[fn["FunctionName"]] = names.resolve(props["LoggingConfig"]["LogGroup"])

        arns = {}
        for name, res in resources.items():
            if res["Type"] != "AWS::Serverless::StateMachine":
                continue
            props = res["Properties"]
            definition = (ROOT / props["DefinitionUri"]).read_text()
            for key, value in props["DefinitionSubstitutions"].items():
                definition = definition.replace(f"${{{key}}}", names.resolve(value))
            arns[name] = refs[name] = sfn.create_state_machine(
                name=names.resolve(props["Name"]), definition=definition, roleArn=role
            )["stateMachineArn"]
        repository = self.client("ecr").create_repository(repositoryName=f"{stack}-job")["repository"]
        outputs = {
            "BulkStateMachineArn": arns["BulkStateMachine"],
            "CompressStateMachineArn": arns["CompressStateMachine"],
            "RollbackStateMachineArn": arns["RollbackStateMachine"],
            "RunBucketName": run_bucket,
            "DataBucketName": data_bucket,
            "JobRepositoryUri": repository["repositoryUri"],
            "JobQueueArn": refs["JobQueue"],
            "PlanFunctionName": refs["PlanFunction"],
            "SelectIndexesFunctionName": refs["SelectIndexesFunction"],
        }
        assert set(outputs) == set(template["Outputs"]), "the offline stack has the template's outputs"
        self.client("cloudformation").create_stack(
            StackName=stack,
            TemplateBody=json.dumps(
                {
                    "Parameters": {name: {"Type": "String"} for name in SIZING},
                    "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
                    "Outputs": {name: {"Value": value} for name, value in outputs.items()},
                }
            ),
            Parameters=[{"ParameterKey": name, "ParameterValue": str(refs[name])} for name in SIZING],
        )
        deployed = DeployedStack(
            stack, data_bucket, run_bucket, arns["CompressStateMachine"], arns["RollbackStateMachine"], refs
        )
        # Each job's and Lambda's role, which its calls are refused by when it does not allow them.
        authorization.write_roles(deployed, self.calls, None if given is None else authorization.transform(given))
        return deployed

    def run(self, machine_arn: str, execution_input: dict, name: str, on_state=None, timeout: float = 300) -> dict:
        """Start an execution and wait for its end; `on_state(name)` is called as each state is entered."""
        sfn = self.client("stepfunctions")
        arn = sfn.start_execution(stateMachineArn=machine_arn, name=name, input=json.dumps(execution_input))[
            "executionArn"
        ]
        return self.wait(arn, on_state, timeout)

    def wait(self, execution_arn: str, on_state=None, timeout: float = 300) -> dict:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        seen = 0
        read = 0.0
        while True:
            # Status first: a finished execution's history read after it is complete.
            result = sfn.describe_execution(executionArn=execution_arn)
            ended = result["status"] != "RUNNING"
            # The whole history only every half second (moto spends a core reading it faster), the
            # status every tenth: a test waits at most that long after its run ends.
            if ended or (on_state and time.monotonic() - read >= 0.5):
                read = time.monotonic()
                events = sfn.get_execution_history(executionArn=execution_arn)["events"]
                for event in events[seen:]:
                    if on_state and event["type"].endswith("StateEntered"):
                        on_state(event["stateEnteredEventDetails"]["name"])
                seen = len(events)
            if ended:
                result["history"] = events
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout} s")
            time.sleep(0.1)
