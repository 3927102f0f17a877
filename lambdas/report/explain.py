"""The ExplainFailure state's Lambda: a caught error (a Batch job description as JSON, a Lambda error,
or plain text) and the failed step's run folder turned into the Error and Cause of the execution's
Fail state. It ends the run: the prefix lock released, outcome.json written (report/run_end.py).
"""

from __future__ import annotations

import json

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from report.cause import cap
from report.run_end import end_run

from batch_job.rates import timeout_key
from batch_job.records import CanaryStatus, FileRecord, Mode, ReadersCheck, Step
from batch_job.runfolder import RunFolder
from workflow import states
from workflow.boundary import Explanation
from workflow.events import FailureEvent

logger = Logger()
tracer = Tracer()
# The engine's own log lines (locks) come out in the same structured form.
copy_config_to_registered_loggers(source_logger=logger, include={"bgzip-job"})

# ProveReaders deletes only its canary, and restores it before failing (its record says if not).
CANARY_GONE = (CanaryStatus.SET_ASIDE, CanaryStatus.DELETED)


NOTHING_DELETED = {Mode.COMPRESS: "No original was deleted", Mode.ROLLBACK: "No compressed file was removed"}


SHOWN_FILES = 5


def _records(run: RunFolder, step: Step, shards: int) -> list[FileRecord]:
    manifests = run.read_manifests(step, shards)
    return [record for manifest in manifests.values() for record in manifest.files]


# Lambda's error types for a function that ended without an answer: killed, out of memory, timed out.
CRASHES = {"Runtime.ExitError", "Runtime.OutOfMemory", "Sandbox.Timedout"}


def _describe_cause(cause: str, error: str = "") -> str:
    """Plain words from a caught error's Cause: Batch job JSON, Lambda error JSON, or text."""
    try:
        body = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        body = cause
    if body in (None, ""):  # e.g. `""`: nothing came back to say why
        return f"{error}, no cause given" if error else "No cause given"
    if not isinstance(body, dict):
        return str(body)
    if body.get("errorType") in CRASHES:
        message = str(body.get("errorMessage", "")).split(" Error: ", 1)[-1]  # after "RequestId: ..."
        return f"Its Lambda died before answering ({body['errorType']}: {message})"
    if "errorMessage" in body:
        return f"{body.get('errorType', 'Error')}: {body['errorMessage']}"
    lowered = {k.lower(): v for k, v in body.items()}
    parts = []
    status = lowered.get("status")
    name = lowered.get("jobname") or lowered.get("jobid")
    if name:
        parts.append(f"Batch job {name} {str(status or '').lower()}".strip())
    if lowered.get("statusreason"):
        parts.append(str(lowered["statusreason"]))
    array = lowered.get("arrayproperties") or {}
    summary_counts = {k.lower(): v for k, v in (array.get("StatusSummary") or array.get("statusSummary") or {}).items()}
    if summary_counts:
        parts.append(f"{summary_counts.get('failed', 0)} of {array.get('Size') or array.get('size')} shards failed")
    container = lowered.get("container") or {}
    container = {k.lower(): v for k, v in container.items()}
    if container.get("reason"):
        parts.append(str(container["reason"]))
    if container.get("logstreamname"):
        parts.append(f"logs: {container['logstreamname']}")
    return "; ".join(parts) or cause


def _failed_files(event: FailureEvent) -> str:
    step = states.STATE_STEPS.get(event.state)
    run = event.run_folder()
    if step is None or run is None:
        return ""
    try:
        records = _records(run, step, run.read_plan().shards)
        failed = [(r.key, r.later_failure or r.error or "failed") for r in records if not r.ok or r.later_failure]
    except Exception:  # the manifests are a bonus here; the cause above already says what failed
        logger.exception("could not read manifests")
        return ""
    if not failed:
        return ""
    shown = "; ".join(f"{key}: {error}" for key, error in failed[:SHOWN_FILES])
    more = f" (and {len(failed) - SHOWN_FILES} more)" if len(failed) > SHOWN_FILES else ""
    return f"{len(failed)} files failed: {shown}{more}"


def _canary_gone(event: FailureEvent) -> str:
    """What a failed ProveReaders left deleted, from its own record (normally nothing)."""
    run = event.run_folder()
    if event.state != states.PROVE_READERS or run is None:
        return ""
    try:
        check = run.read_readers_check()
    except Exception:  # never claim "nothing deleted" without having read the record
        logger.exception("could not read the reader check's record")
        return f"The canary may still be deleted: see {run.uri}{ReadersCheck.NAME}"
    if check is None or check.canary_status not in CANARY_GONE:
        return ""
    copies = ", ".join(f"{o.key} from s3://{run.location.store.bucket}/{o.aside}" for o in check.canary.objects)
    return f"The canary is still deleted: restore {copies}"


def _job_errors(event: FailureEvent) -> str:
    """Why the step's jobs exited non-zero, from the error records they left (on AWS the job's own
    status reason says only "Essential container in task exited")."""
    step = states.STATE_STEPS.get(event.state)
    run = event.run_folder()
    if step is None or run is None:
        return ""
    try:
        errors = run.read_errors(step)
    except Exception:  # a bonus, like the manifests
        logger.exception("could not read the jobs' error records")
        return ""
    said = []
    for e in errors[:SHOWN_FILES]:
        where = "the job" if e.shard is None else f"shard {e.shard}"
        # exit 1: the files that failed are named from the manifests
        text = f"{where} exited {e.exit}" + ("" if e.exit == 1 else f": {e.message}")
        said.append(text + (f" (log stream {e.log_stream})" if e.log_stream else ""))
    return "; ".join(said)


def _timed_out(event: FailureEvent) -> str:
    """A Batch step past its TimeoutSeconds. Step Functions stops waiting; it is not documented to
    terminate the jobs, which may run on until their own attempt limit."""
    step = states.STATE_STEPS.get(event.state)
    bound = event.planned.timeouts.get(timeout_key(step)) if step and event.planned else None
    within = f" within {bound} s (the bound Plan sized from this run's bytes and the job sizes)" if bound else ""
    return (
        f"Its jobs did not finish{within}, so the run stopped waiting for them. Jobs still running go on until "
        f"they end or reach the job definitions' attempt limit: `bgz stop {event.execution}` terminates them. Jobs "
        "that never started point at the job queue (subnets without a route to ECR, no capacity); a start of the "
        "same run resumes where they stopped"
    )


def _refresh_failed(event: FailureEvent) -> str:
    """RefreshReaders failed after the flag was committed: where that leaves the bioindex."""
    if event.state != states.REFRESH_READERS:
        return ""
    flag = str(event.mode == Mode.COMPRESS).lower()
    return (
        f"The bioindex flag is compressed={flag} and both copies of every file are kept, so each process answers "
        "as before whichever flag it loaded. Restart every bioindex process, then start a new run of the same index "
        "and prefix to finish (bgz start), or roll back"
    )


def _confirm_timed_out(event: FailureEvent) -> str:
    bound = event.planned.refresh.get("confirmTimeoutSeconds") if event.planned else None
    return (
        f"Nobody confirmed that the bioindex was restarted within {bound} s (ReaderConfirmTimeoutSeconds; "
        "`bgz confirm EXECUTION` confirms)"
    )


def _unreadable(event: FailureEvent) -> str:
    """The flag was set back because the bioindex could not read the converted files: what came of that."""
    if event.error.get("Error") != "ConvertedFilesUnreadable" and event.state not in states.AFTER_UNREADABLE:
        return ""
    if event.state == states.PROVE_READERS:
        return (
            "Every bioindex process reloaded the old flag and answers as before the run. Find out why it cannot "
            "read the converted files (a bgzip without S3 support, no access to the objects), then start a new run"
        )
    return "This was after the bioindex could not read the converted files and the flag was set back"


def explain(event: FailureEvent) -> dict:
    timed_out = event.error.get("Error") == "States.Timeout"
    if timed_out and event.state == states.REFRESH_READERS:
        cause = _confirm_timed_out(event)
    elif timed_out:
        cause = _timed_out(event)
    else:
        cause = _describe_cause(str(event.error.get("Cause", "")), str(event.error.get("Error", "")))
    parts = [f"{event.state} failed", cause, _unreadable(event), _refresh_failed(event)]
    parts += [_job_errors(event), _failed_files(event)]
    gone = _canary_gone(event)
    if gone:
        parts.append(gone)
    elif event.state in states.BEFORE_DELETION[event.mode] or event.state in states.AFTER_UNREADABLE:
        parts.append(NOTHING_DELETED[event.mode])
    plan = event.planned
    if plan is not None:
        parts.append(f"index {plan.index!r} prefix {plan.prefix!r} at {plan.target}")
        parts.append(f"run folder: {plan.run_folder}")
    cause = ". ".join(p for p in parts if p) + "."
    return Explanation(error=f"{event.state}Failed", cause=cap(cause, where=plan.run_folder if plan else "")).to_json()


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=FailureEvent)
def handler(event: FailureEvent, context: LambdaContext) -> dict:
    return end_run(event, explain)
