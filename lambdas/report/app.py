"""The Report Lambda: Summarize and ExplainFailure (the compress and rollback machines) and ReportIndexes
(the bulk machine), each in a module of its own - summary.py, explain.py, bulk.py - behind the
event's `action`. Whichever ends an index run, the run is over: its prefix lock is released first,
and its outcome.json written for a bulk run's report, which reads each index run's own.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from report.bulk import bulk
from report.event import ReportEvent, run_folder
from report.explain import explain
from report.summary import summary

from batch_job.locations import parse_location
from batch_job.locks import Locks
from batch_job.records import Outcome

logger = Logger()
tracer = Tracer()
# The engine's own log lines (locks, plan) come out in the same structured form.
copy_config_to_registered_loggers(source_logger=logger, include={"bgzip-job"})


def release_lock(event: ReportEvent) -> None:
    """The run is over, whichever way: free its prefix for the next run."""
    run = run_folder(event)
    target = event.planned.target if event.planned else event.plan.get("target")  # .get: as in run_folder
    if run is None or not target:
        return  # Plan failed: it released what it had taken
    try:
        Locks(parse_location(target)).release(run.uri)
    except Exception:  # the lock is then stale, and the next Plan clears it: never hide the run's outcome
        logger.exception("could not release the lock")


def record_outcome(event: ReportEvent, result: dict) -> None:
    """outcome.json in the run folder, what a bulk run's report reads of this run; best effort, the
    result stands. A run refused before Plan made its folder writes nothing (Step Functions has it)."""
    run = run_folder(event)
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
