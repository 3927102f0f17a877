"""Plan state of both state machines.

Validates the execution input, runs the bioindex pre-flight (the (index, prefix) exists once, is
built, overlaps no other index; a rollback's index was not built from .json.gz), then - with the
engine's own planner - takes the prefix's lock (refused while any other run holds this prefix or
one containing or inside it) and writes the run's plan.json, and records the bioindex's answers to
sample queries for the reader check. Every refusal costs no compute: no Batch job has started yet.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_job.bioindex.errors import IndexNotServed
from batch_job.bioindex.rows import IndexRow
from batch_job.bioindex.server import BioindexServer
from batch_job.errors import BadInput
from batch_job.keys import key_prefix_of
from batch_job.locations import check_prefix, parse_location
from batch_job.locks import Locks, execution_status, holder_alive
from batch_job.rates import JobLimits, step_timeouts
from batch_job.runfolder import RunFolder, run_folder_uri
from batch_job.steps.plan import make_plan, sources_and_shards
from shared import config
from shared.baseline import capture
from workflow.boundary import PlanPreview, PlanResult
from workflow.events import PlanEvent

from . import selftest

logger = Logger()
tracer = Tracer()
# The engine's own log lines (locks, plan) come out in the same structured form.
copy_config_to_registered_loggers(source_logger=logger, include={"bgzip-job"})

SAMPLED = 5  # files a dry run names for sampling the compression ratio


class RunEnded(Exception):
    """The execution was stopped (or ended) while Plan worked: the lock Plan took is released, as no
    later state of the run will release it."""


def dry_run(target: str, rollback: bool, shards: int | None, row: IndexRow) -> dict:
    """What a run would cover, with nothing taken or written: the pre-flight passed, the listing, the
    shards, a few files to sample (spread over sizes), and the lock the run would meet."""
    location = parse_location(target)
    objects, count = sources_and_shards(location, rollback, shards)
    by_size = sorted(objects, key=lambda o: o.size)
    sampled = sorted({by_size[i * (len(by_size) - 1) // (SAMPLED - 1)].key for i in range(SAMPLED)})
    blocking = Locks(location).blocking()
    stale = blocking is not None and not holder_alive(blocking)  # the run's own Plan would clear it
    return PlanPreview(
        dry_run=True,
        target=target,
        row=row.receipt(),
        files=len(objects),
        bytes=sum(o.size for o in objects),
        shards=count,
        sampled_keys=sampled,
        locked=f"{blocking.target} is locked by {blocking.holder()}" if blocking and not stale else "",
        stale_lock=f"a stale lock of {blocking.holder()}, which the run clears" if stale else "",
    ).to_json()


def job_limits() -> JobLimits:
    """The stack's job sizes and limits, from the template (the defaults are its defaults)."""
    defaults = JobLimits()
    return JobLimits(
        job_vcpus=float(os.environ.get("JOB_VCPUS", defaults.job_vcpus)),
        max_vcpus=int(os.environ.get("MAX_VCPUS", defaults.max_vcpus)),
        attempts=int(os.environ.get("JOB_ATTEMPTS", defaults.attempts)),
        attempt_seconds=int(os.environ.get("JOB_ATTEMPT_SECONDS", defaults.attempt_seconds)),
        runnable_seconds=int(os.environ.get("RUNNABLE_TIMEOUT_SECONDS", defaults.runnable_seconds)),
        floor_seconds=int(os.environ.get("STEP_TIMEOUT_FLOOR_SECONDS", defaults.floor_seconds)),
    )


def check_allowed(key_prefix: str) -> None:
    """The stack's AllowedPrefix: its roles reach no data outside it, so a run there would fail at
    its first read. Refused here instead, before the bioindex is asked or anything is written."""
    allowed = os.environ.get("ALLOWED_PREFIX", "")
    if not key_prefix.startswith(allowed):
        raise BadInput(
            f"key prefix {key_prefix!r} is outside this stack's AllowedPrefix {allowed!r}: the jobs may read "
            "and write only there (deploy with a wider AllowedPrefix to convert it)"
        )


def check_served(bioindex: BioindexServer, index: str) -> None:
    """The server the reader proof asks must be the one that serves this index: a bioindex serves
    several portals, each with its own database, at /<portal>/api/bio/..., and one stack is one portal."""
    listed = {entry.get("index") for entry in bioindex.listing()}
    if index not in listed:
        raise IndexNotServed(
            f"the bioindex at {bioindex.base_url} does not list index {index!r} in GET /api/bio/indexes "
            f"({len(listed)} indexes listed): BioindexUrl must be the URL of the portal whose database holds it, "
            "e.g. https://host/<portal>"
        )


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    if isinstance(event, dict) and "selftest" in event:  # `bgz selftest`, after a deploy
        return selftest.run(parse(event=event, model=selftest.SelfTestEvent))
    return plan(parse(event=event, model=PlanEvent))


def plan(event: PlanEvent) -> dict:
    rollback = event.mode == "rollback"
    index, prefix = event.input.index, event.input.prefix
    key_prefix = check_prefix(key_prefix_of(config.s3_subdir(), prefix), "key prefix")
    check_allowed(key_prefix)
    bioindex = config.server()
    backend = config.backend(bioindex)
    row = backend.preflight(index, prefix, key_prefix, rollback)
    if bioindex is not None:
        check_served(bioindex, index)
    logger.info("pre-flight passed", extra={"backend": backend.name, "row": row.receipt()})

    target = f"s3://{os.environ['DATA_BUCKET']}/{key_prefix}"
    if event.dry_run:
        return dry_run(target, rollback, event.input.shards, row)
    run = RunFolder(parse_location(run_folder_uri(os.environ["RUN_BUCKET"], event.execution)))
    plan = make_plan(
        target,
        index,
        run,
        rollback=rollback,
        shards=event.input.shards,
        bioindex_prefix=prefix,
        execution_arn=event.execution_arn,
    )
    logger.info("planned", extra={"files": len(plan.files), "bytes": plan.total_bytes, "shards": plan.shards})

    check = config.reader_check_settings()
    baseline = run.read_baseline()
    if baseline is None and bioindex is not None and check.queries > 0:
        try:
            baseline = capture(bioindex, backend, row, plan, check.queries)
        except BaseException:
            Locks(parse_location(plan.target)).release(run.uri)  # the failure path has no plan to release it by
            raise
        run.write_baseline(baseline)
    if baseline is not None:
        logger.info("baseline captured", extra={"canary": baseline.canary_key, "queries": len(baseline.answers)})
    status = execution_status(event.execution_arn)
    if status not in ("RUNNING", None, "ExecutionDoesNotExist"):  # `bgz stop` while Plan worked: no state follows
        Locks(parse_location(plan.target)).release(run.uri)
        ended = f"execution {event.execution} is {status}: Plan released its lock of {plan.target}"
        logger.warning(ended)
        raise RunEnded(ended)
    return PlanResult(
        run_folder=run.uri,
        index=plan.index,
        prefix=plan.prefix,
        target=plan.target,
        shards=plan.shards,
        files=len(plan.files),
        bytes=plan.total_bytes,
        level=event.input.level,
        timeouts=step_timeouts(plan, job_limits().shared_by(event.input.bulk_concurrency or 1)),
        refresh=config.reader_refresh().state(),
    ).to_json()
