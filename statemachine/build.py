"""Writes compress.asl.json, rollback.asl.json and bulk.asl.json, the Step Functions state machines, from one
description.

The two machines are one sequence of states run in opposite directions (workflow/states.py names them).
The ASL stays plain JSON, which SAM (DefinitionUri + DefinitionSubstitutions), the AWS console and moto read;
this module is the one source both files are written from. After changing it, run it and commit both files:

    python statemachine/build.py           # writes both files
    python statemachine/build.py --check   # exits 1, naming the file, if a committed file is stale

tests/test_asl_source.py fails while a committed file differs from what this writes. Each Lambda
state's ResultSelector comes from the fields of the record its function answers (workflow/boundary.py),
and its Payload is checked against the function's event model (workflow/events.py) as it is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # so that `python statemachine/build.py` finds batch_job and workflow

from pydantic import BaseModel  # noqa: E402

from batch_job.rates import timeout_key  # noqa: E402
from batch_job.records import Mode, RefreshMode, Step  # noqa: E402
from workflow import states  # noqa: E402
from workflow.boundary import (  # noqa: E402
    Explanation,
    FlagReadBack,
    OldAnswers,
    PlanResult,
    ReadersProof,
    RefreshProgress,
)
from workflow.events import (  # noqa: E402
    ExecutionInput,
    FailureEvent,
    IndexesEvent,
    PlanEvent,
    ProveReadersEvent,
    RefreshEvent,
    RunEndEvent,
    SelectEvent,
    SetCompressedEvent,
)

State = dict[str, Any]

# The event model of each of the stack's Lambdas (the one its handler in template.yaml parses, which
# test_asl_source checks): every Payload a state sends one is checked against it as the ASL is
# written (payload_for). The operator's ReaderRefreshHookArn takes the event the README documents.
EVENTS: dict[str, type[BaseModel]] = {
    "${PlanFunctionArn}": PlanEvent,
    "${SetCompressedFunctionArn}": SetCompressedEvent,
    "${RefreshReadersFunctionArn}": RefreshEvent,
    "${ProveReadersFunctionArn}": ProveReadersEvent,
    "${SummarizeFunctionArn}": RunEndEvent,
    "${ExplainFailureFunctionArn}": FailureEvent,
    "${ReportIndexesFunctionArn}": IndexesEvent,
    "${SelectIndexesFunctionArn}": SelectEvent,
}

FILES = {
    Mode.COMPRESS: HERE / "compress.asl.json",
    Mode.ROLLBACK: HERE / "rollback.asl.json",
}
BULK_FILE = HERE / "bulk.asl.json"

MACHINE_COMMENTS = {
    Mode.COMPRESS: "Compress every X.json under an index prefix to BGZF (.gz + .gzi), verify, set the bioindex flag, "
    "then delete the originals.",
    Mode.ROLLBACK: "Roll back a compressed index: restore every X.json, verify, clear the bioindex flag, "
    "then remove the .gz/.gzi.",
}
# What each machine's input may hold: a rollback restores X.json, so it has no compression level.
INPUT_COMMENTS = {
    Mode.COMPRESS: ' Input: {"index": NAME, "prefix": PREFIX/} (optional "shards", "level").',
    Mode.ROLLBACK: ' Input: {"index": NAME, "prefix": PREFIX/} (optional "shards").',
}

# What each Batch step does; its Choice state's Comment.
STEP_COMMENTS = {
    states.COMPRESS: "X.json -> X.json.gz + X.json.gz.gzi; originals are kept.",
    states.VERIFY: "htslib decompresses every output: size, SHA-256, .gzi and random access against the original.",
    states.DELETE_ORIGINALS: "Deletes originals verified in this run and unchanged since; "
    "the job refuses without flag.json.",
    states.DECOMPRESS: "X.json.gz -> X.json with every block CRC checked; existing X.json files are kept.",
    states.VERIFY_RESTORED: "htslib decompresses every .gz again and compares it with the restored X.json.",
    states.REMOVE_COMPRESSED: "Deletes .gz/.gzi of verified restores; "
    "the job refuses without flag.json saying compressed=false.",
}

# The Batch job definition that runs each engine step, by name (see DefinitionSubstitutions in
# template.yaml): a job is submitted to the latest revision, so a redeploy that registers a new one
# never strands a running execution on a deregistered revision.
JOB_DEFINITIONS = {
    Step.COMPRESS: "${CompressJobDefinitionName}",
    Step.VERIFY: "${VerifyJobDefinitionName}",
    Step.DELETE: "${DeleteJobDefinitionName}",
    Step.DECOMPRESS: "${DecompressJobDefinitionName}",
    Step.REMOVE_COMPRESSED: "${RemoveCompressedJobDefinitionName}",
}

# Transient errors of the Lambda and Batch services themselves: retried with backoff.
LAMBDA_RETRY = {
    "ErrorEquals": [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ],
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2.0,
}
BATCH_RETRY = {
    "ErrorEquals": [
        "Batch.AWSBatchException",
        "Batch.ServerException",
        "Batch.TooManyRequestsException",
    ],
    "IntervalSeconds": 5,
    "MaxAttempts": 5,
    "BackoffRate": 2.0,
}
# The bioindex database did not answer; raised by the Lambdas that set the flag and prove the readers.
BIOINDEX_RETRY = {
    "ErrorEquals": ["BioindexUnavailable"],
    "IntervalSeconds": 5,
    "MaxAttempts": 2,
    "BackoffRate": 4.0,
}

DONE = "Done"
FAILED = "Failed"
FAILED_UNEXPLAINED = "Failed without explanation"


def selected(record: type) -> State:
    """A Lambda task's ResultSelector: every field of the boundary record its function answers."""
    return {f"{key}.$": f"$.Payload.{key}" for key in record.json_keys()}


def taken_by(model: type[BaseModel], body: State, what: str) -> State:
    """`body` as `model` takes it: each key (a path where it ends in `.$`) a field of the model by its
    JSON name, and every field the model requires given. Else the build fails, naming `what` and the
    keys: the ASL and the code that reads what it sends cannot drift apart."""
    fields = model.model_fields
    names = {field.alias or name for name, field in fields.items()}
    required = {field.alias or name for name, field in fields.items() if field.is_required()}
    sent = {key.removesuffix(".$") for key in body}
    if not sent <= names:
        raise ValueError(f"{what} sends {sorted(sent - names)}, unknown to {model.__name__}")
    if not required <= sent:
        raise ValueError(f"{what} leaves out {sorted(required - sent)}, which {model.__name__} needs")
    return body


def payload_for(function: str, payload: State) -> State:
    """`payload` as the Lambda `function` takes it (its event model in EVENTS)."""
    model = EVENTS.get(function)
    return payload if model is None else taken_by(model, payload, f"a Payload for {function}")


def catch_all(next_state: str, result_path: str = "$.error") -> list[State]:
    """Any error that is not retried: keep it at result_path and go to next_state."""
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": result_path, "Next": next_state}]


def lambda_task(
    comment: str,
    function: str,
    payload: State,
    result_selector: State,
    result_path: str,
    catch: list[State],
    next_state: str,
    bioindex: bool = False,
    output_path: str | None = None,
) -> State:
    """A Task that invokes one of the template's Lambdas; bioindex=True also retries BioindexUnavailable."""
    task: State = {
        "Type": "Task",
        "Comment": comment,
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload": payload_for(function, payload)},
        "ResultSelector": result_selector,
    }
    if output_path is not None:
        task["OutputPath"] = output_path
    task["ResultPath"] = result_path
    task["Retry"] = [LAMBDA_RETRY, BIOINDEX_RETRY] if bioindex else [LAMBDA_RETRY]
    task["Catch"] = catch
    task["Next"] = next_state
    return task


def failed(state: str, error_path: str = "$.error") -> State:
    """The Pass state "<state> failed": records the failed state and its error for ExplainFailure."""
    parameters: State = {"state": state, "error.$": error_path}
    if state == states.PLAN:
        parameters["plan"] = {}  # there is no plan yet
    else:
        parameters["plan.$"] = "$.plan"
    return {
        "Type": "Pass",
        "Comment": f"Records that {state} failed, for {states.EXPLAIN_FAILURE}.",
        "Parameters": parameters,
        "ResultPath": "$.failure",
        "Next": states.EXPLAIN_FAILURE,
    }


def batch_task(state: str, next_state: str, array: bool) -> State:
    """A Task that submits the Batch job of `state`'s engine step and waits for it."""
    step = states.STATE_STEPS[state]
    parameters: State = {
        "JobName.$": f"States.Format('{{}}-{step.value}', $$.Execution.Name)",  # <execution name>-compress ...
        "JobQueue": "${JobQueueArn}",
        "JobDefinition": JOB_DEFINITIONS[step],
    }
    if array:
        parameters["ArrayProperties"] = {"Size.$": "$.plan.shards"}
    parameters["Parameters"] = {"runFolder.$": "$.plan.runFolder"}
    if step == Step.COMPRESS:
        parameters["Parameters"]["level.$"] = "States.Format('{}', $.plan.level)"  # Batch parameters are strings
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": parameters,
        # Sized by Plan from this run's bytes (batch_job/rates.py): a job that never starts or hangs
        # fails the run (Step Functions stops it) instead of holding the prefix for a year.
        "TimeoutSecondsPath": f"$.plan.timeouts.{timeout_key(step)}",
        "ResultPath": None,
        "Retry": [BATCH_RETRY],
        "Catch": catch_all(f"{state} failed"),
        "Next": next_state,
    }


def batch_step(state: str, next_state: str) -> dict[str, State]:
    """A Batch step: a Choice between one job and an array job (one per shard), and its "failed" state."""
    return {
        state: {
            "Type": "Choice",
            "Comment": STEP_COMMENTS[state] + " One job for one shard, an array job for more.",
            "Choices": [{"Variable": "$.plan.shards", "NumericGreaterThan": 1, "Next": f"{state} array job"}],
            "Default": f"{state} job",
        },
        f"{state} array job": batch_task(state, next_state, array=True),
        f"{state} job": batch_task(state, next_state, array=False),
        f"{state} failed": failed(state),
    }


def refresh_step(state: str, compressed: bool, revert: bool, next_state: str) -> dict[str, State]:
    """Make every bioindex process load the flag `compressed`, by the stack's ReaderRefresh mode (Plan
    returns it in $.plan.refresh), then go on to next_state. Every error goes to "<state> failed"."""
    payload: State = {
        "runFolder.$": "$.plan.runFolder",
        "execution.$": "$$.Execution.Name",
        "compressed": compressed,
        "revert": revert,
    }
    catch = catch_all(f"{state} failed")
    flag = str(compressed).lower()
    ecs, wait, check, done = (f"{state} ECS deployment", f"{state} wait", f"{state} ECS check", f"{state} done?")
    hook, confirmation = f"{state} hook", f"{state} confirmation"
    return {
        state: {
            "Type": "Choice",
            "Comment": f"Every bioindex process must load compressed={flag}: a process loads the flag only when it "
            "starts (or when it happens to serve GET /api/bio/indexes), so it is restarted - by a new ECS deployment, "
            "the operator's hook, or the operator after being asked. ReaderRefresh=requests goes straight on.",
            "Choices": [
                {"Variable": "$.plan.refresh.mode", "StringEquals": RefreshMode.ECS_SERVICE.value, "Next": ecs},
                {"Variable": "$.plan.refresh.mode", "StringEquals": RefreshMode.HOOK.value, "Next": hook},
                {"Variable": "$.plan.refresh.mode", "StringEquals": RefreshMode.CONFIRM.value, "Next": confirmation},
            ],
            "Default": next_state,
        },
        ecs: lambda_task(
            comment="Force a new deployment of each of the bioindex's ECS services (BioindexEcsServices).",
            function="${RefreshReadersFunctionArn}",
            payload={"action": "restart", **payload},
            result_selector=selected(RefreshProgress),
            result_path="$.refresh",
            catch=catch,
            next_state=wait,
        ),
        wait: {
            "Type": "Wait",
            "Comment": "Bounded polling: the check fails the state once ReaderRefreshTimeoutSeconds have passed.",
            "SecondsPath": "$.plan.refresh.pollSeconds",
            "Next": check,
        },
        check: lambda_task(
            comment="Done when each service's new deployment completed and no older deployment runs a task.",
            function="${RefreshReadersFunctionArn}",
            payload={"action": "check", **payload},
            result_selector=selected(RefreshProgress),
            result_path="$.refresh",
            catch=catch,
            next_state=done,
        ),
        done: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.refresh.done", "BooleanEquals": True, "Next": next_state}],
            "Default": wait,
        },
        hook: lambda_task(
            comment="The operator's ReaderRefreshHookArn restarts every bioindex process and returns when it has.",
            function="${ReaderRefreshHookArn}",
            payload={"index.$": "$.plan.index", "prefix.$": "$.plan.prefix", **payload},
            result_selector={"done": True},
            result_path="$.refresh",
            catch=catch,
            next_state=next_state,
        ),
        confirmation: {
            "Type": "Task",
            "Comment": "Pause until the operator restarted the bioindex and typed `bgz confirm EXECUTION` (which sends "
            "this task's token back); past ReaderConfirmTimeoutSeconds the run fails, nothing deleted.",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": "${RefreshReadersFunctionArn}",
                "Payload": payload_for(
                    "${RefreshReadersFunctionArn}", {"action": "await", "taskToken.$": "$$.Task.Token", **payload}
                ),
            },
            "TimeoutSecondsPath": "$.plan.refresh.confirmTimeoutSeconds",
            "ResultPath": "$.refresh",
            "Retry": [LAMBDA_RETRY],
            "Catch": catch,
            "Next": next_state,
        },
        f"{state} failed": failed(state),
    }


def definition(mode: Mode) -> State:
    """The state machine of one mode, as a dict in ASL."""
    plan, convert, verify, set_flag, refresh, prove_readers, delete = states.SEQUENCE[mode]
    compressed = mode == Mode.COMPRESS
    machine: dict[str, State] = {}

    machine[plan] = lambda_task(
        comment="Validate the input, refuse a second run on the same index and prefix, run the bioindex pre-flight, "
        "write plan.json and the baseline answers to the run folder.",
        function="${PlanFunctionArn}",
        payload={
            "mode": mode.value,
            "execution.$": "$$.Execution.Name",
            "executionArn.$": "$$.Execution.Id",
            "input.$": "$",
        },
        result_selector=selected(PlanResult),
        result_path="$.plan",
        catch=catch_all(f"{plan} failed"),
        next_state=convert,
    )
    machine[f"{plan} failed"] = failed(plan)

    machine.update(batch_step(convert, next_state=verify))
    machine.update(batch_step(verify, next_state=set_flag))

    flag = "true" if compressed else "false"
    machine[set_flag] = lambda_task(
        comment=f"Set the bioindex flag compressed={flag}, read it back, write flag.json.",
        function="${SetCompressedFunctionArn}",
        payload={
            "index.$": "$.plan.index",
            "prefix.$": "$.plan.prefix",
            "compressed": compressed,
            "runFolder.$": "$.plan.runFolder",
            "execution.$": "$$.Execution.Name",
        },
        result_selector=selected(FlagReadBack),
        result_path="$.flag",
        catch=catch_all(f"{set_flag} failed"),
        next_state=refresh,
        bioindex=True,
    )
    machine[f"{set_flag} failed"] = failed(set_flag)
    machine.update(refresh_step(refresh, compressed, revert=False, next_state=prove_readers))

    old_files = "uncompressed .json" if compressed else "compressed .json.gz"
    prove_payload = {
        "runFolder.$": "$.plan.runFolder",
        "compressed": compressed,
        "execution.$": "$$.Execution.Name",
        "refreshMode.$": "$.plan.refresh.mode",
    }
    machine[prove_readers] = lambda_task(
        comment=f"Re-read the flag and prove the bioindex processes no longer read the {old_files} files: the baseline "
        "answers must not change, neither now (else the flag is set back: ConvertedFilesUnreadable) nor once one "
        "canary file is deleted (restored if any answer differs).",
        function="${ProveReadersFunctionArn}",
        payload=prove_payload,
        result_selector=selected(ReadersProof),
        result_path="$.readersProof",
        catch=[
            {"ErrorEquals": ["ConvertedFilesUnreadable"], "ResultPath": "$.error", "Next": states.RELOAD_OLD_FLAG},
            *catch_all(f"{prove_readers} failed"),
        ],
        next_state=delete,
        bioindex=True,
    )
    machine[f"{prove_readers} failed"] = failed(prove_readers)

    # The bioindex could not read the new side, and ProveReaders set the flag back: the processes
    # reload the old flag, the old answers are proven back, and the run fails with ProveReaders' error.
    machine.update(
        refresh_step(states.RELOAD_OLD_FLAG, not compressed, revert=True, next_state=states.PROVE_OLD_ANSWERS)
    )
    machine[states.PROVE_OLD_ANSWERS] = lambda_task(
        comment="The flag is back as before the run: the baseline answers are back, or the Cause says to restart.",
        function="${ProveReadersFunctionArn}",
        payload={**prove_payload, "revert": True},
        result_selector=selected(OldAnswers),
        result_path="$.oldAnswers",
        catch=catch_all(f"{states.PROVE_OLD_ANSWERS} failed", result_path="$.revertError"),
        next_state=f"{prove_readers} failed",
        bioindex=True,
    )
    machine[f"{states.PROVE_OLD_ANSWERS} failed"] = failed(states.PROVE_OLD_ANSWERS, error_path="$.revertError")

    machine.update(batch_step(delete, next_state=states.SUMMARIZE))

    # A run whose summary fails has still succeeded: the error is kept in the output.
    machine[states.SUMMARIZE] = lambda_task(
        comment="Files and bytes before and after, from the run folder's manifests.",
        function="${SummarizeFunctionArn}",
        payload={"mode": mode.value, "execution.$": "$$.Execution.Name", "plan.$": "$.plan"},
        # The execution's output: RunSummary.to_json() whole (its fields and the ratio derived from them).
        result_selector={"summary.$": "$.Payload"},
        output_path="$.summary",
        result_path="$",
        catch=catch_all(DONE, result_path="$.summaryError"),
        next_state=DONE,
    )
    machine[DONE] = {"Type": "Succeed"}

    machine[states.EXPLAIN_FAILURE] = lambda_task(
        comment="Plain-words Error and Cause from the caught error and the failed step's manifests.",
        function="${ExplainFailureFunctionArn}",
        payload={
            "mode": mode.value,
            "execution.$": "$$.Execution.Name",
            "state.$": "$.failure.state",
            "error.$": "$.failure.error",
            "plan.$": "$.failure.plan",
        },
        # A Fail state's Error and Cause, from its fields.
        result_selector={f"{key.capitalize()}.$": f"$.Payload.{key}" for key in Explanation.json_keys()},
        result_path="$.failure.explained",
        catch=catch_all(FAILED_UNEXPLAINED, result_path="$.failure.explainError"),
        next_state=FAILED,
    )
    machine[FAILED] = {
        "Type": "Fail",
        "ErrorPath": "$.failure.explained.Error",
        "CausePath": "$.failure.explained.Cause",
    }
    machine[FAILED_UNEXPLAINED] = {
        "Type": "Fail",
        "ErrorPath": "$.failure.error.Error",
        "CausePath": "$.failure.error.Cause",
    }

    return {"Comment": MACHINE_COMMENTS[mode] + INPUT_COMMENTS[mode], "StartAt": plan, "States": machine}


# Transient errors of Step Functions itself when starting or following a child execution.
SFN_RETRY = {
    "ErrorEquals": [
        "StepFunctions.AWSStepFunctionsException",
        "StepFunctions.ExecutionLimitExceededException",
        "StepFunctions.SdkClientException",
    ],
    "IntervalSeconds": 10,
    "MaxAttempts": 5,
    "BackoffRate": 2.0,
}


def bulk_definition() -> State:
    """The bulk machine: select indexes from the bioindex, run the compress or rollback machine once
    per index as a child execution, at most `concurrency` at once, and report every index's outcome.
    One index failing does not stop the others; the run fails at the end if any did."""
    machine: dict[str, State] = {}
    machine[states.SELECT_INDEXES] = lambda_task(
        comment="Which indexes to convert: all, include, exclude (from the bioindex's __Indexes) or an explicit "
        "list; indexes already converted are skipped and listed as such. Refuses unknown names before anything runs.",
        function="${SelectIndexesFunctionArn}",
        payload={
            "execution.$": "$$.Execution.Name",
            "input.$": "$",
            "machines": {
                Mode.COMPRESS.value: "${CompressStateMachineArn}",
                Mode.ROLLBACK.value: "${RollbackStateMachineArn}",
            },
        },
        result_selector={"selection.$": "$.Payload"},
        output_path="$.selection",
        result_path="$",
        catch=catch_all(FAILED_UNEXPLAINED),
        next_state=states.CONVERT_EACH_INDEX,
        bioindex=True,
    )
    child: dict[str, State] = {
        states.CONVERT_INDEX: {
            "Type": "Task",
            "Comment": "The compress or rollback machine for one index, as a child execution (its own graph).",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {
                "StateMachineArn.$": "$.machine",
                "Name.$": "$.item.name",
                "Input": taken_by(
                    ExecutionInput,  # what the child's Plan checks
                    {
                        "index.$": "$.item.index",
                        "prefix.$": "$.item.prefix",
                        "level.$": "$.item.level",
                        "bulkConcurrency.$": "$.concurrency",  # its steps' timeouts share the queue
                        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                    },
                    "the bulk machine's child Input",
                ),
            },
            "ResultSelector": {"execution.$": "$.ExecutionArn"},
            "ResultPath": "$.result",
            "Retry": [SFN_RETRY],
            "Catch": catch_all(states.INDEX_FAILED),
            "Next": states.INDEX_CONVERTED,
        },
        # Each index's outcome is four short fields: a Map's results are one state, and a state holds at
        # most 256 KiB. ReportIndexes reads each child's summary or Error and Cause itself.
        states.INDEX_CONVERTED: {
            "Type": "Pass",
            "Parameters": {
                "index.$": "$.item.index",
                "prefix.$": "$.item.prefix",
                "status": "SUCCEEDED",
                "execution.$": "$.item.name",
            },
            "End": True,
        },
        states.INDEX_FAILED: {
            "Type": "Pass",
            "Comment": "Kept as this index's outcome; the other indexes go on.",
            "Parameters": {
                "index.$": "$.item.index",
                "prefix.$": "$.item.prefix",
                "status": "FAILED",
                "execution.$": "$.item.name",
            },
            "End": True,
        },
    }
    machine[states.CONVERT_EACH_INDEX] = {
        "Type": "Map",
        "Comment": "One child execution per selected index, at most `concurrency` at once.",
        "ItemsPath": "$.items",
        "MaxConcurrencyPath": "$.bulk.concurrency",
        "ItemSelector": {
            "item.$": "$$.Map.Item.Value",
            "machine.$": "$.bulk.machine",
            "concurrency.$": "$.bulk.concurrency",
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": states.CONVERT_INDEX,
            "States": child,
        },
        # The results replace the items: no state ever holds both.
        "ResultPath": "$.items",
        "Catch": catch_all(FAILED_UNEXPLAINED),
        "Next": states.REPORT_INDEXES,
    }
    machine[states.REPORT_INDEXES] = lambda_task(
        comment="A table of every index: files, bytes before and after, status, cause; and the skipped ones. "
        "The whole table goes to the run bucket; the output holds its head and address.",
        function="${ReportIndexesFunctionArn}",
        payload={
            "mode.$": "$.bulk.mode",
            "execution.$": "$$.Execution.Name",
            "machine.$": "$.bulk.machine",
            "results.$": "$.items",
            "skipped.$": "$.bulk.skipped",
        },
        result_selector={"report.$": "$.Payload"},
        output_path="$.report",
        result_path="$",
        catch=catch_all(FAILED_UNEXPLAINED),
        next_state="Any index failed?",
    )
    machine["Any index failed?"] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.failed", "NumericGreaterThan": 0, "Next": "Some indexes failed"}],
        "Default": DONE,
    }
    machine[DONE] = {"Type": "Succeed"}
    machine["Some indexes failed"] = {"Type": "Fail", "Error": "IndexesFailed", "CausePath": "$.table"}
    machine[FAILED_UNEXPLAINED] = {
        "Type": "Fail",
        "ErrorPath": "$.error.Error",
        "CausePath": "$.error.Cause",
    }
    comment = (
        "Convert many indexes of a bioindex in one execution: the compress or rollback machine once per index. "
        'Input: {"mode": "compress"|"rollback", and "all": true, "include": [NAME...], or "indexes": '
        '[{"index": NAME, "prefix": PREFIX/}...]; optional "exclude": [NAME...], "concurrency", "level"}.'
    )
    return {"Comment": comment, "StartAt": states.SELECT_INDEXES, "States": machine}


def text(mode: Mode | None) -> str:
    """A file's content (mode None: the bulk machine): two-space indented JSON and a final newline."""
    return json.dumps(definition(mode) if mode else bulk_definition(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file is stale")
    args = parser.parse_args()

    stale = []
    for mode, path in [*FILES.items(), (None, BULK_FILE)]:
        if args.check:
            if not path.exists() or path.read_text() != text(mode):
                stale.append(path)
        else:
            path.write_text(text(mode))
            print(f"wrote {path}")

    for path in stale:
        print(f"{path} is stale: run python statemachine/build.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
