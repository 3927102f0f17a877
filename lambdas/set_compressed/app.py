"""SetCompressed / SetUncompressed states: flip the bioindex `compressed` flag and prove it flipped.

Before touching the bioindex it re-checks, itself, that this run verified every planned file. The
flag backend then changes exactly this (index, prefix) and proves it (mysql: the one row, by id;
http: a changed listing or an earlier receipt). Only then is RUN/flag.json written - the receipt
without which the engine's delete and remove-compressed steps refuse to run - and a copy kept as
the (index, prefix)'s latest receipt.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_job.errors import PlanMismatch
from batch_job.locations import parse_location
from batch_job.locks import Locks
from batch_job.records import Mode, PlanHead, Step
from batch_job.runfolder import RunFolder, manifest_key
from shared import config
from shared.flag_record import set_and_record
from workflow.boundary import FlagReadBack
from workflow.events import SetCompressedEvent

logger = Logger()
tracer = Tracer()


class NotVerified(Exception):
    """The run's verify manifests do not show every planned file verified OK."""


def check_run(run: RunFolder, event: SetCompressedEvent) -> PlanHead:
    """From the heads of the plan and the verify manifests: each shard's manifest belongs to this
    plan, and its OK records are exactly the shard's planned keys (their count and a digest of
    them): memory by shards, not by files."""
    plan = run.read_plan_head()
    mode = Mode.COMPRESS if event.compressed else Mode.ROLLBACK
    if (plan.index, plan.prefix, plan.mode) != (event.index, event.prefix, mode):
        raise PlanMismatch(
            f"run {run.uri} is a {plan.mode} plan for {plan.index!r} {plan.prefix!r}; "
            f"refusing to set compressed={str(event.compressed).lower()} for {event.index!r} {event.prefix!r}"
        )
    heads = run.read_manifest_heads(Step.VERIFY, plan.shards)
    short = []
    for shard, (planned, keys) in enumerate(zip(plan.files_per_shard, plan.keys_per_shard, strict=True)):
        head = heads.get(shard)
        ours = head is not None and (head.step, head.shard, head.plan_created) == (Step.VERIFY, shard, plan.created)
        verified = head.totals.ok if ours else 0
        if verified != planned or (planned and head.ok_keys != keys):  # the very keys planned, all OK
            short.append((shard, max(planned - verified, 1)))
    if short:
        missing = sum(n for _, n in short)
        shard, _ = short[0]
        raise NotVerified(
            f"{missing} planned files are not verified OK in this run, e.g. in shard {shard} "
            f"({run.uri}{manifest_key(Step.VERIFY, shard)})"
        )
    return plan


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=SetCompressedEvent)
def handler(event: SetCompressedEvent, context: LambdaContext) -> dict:
    run = RunFolder(parse_location(event.run_folder))
    plan = check_run(run, event)
    Locks(parse_location(plan.target)).check_held_by(run.uri)  # no other run may be converting this prefix
    bioindex = config.server()
    backend = config.backend(bioindex)
    # Sets the flag through the backend, which reads it back as that backend can (batch_job/bioindex/),
    # then writes what it read to flag.json and the (index, prefix)'s receipt.
    flag = set_and_record(backend, run, plan, event.compressed, bioindex.base_url if bioindex else "", event.execution)
    logger.info("flag read back", extra={"flag": flag.__dict__})
    return FlagReadBack(
        index=flag.index, prefix=flag.prefix, compressed=flag.compressed, read_back_at=flag.read_back_at
    ).to_json()
