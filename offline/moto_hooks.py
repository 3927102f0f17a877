"""The eleven hooks into moto's internals that make the offline stack run the real ASL, jobs and
Lambdas. They touch private code, so moto is pinned exactly and tests/test_offline_aws.py fails
loudly when an upgrade breaks them:

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
8. The moto server finds the service a Host header names once per host (moto: it lists its own
   package folder and tries each service's URL patterns on every request, a tenth of the server's
   time). What it answers is moto's own.
9. An ASL definition's syntax tree is built once: moto parses it with ANTLR at CreateStateMachine
   and again at every StartExecution (0.1-0.3 s each for our machines); an execution now reuses the
   tree CreateStateMachine built. Each execution still gets its own evaluation components, built
   from that tree as moto builds them; a definition that does not parse is refused each time. The
   template deployed again under another stack name is not parsed again: its components are built
   from the first stack's tree with the stack's name changed in their strings (it is parsed where they
   hold the name somewhere it cannot be changed, or not as often as its text does). The tests deploy
   about ninety stacks: these parses were a sixth of the server's time.
10. Batch DescribeJobs walks a copy of the job table: moto walks the table itself while a submit
   from another thread (a bulk run's index runs, side by side) adds to it, and the .sync task that
   asked failed with "dictionary changed size during iteration". What it answers is moto's own.
11. The interpreter's boto3 client for each region and service and each JSONPath's parse are made
   once (moto makes a client at every service call of every state, and a new JSONPath parser, its
   grammar tables built, at every path it reads: 4% of a test process's time).
"""

from __future__ import annotations

import datetime
import fnmatch
import functools
import html
import json
import re
import sys
import threading
import time
import types
import uuid
from collections import OrderedDict
from collections.abc import Callable

import moto
from botocore import xform_name
from botocore.session import get_session

from offline import recorder
from offline.runner import Runner

PINNED_MOTO = "5.2.5"
SYNC_POLL_SECONDS = 0.05  # how often a .sync task looks at its Batch job (moto: 0.5 s)
RETRY_WAIT_SCALE = 0.1  # of a Retry's IntervalSeconds (with its backoff) that the offline stack waits


_models_lock = threading.Lock()  # a botocore session is not thread-safe


@functools.cache
def _operation(service: str, action: str):
    """The operation's model, looked up once (a new botocore session per call was a thirtieth of a test
    process's time)."""
    with _models_lock:
        model = _session().get_service_model(service)
        names = {xform_name(name): name for name in model.operation_names}
        name = names.get(action) or names.get(xform_name(action))
        return model.operation_model(name) if name else None


@functools.cache
def _session():
    return get_session()


def _normalise_parameters_by_model(self, parameters, boto_service_name=None, service_action_name=None):
    op = _operation(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
    if op is not None and op.input_shape is not None:
        self._to_boto_request(parameters, op.input_shape)


def _normalise_response_by_model(self, response, boto_service_name=None, service_action_name=None):
    op = _operation(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
    if op is not None and op.output_shape is not None:
        self._from_boto_response(response, op.output_shape)


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


def _describe_jobs_of_a_copy(self, jobs: list[str] | None) -> list[dict]:
    """moto's describe_jobs over a copy of its job table (list() of a dict is one step under the GIL)."""
    wanted = set(jobs or ())
    return [job.describe() for key, job in list(self._jobs.items()) if not wanted or key in wanted or job.arn in wanted]


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


def _backend_once_per_host(original):
    def get_backend_for_host(self, host):
        found = self.__dict__.setdefault("_bgzip_backends", {})
        if host not in found:
            found[host] = original(self, host)
        return found[host]

    return get_backend_for_host


STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")  # CloudFormation's rule for a stack's name
TREES_KEPT = 16  # the definitions most recently parsed (a tree keeps its parser and tokens: megabytes)
STACKS_KEPT = 1024  # the definitions most recently created, with their stack's name


class _Trees:
    """Each definition's syntax tree, built once; a definition that differs from a parsed one only in
    its stack's name (`stack_of`, told at CreateStateMachine) is built from that tree, the name changed
    in its components' strings. template.yaml names each machine `<stack>-<machine>`, and its
    definitions hold the stack's name only as `<stack>-` in the values of their Parameters. Where the
    components hold the name somewhere it cannot be changed (a dictionary's key, such as a state's name
    in States) or a different number of times than the definition's text does, the definition is
    parsed as moto parses it."""

    def __init__(self, original: Callable[[str], tuple]) -> None:
        self.original = original
        self.trees: OrderedDict[str, object] = OrderedDict()
        self.stacks: OrderedDict[str, str] = OrderedDict()  # definition -> its stack's name
        self.shapes: dict[str, tuple[str, str]] = {}  # shape -> (a parsed definition, its stack)
        self.lock = threading.Lock()

    def stack_of(self, definition: str, stack: str) -> bool:
        """Tells the definition's stack; whether a definition of its shape has been parsed."""
        with self.lock:
            self.stacks[definition] = stack
            self.stacks.move_to_end(definition)
            while len(self.stacks) > STACKS_KEPT:
                self.stacks.popitem(last=False)
            return self._parsed_like(_shape(definition, stack))[1] is not None

    def parse(self, definition: str) -> tuple:
        """AmazonStateLanguageParser.parse: (the program, a syntax tree). From the renamed shape the
        tree is the other stack's; moto's execution uses only the program."""
        with self.lock:
            tree = self.trees.get(definition)
            if tree is not None:
                self.trees.move_to_end(definition)
            stack = self.stacks.get(definition)
            shape = _shape(definition, stack) if stack else None
            parsed_stack, parsed_tree = self._parsed_like(shape)
        if tree is not None:
            return _visit(tree), tree
        if parsed_tree is not None:
            program = _visit(parsed_tree)
            if _rename(program, f"{parsed_stack}-", f"{stack}-") == definition.count(f"{stack}-"):
                return program, parsed_tree
        program, tree = self.original(definition)  # raises for a definition moto refuses
        with self.lock:
            self.trees[definition] = tree
            while len(self.trees) > TREES_KEPT:
                self.trees.popitem(last=False)
            if shape is not None:
                self.shapes[shape] = (definition, stack)
        return program, tree

    def _parsed_like(self, shape: str | None) -> tuple[str | None, object | None]:
        """The stack and tree of a parsed definition of this shape, if one is kept (called under the lock)."""
        parsed, stack = self.shapes.get(shape, (None, None))
        tree = self.trees.get(parsed)
        if tree is None:
            return None, None
        self.trees.move_to_end(parsed)
        return stack, tree


def _shape(definition: str, stack: str) -> str:
    """The definition with its stack's name taken out: the same for every stack that deploys it."""
    return definition.replace(f"{stack}-", "\0-")


def _visit(tree):
    """The program moto's Preprocessor builds from `tree`, with a query-language stack of its own
    (moto keeps one list on the class for every thread, and a visit that raises leaves its entry)."""
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    preprocessor = Preprocessor()
    preprocessor._query_language_per_scope = []
    return preprocessor.visit(tree)


def _rename(program, old: str, new: str) -> int:
    """Changes `old` to `new` in every string of `program`'s evaluation components (the program is
    changed); how many it changed, or -1 where `old` is somewhere it cannot be changed: a dictionary's
    key (a state's name in States), a tuple or a set."""
    count, pending, seen = 0, [program], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            items, put = node.items(), node.__setitem__
            if any(isinstance(key, str) and old in key for key in node):
                return -1
        elif isinstance(node, list):
            items, put = enumerate(node), node.__setitem__
        elif isinstance(node, (tuple, set, frozenset)):
            items, put = enumerate(node), None
        elif _component(node):
            items, put = vars(node).items(), lambda name, value, node=node: setattr(node, name, value)
        else:
            continue
        for key, value in list(items):
            if isinstance(value, str):
                if old in value:
                    if put is None:
                        return -1
                    count += value.count(old)
                    put(key, value.replace(old, new))
            elif isinstance(value, (dict, list, tuple, set, frozenset)) or hasattr(value, "__dict__"):
                pending.append(value)
    return count


def _component(node) -> bool:
    """Whether `node` is one of the interpreter's evaluation components (not the parser's syntax tree)."""
    module = type(node).__module__
    return module.startswith("moto.stepfunctions.parser.asl.") and ".antlr." not in module and hasattr(node, "__dict__")


def _told_the_stack(original: Callable, unvalidated: Callable, trees: _Trees) -> Callable:
    """CreateStateMachine tells the parse which stack the definition is of (its name up to the last "-");
    a definition of the same shape as one parsed before is not parsed again to be validated
    (`unvalidated` creates it): it parses as that one did."""

    def create_state_machine(self, name: str, definition: str, **kwargs):
        stack = name.rpartition("-")[0]
        if STACK_NAME.fullmatch(stack) and trees.stack_of(definition, stack):
            return unvalidated(self, name=name, definition=definition, **kwargs)
        return original(self, name=name, definition=definition, **kwargs)  # parses it: raises if refused

    return create_state_machine


def _clients_and_paths_made_once() -> None:
    """Hook 11. moto's `boto_client_for` is patched where it is defined (for the modules that import it
    later) and in every module that imported it already."""
    from jsonpath_ng import parse as parse_path
    from jsonpath_ng.ext import parse as parse_extended_path
    from moto import settings
    from moto.core.models import botocore_stubber
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import boto_client, json_path

    original = getattr(boto_client, "_bgzip_original_boto_client_for", boto_client.boto_client_for)
    boto_client._bgzip_original_boto_client_for = original
    clients: dict[tuple, object] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: object = None):
        key = (region, service, settings.moto_server_port(), botocore_stubber.enabled)  # what moto's reads
        with lock:
            if key not in clients:
                clients[key] = original(region, service, state_credentials)
            return clients[key]

    boto_client_for._bgzip_once = True
    for name, module in list(sys.modules.items()):
        found = getattr(module, "boto_client_for", None) if name.startswith("moto.stepfunctions.parser.") else None
        if found is original or getattr(found, "_bgzip_once", False):
            module.boto_client_for = boto_client_for
    json_path.parse = functools.lru_cache(maxsize=1024)(parse_extended_path)
    result_path.parse = functools.lru_cache(maxsize=1024)(parse_path)


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
    from moto.batch.models import BatchBackend  # what BatchSimpleBackend hands every other call to

    BatchBackend.describe_jobs = _describe_jobs_of_a_copy
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

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication as Dispatcher

    if not hasattr(Dispatcher, "_bgzip_original_get_backend_for_host"):
        Dispatcher._bgzip_original_get_backend_for_host = Dispatcher.get_backend_for_host
    Dispatcher.get_backend_for_host = _backend_once_per_host(Dispatcher._bgzip_original_get_backend_for_host)

    from moto.stepfunctions.models import StepFunctionBackend
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser as Parser
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend as Backend

    if not hasattr(Parser, "_bgzip_original_parse"):
        Parser._bgzip_original_parse = staticmethod(Parser.parse)
        Backend._bgzip_original_create_state_machine = Backend.create_state_machine
    trees = _Trees(Parser._bgzip_original_parse)
    Parser.parse = staticmethod(trees.parse)
    Backend.create_state_machine = _told_the_stack(
        Backend._bgzip_original_create_state_machine, StepFunctionBackend.create_state_machine, trees
    )
    _clients_and_paths_made_once()
    _runner = runner
