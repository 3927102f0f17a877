"""ProveReaders state: before anything is deleted, prove that the bioindex reads the new side.

1. The flag is re-read through the backend: still what flag.json recorded, or nothing is deleted.
2. The serving processes are refreshed: `GET /api/bio/indexes` on new connections, so that each
   process reloads its cached flag (the bioindex refreshes one process per request).
3. Every sample query captured at Plan is asked again: the answers must not have changed.
4. The canary's spent side is deleted and the samples asked again, many times each, to reach every
   process: a process that still reads the spent side now answers differently. Then the canary is
   restored, the run fails saying to restart or refresh the bioindex, and nothing else is deleted.

Without a BioindexUrl there is no server to ask: only step 1 runs, and the record says so.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from batch_job.locations import parse_location
from batch_job.records import CanaryStatus, Mode, ReadersCheck, now
from batch_job.runfolder import RunFolder
from batch_job.steps.delete import check_flag
from bioindex import config
from bioindex.errors import ReadersStale
from bioindex.readers import differences

from .canary import Canary

logger = Logger()
tracer = Tracer()
# The engine's own log lines (locks, plan) come out in the same structured form.
copy_config_to_registered_loggers(source_logger=logger, include={"bgzip-job"})
SHOWN = 3


class ProveReadersEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str
    execution: str
    compressed: bool


def _stale(found: list[str], side: str, canary: str | None) -> ReadersStale:
    shown = "; ".join(found[:SHOWN]) + (f" (and {len(found) - SHOWN} more)" if len(found) > SHOWN else "")
    where = (
        f"once canary {canary} was deleted; the canary was restored byte for byte and nothing else was deleted"
        if canary
        else "before anything was deleted"
    )
    return ReadersStale(
        f"{len(found)} bioindex answers differed from before the run {where}: {shown}. A bioindex process still "
        f"reads the {side}: restart the bioindex service (or send GET /api/bio/indexes to every process), "
        "then start a new execution"
    )


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=ProveReadersEvent)
def handler(event: ProveReadersEvent, context: LambdaContext) -> dict:
    run = RunFolder(parse_location(event.run))
    plan = run.read_plan()
    if (plan.mode == Mode.COMPRESS) is not event.compressed:
        raise ValueError(f"run {run.uri} is a {plan.mode} run; refusing a check for compressed={event.compressed}")
    check_flag(run, plan)
    bioindex = config.server()
    config.backend(bioindex).check_unchanged(run.read_flag())
    record = run.read_readers_check() or ReadersCheck(event.execution)
    readers = run.read_readers()
    if bioindex is None or readers is None:
        reason = "no BioindexUrl configured" if bioindex is None else "no sample answers were captured at Plan"
        record.checked, record.reason, record.finished = False, reason, now()
        run.write_readers_check(record)
        logger.warning("readers not proven", extra={"reason": reason})
        return {"checked": False, "reason": reason}

    side = "uncompressed .json files" if event.compressed else "compressed .json.gz files"
    settings = config.reader_check()
    canary = Canary(run, plan, readers.canary, record)
    if canary.status == CanaryStatus.RESTORED:
        raise _stale(record.differences or ["an earlier attempt"], side, readers.canary)
    if canary.status != CanaryStatus.RELEASED:
        bioindex.refresh(settings.refresh_requests)
        record.refreshed = settings.refresh_requests
        if canary.status is None:  # a retried attempt may have deleted the canary already: then only after
            found = differences(bioindex, readers, 1)
            if found:
                record.checked, record.differences, record.finished = True, found, now()
                run.write_readers_check(record)
                raise _stale(found, side, None)
        canary.delete()
        found = differences(bioindex, readers, settings.check_requests)
        record.requests, record.differences = settings.check_requests * len(readers.samples), found
        if found:
            canary.restore()
            raise _stale(found, side, readers.canary)
        canary.release()
    record.checked, record.finished = True, now()
    run.write_readers_check(record)
    logger.info("readers proven", extra={"canary": canary.keys, "samples": len(readers.samples)})
    return {"checked": True, "canary": canary.keys, "samples": len(readers.samples)}
