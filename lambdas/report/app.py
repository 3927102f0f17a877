"""Summarize and ExplainFailure states: turn the run folder and Step Functions errors into plain words.
The bulk machine's ReportIndexes state: one row per index.

`summary` reads the run's manifests for the Succeed output; `explain` turns a caught error (a Batch
job description as JSON, a Lambda error, or plain text) and the failed step's manifests into the
Error and Cause of the execution's Fail state. Either way the run is over: its prefix lock is released,
and its outcome.json written for a bulk run's report, which reads each index run's own.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from batch_job import states
from batch_job.boundary import PlanResult, RunSummary, files_sentence
from batch_job.errors import BadInput
from batch_job.locations import parse_location
from batch_job.locks import Locks
from batch_job.rates import timeout_key
from batch_job.records import CanaryStatus, FileRecord, Mode, Outcome, ReadersCheck, Step, Totals
from batch_job.runfolder import RunFolder, run_folder_uri

logger = Logger()
tracer = Tracer()
# The engine's own log lines (locks, plan) come out in the same structured form.
copy_config_to_registered_loggers(source_logger=logger, include={"bgzip-job"})

# ProveReaders deletes only its canary, and restores it before failing (its record says if not).
CANARY_GONE = (CanaryStatus.SET_ASIDE, CanaryStatus.DELETED)
NOTHING_DELETED = {Mode.COMPRESS: "No original was deleted", Mode.ROLLBACK: "No compressed file was removed"}
SHOWN_FILES = 5
MAX_CAUSE = 32_000  # a Fail state's Cause holds at most 32,768 characters
ROW_CAUSE = 600  # a bulk table row, as the output shows it (the report in the run bucket has it all)


class ReportEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["summary", "explain", "bulk"]
    execution: str
    mode: Mode
    step: str = ""
    error: dict[str, Any] = {}
    plan: dict[str, Any] = {}
    machine: str = ""  # bulk: the index runs' state machine
    results: list[dict[str, Any]] = []  # bulk: each index's outcome
    skipped: list[dict[str, Any]] = []  # bulk: indexes not converted, and why

    @property
    def planned(self) -> PlanResult | None:
        """Plan's result; None when Plan itself failed (its failure state passes an empty plan)."""
        if not self.plan:
            return None
        try:
            return PlanResult.from_json(self.plan)
        except BadInput:  # a run planned by an older release, still running across an upgrade
            logger.warning("Plan's result is not this release's: %s", sorted(self.plan))
            return None


def _run(event: ReportEvent) -> RunFolder | None:
    run = event.planned.run if event.planned else event.plan.get("run")  # .get: an older release's plan
    return RunFolder(parse_location(run)) if run else None


def _records(run: RunFolder, step: Step, shards: int) -> list[FileRecord]:
    manifests = run.read_manifests(step, shards)
    return [record for manifest in manifests.values() for record in manifest.files]


def release_lock(event: ReportEvent) -> None:
    """The run is over, whichever way: free its prefix for the next run."""
    run = _run(event)
    target = event.planned.target if event.planned else event.plan.get("target")  # .get: as in _run
    if run is None or not target:
        return  # Plan failed: it released what it had taken
    try:
        Locks(parse_location(target)).release(run.uri)
    except Exception:  # the lock is then stale, and the next Plan clears it: never hide the run's outcome
        logger.exception("could not release the lock")


def _totals(run: RunFolder, step: Step, shards: int) -> Totals:
    return sum((head.totals for head in run.read_manifest_heads(step, shards).values()), Totals())


def summary(event: ReportEvent) -> dict:
    """The run's RunSummary, from the heads of the plan and the manifests alone: memory by shards,
    not by files."""
    run = _run(event)
    plan = run.read_plan_head()
    verified = _totals(run, Step.VERIFY, plan.shards)
    compressed, original = verified.compressed_bytes, verified.original_bytes
    removed = _totals(run, plan.destructive_step, plan.shards).deleted
    check = run.read_readers_check() or ReadersCheck("")
    if check.canary_status == CanaryStatus.RELEASED:
        removed += len(check.canary.objects)
    return RunSummary(
        mode=plan.mode,
        index=plan.index,
        prefix=plan.prefix,
        run=run.uri,
        files=plan.file_count,
        bytes_uncompressed=original,
        bytes_compressed=compressed,
        objects_deleted=removed,
        readers_proven=bool(check.proven),
    ).to_json()


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


def _failed_files(event: ReportEvent) -> str:
    step = states.STATE_STEPS.get(event.step)
    run = _run(event)
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


def _canary_gone(event: ReportEvent) -> str:
    """What a failed ProveReaders left deleted, from its own record (normally nothing)."""
    run = _run(event)
    if event.step != states.PROVE_READERS or run is None:
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


def _job_errors(event: ReportEvent) -> str:
    """Why the step's jobs exited non-zero, from the error records they left (on AWS the job's own
    status reason says only "Essential container in task exited")."""
    step = states.STATE_STEPS.get(event.step)
    run = _run(event)
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


def _timed_out(event: ReportEvent) -> str:
    """A Batch step past its TimeoutSeconds. Step Functions stops waiting; it is not documented to
    terminate the jobs, which may run on until their own attempt limit."""
    step = states.STATE_STEPS.get(event.step)
    bound = event.planned.timeouts.get(timeout_key(step)) if step and event.planned else None
    within = f" within {bound} s (the bound Plan sized from this run's bytes and the job sizes)" if bound else ""
    return (
        f"Its jobs did not finish{within}, so the run stopped waiting for them. Jobs still running go on until "
        f"they end or reach the job definitions' attempt limit: `bgz stop {event.execution}` terminates them. Jobs "
        "that never started point at the job queue (subnets without a route to ECR, no capacity); a start of the "
        "same run resumes where they stopped"
    )


def _refresh_failed(event: ReportEvent) -> str:
    """RefreshReaders failed after the flag was committed: where that leaves the bioindex."""
    if event.step != states.REFRESH_READERS:
        return ""
    flag = str(event.mode == Mode.COMPRESS).lower()
    return (
        f"The bioindex flag is compressed={flag} and both copies of every file are kept, so each process answers "
        "as before whichever flag it loaded. Restart every bioindex process, then start a new run of the same index "
        "and prefix to finish (bgz start), or roll back"
    )


def _confirm_timed_out(event: ReportEvent) -> str:
    bound = event.planned.refresh.get("confirmTimeoutSeconds") if event.planned else None
    return (
        f"Nobody confirmed that the bioindex was restarted within {bound} s (ReaderConfirmTimeoutSeconds; "
        "`bgz confirm RUN` confirms)"
    )


def _unreadable(event: ReportEvent) -> str:
    """The flag was set back because the bioindex could not read the converted files: what came of that."""
    if event.error.get("Error") != "ConvertedFilesUnreadable" and event.step not in states.AFTER_UNREADABLE:
        return ""
    if event.step == states.PROVE_READERS:
        return (
            "Every bioindex process reloaded the old flag and answers as before the run. Find out why it cannot "
            "read the converted files (a bgzip without S3 support, no access to the objects), then start a new run"
        )
    return "This was after the bioindex could not read the converted files and the flag was set back"


def explain(event: ReportEvent) -> dict:
    timed_out = event.error.get("Error") == "States.Timeout"
    if timed_out and event.step == states.REFRESH_READERS:
        cause = _confirm_timed_out(event)
    elif timed_out:
        cause = _timed_out(event)
    else:
        cause = _describe_cause(str(event.error.get("Cause", "")), str(event.error.get("Error", "")))
    parts = [f"{event.step} failed", cause, _unreadable(event), _refresh_failed(event)]
    parts += [_job_errors(event), _failed_files(event)]
    gone = _canary_gone(event)
    if gone:
        parts.append(gone)
    elif event.step in states.BEFORE_DELETION[event.mode] or event.step in states.AFTER_UNREADABLE:
        parts.append(NOTHING_DELETED[event.mode])
    plan = event.planned
    if plan is not None:
        parts.append(f"index {plan.index!r} prefix {plan.prefix!r} at {plan.target}")
        parts.append(f"run folder: {plan.run}")
    cause = ". ".join(p for p in parts if p) + "."
    return {"error": f"{event.step}Failed", "cause": cap(cause, where=plan.run if plan else "")}


def cap(text: str, limit: int = MAX_CAUSE, where: str = "") -> str:
    """At most `limit` characters (a Fail state's Cause may hold 32,768): the head, then how much
    was left out and where the rest is."""
    if len(text) <= limit:
        return text
    tail = f" ... ({len(text) - limit:,} characters more{'; all of it: ' + where if where else ''})"
    return text[: limit - len(tail)] + tail


def _run_of(execution: str) -> RunFolder:
    """The run folder of an execution of this stack, by its name."""
    return RunFolder(parse_location(run_folder_uri(os.environ["RUN_BUCKET"], execution)))


def record_outcome(event: ReportEvent, result: dict) -> None:
    """outcome.json in the run folder, what a bulk run's report reads of this run; best effort, the
    result stands. A run refused before Plan made its folder writes nothing (Step Functions has it)."""
    run = _run(event)
    if run is None:
        return
    if event.action == "summary":
        outcome = Outcome("SUCCEEDED", summary=result)
    else:
        outcome = Outcome("FAILED", error=result["error"], cause=result["cause"])
    try:
        run.write_outcome(outcome)
    except Exception:
        logger.exception("could not write the run's outcome")


def _described(machine: str, result: dict[str, Any]) -> Outcome:
    """An index run's outcome from Step Functions, when its run folder has none (it ended before
    its Summarize or ExplainFailure could write one)."""
    name = result.get("execution", "")
    arn = machine.replace(":stateMachine:", ":execution:") + ":" + name
    try:
        found = boto3.client("stepfunctions").describe_execution(executionArn=arn)
    except Exception:  # the table still names the run, whose page says why
        logger.exception("could not describe an index run")
        return Outcome(result.get("status", "FAILED"), cause=f"see execution {name}")
    if found["status"] == "SUCCEEDED":
        return Outcome("SUCCEEDED", summary=json.loads(found.get("output") or "{}"))
    return Outcome(found["status"], error=found.get("error", ""), cause=found.get("cause", ""))


def _index_outcome(machine: str, result: dict[str, Any]) -> Outcome:
    try:
        found = _run_of(result.get("execution", "")).read_outcome()
    except Exception:  # malformed or unreadable: Step Functions knows too
        logger.exception("could not read an index run's outcome")
        found = None
    return found if found is not None else _described(machine, result)


def bulk(event: ReportEvent) -> dict:
    """Every index's outcome, read from its own run: the whole table goes to this bulk run's folder
    (bulk-report.json and .txt); the output holds the counts, the table's head and its address."""
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda r: _index_outcome(event.machine, r), event.results))
    rows = []
    for result, outcome in zip(event.results, outcomes, strict=True):
        summary = outcome.summary or {}
        failed = result.get("status") != "SUCCEEDED"
        rows.append(
            {
                "index": result.get("index"),
                "prefix": result.get("prefix"),
                "status": "FAILED" if failed else "SUCCEEDED",
                "execution": result.get("execution"),
                "files": summary.get("files"),
                "bytesUncompressed": summary.get("bytesUncompressed"),
                "bytesCompressed": summary.get("bytesCompressed"),
                "cause": f"{outcome.error or outcome.status}: {outcome.cause}".strip() if failed else "",
            }
        )
    rows += [
        {"index": s.get("index"), "prefix": s.get("prefix"), "status": "SKIPPED", "cause": s.get("reason", "")}
        for s in event.skipped
    ]
    failed = sum(r["status"] == "FAILED" for r in rows)
    converted = sum(r["status"] == "SUCCEEDED" for r in rows)
    head = (
        f"{event.mode} of {len(event.results)} indexes: {converted} succeeded, {failed} failed, "
        f"{len(event.skipped)} skipped"
    )
    run = _run_of(event.execution)
    table = "\n".join([head, *map(_row_line, rows)])
    run.location.store.write_bytes(run.location.key("bulk-report.json"), json.dumps(rows, indent=1).encode())
    run.location.store.write_bytes(run.location.key("bulk-report.txt"), table.encode() + b"\n")
    where = run.location.store.uri(run.location.key("bulk-report.txt"))
    shown = "\n".join([head, *(cap(_row_line(r), ROW_CAUSE) for r in rows)])
    return {
        "mode": event.mode,
        "converted": converted,
        "failed": failed,
        "skipped": len(event.skipped),
        "table": cap(shown, where=where),
        "report": where,
    }


def _row_line(row: dict) -> str:
    line = f"{row['index']} {row['prefix']}: {row['status']}"
    if row.get("files") is not None:
        line += ", " + files_sentence(row["files"], row["bytesUncompressed"] or 0, row["bytesCompressed"] or 0)
    return line + (f" ({row['cause']})" if row["cause"] else "")


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=ReportEvent)
def handler(event: ReportEvent, context: LambdaContext) -> dict:
    if event.action == "bulk":
        return bulk(event)  # the children released their own locks
    release_lock(event)  # first: whatever happens to the report, the next run may start
    result = summary(event) if event.action == "summary" else explain(event)
    record_outcome(event, result)
    return result
