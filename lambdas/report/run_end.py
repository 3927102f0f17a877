"""What Summarize and ExplainFailure both do, whichever ends an index run: release its prefix lock
first, so the next run may start, then write its outcome.json, which a bulk run's report reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aws_lambda_powertools import Logger

from batch_job.locations import parse_location
from batch_job.locks import Locks
from batch_job.records import Outcome
from workflow.events import FailureEvent, RunEndEvent

logger = Logger(child=True)
Event = TypeVar("Event", bound=RunEndEvent)


def end_run(event: Event, answer: Callable[[Event], dict]) -> dict:
    """The run's lock released first, whatever happens to its answer, so the next run may start;
    then `answer(event)` (Summarize's RunSummary, or ExplainFailure's Explanation), recorded."""
    release_lock(event)
    return recorded(event, answer(event))


def release_lock(event: RunEndEvent) -> None:
    """The run is over, whichever way: free its prefix for the next run."""
    run, target = event.run_folder(), event.target()
    if run is None or not target:
        return  # Plan failed: it released what it had taken
    try:
        Locks(parse_location(target)).release(run.uri)
    except Exception:  # the lock is then stale, and the next Plan clears it: never hide the run's outcome
        logger.exception("could not release the lock")


def recorded(event: RunEndEvent, result: dict) -> dict:
    """`result` (Summarize's RunSummary, or ExplainFailure's Explanation), once written to the run
    folder as its outcome.json; best effort, the result stands. A run refused before Plan made its
    folder writes nothing (Step Functions has it)."""
    run = event.run_folder()
    if run is None:
        return result
    if isinstance(event, FailureEvent):
        outcome = Outcome("FAILED", error=result["error"], cause=result["cause"])
    else:
        outcome = Outcome("SUCCEEDED", summary=result)
    try:
        run.write_outcome(outcome)
    except Exception:
        logger.exception("could not write the run's outcome")
    return result
