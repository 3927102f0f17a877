"""SetCompressed / SetUncompressed states: flip the bioindex `compressed` flag and prove it flipped.

Before calling the bioindex it re-checks, itself, that this run verified every planned file. After
the call it reads the flag back, and only then writes RUN/flag.json: the receipt without which the
engine's delete and remove-compressed steps refuse to run.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from batch_job import runfolder as rf
from batch_job.locations import parse_location
from batch_job.runfolder import Flag, RunFolder

from .bioindex import BioindexClient, confirm

logger = Logger(service="bgzip-workflow")
tracer = Tracer(service="bgzip-workflow")


class NotVerified(Exception):
    """The run's verify manifests do not show every planned file verified OK."""


class PlanMismatch(Exception):
    """The request does not match the run's plan (other index, prefix or direction)."""


class SetCompressedEvent(BaseModel):
    index: str
    prefix: str
    compressed: bool
    run: str
    execution: str


def check_run(run: RunFolder, event: SetCompressedEvent) -> None:
    plan = run.read_plan()
    mode = rf.COMPRESS if event.compressed else rf.ROLLBACK
    if (plan.index, plan.prefix, plan.mode) != (event.index, event.prefix, mode):
        raise PlanMismatch(
            f"run {run.uri} is a {plan.mode} plan for {plan.index!r} {plan.prefix!r}; "
            f"refusing to set compressed={str(event.compressed).lower()} for {event.index!r} {event.prefix!r}"
        )
    manifests = run.read_manifests(rf.STEP_VERIFY, plan.shards).values()
    verified = {r["key"] for body in manifests for r in body["files"] if r.get("ok")}
    missing = [f.key for f in plan.files if f.key not in verified]
    if missing:
        raise NotVerified(f"{len(missing)} planned files are not verified OK in this run, e.g. {missing[0]}")


def bioindex_client() -> BioindexClient:
    secret_arn = os.environ.get("BIOINDEX_TOKEN_SECRET_ARN", "")
    token = parameters.get_secret(secret_arn, max_age=300) if secret_arn else None
    return BioindexClient(
        os.environ["BIOINDEX_URL"],
        token=token,
        set_path=os.environ.get("BIOINDEX_SET_PATH") or BioindexClient.set_path,
        allow_insecure=os.environ.get("ALLOW_INSECURE_BIOINDEX", "false").lower() == "true",
        backoff_seconds=float(os.environ.get("BIOINDEX_RETRY_BASE_SECONDS", "1")),
    )


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=SetCompressedEvent)
def handler(event: SetCompressedEvent, context: LambdaContext) -> dict:
    client = bioindex_client()
    run = RunFolder(parse_location(event.run))
    check_run(run, event)
    before = client.compressed_flags(event.index)
    client.set_compressed(event.index, event.prefix, event.compressed)
    after = client.compressed_flags(event.index)
    confirm(event.index, event.compressed, before, after)
    flag = Flag(event.index, event.prefix, event.compressed, client.base_url)
    run.write_flag(flag)
    logger.info("flag confirmed", extra={"index": event.index, "prefix": event.prefix, "compressed": event.compressed})
    return {"index": flag.index, "prefix": flag.prefix, "compressed": flag.compressed, "confirmedAt": flag.confirmed_at}
