"""Plan state of both state machines.

Validates the execution input, refuses to start while another execution converts the same index and
prefix, runs the bioindex pre-flight (the (index, prefix) exists once, is built, overlaps no other
index; a rollback's index was not built from .json.gz), writes the run's plan.json with the engine's
own planner, and records the bioindex's answers to sample queries for the reader check. Every
refusal costs no compute: no Batch job has started yet.
"""

from __future__ import annotations

import json
import os
import re
from typing import Literal

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, field_validator

from batch_job.locations import check_prefix, parse_location
from batch_job.runfolder import RunFolder, s3_prefix
from batch_job.steps.plan import make_plan
from bioindex import config
from bioindex.readers import capture

logger = Logger()
tracer = Tracer()

INDEX_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class AlreadyRunning(Exception):
    """Another execution is converting the same index and prefix."""


class ExecutionInput(BaseModel):
    """What an operator passes to StartExecution: the index name and prefix as `__Indexes` has them."""

    model_config = ConfigDict(extra="forbid")

    index: str = Field(pattern=INDEX_NAME)
    prefix: str
    shards: int | None = Field(default=None, ge=1, le=10_000)
    level: int = Field(default=-1, ge=-1, le=9)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_prefix(value)


class PlanEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["compress", "rollback"]
    execution: str
    execution_arn: str = Field(alias="executionArn")
    input: ExecutionInput

    @field_validator("execution")
    @classmethod
    def _execution(cls, value: str) -> str:
        # The execution name names the Batch jobs and the run folder.
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", value):
            raise ValueError(f"execution name {value!r} may use only letters, digits, '-' and '_' (Batch job names)")
        return value


def _same_work(execution: dict, index: str, prefix: str) -> bool:
    try:
        other = json.loads(execution.get("input") or "{}")
    except json.JSONDecodeError:
        return False
    return isinstance(other, dict) and other.get("index") == index and other.get("prefix") == prefix


@tracer.capture_method
def refuse_concurrent_runs(event: PlanEvent) -> None:
    """Refuse if a compress or rollback execution on the same index and prefix started earlier.

    Of two executions started together, the later one (by start time, then name) is refused, so
    exactly one goes on.
    """
    sfn = boto3.client("stepfunctions")
    mine = sfn.describe_execution(executionArn=event.execution_arn)
    mine_key = (mine["startDate"], mine["name"])
    for machine in (os.environ["COMPRESS_STATE_MACHINE_ARN"], os.environ["ROLLBACK_STATE_MACHINE_ARN"]):
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine, statusFilter="RUNNING")
        for page in pages:
            for summary in page["executions"]:
                if summary["executionArn"] == event.execution_arn:
                    continue
                other = sfn.describe_execution(executionArn=summary["executionArn"])
                if _same_work(other, event.input.index, event.input.prefix) and (
                    (other["startDate"], other["name"]) < mine_key
                ):
                    raise AlreadyRunning(
                        f"execution {other['name']} is already converting index {event.input.index!r} "
                        f"prefix {event.input.prefix!r}; wait for it to finish or stop it first"
                    )


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=PlanEvent)
def handler(event: PlanEvent, context: LambdaContext) -> dict:
    refuse_concurrent_runs(event)
    rollback = event.mode == "rollback"
    index, prefix = event.input.index, event.input.prefix
    key_prefix = check_prefix(s3_prefix(config.s3_subdir(), prefix), "S3 prefix")
    bioindex = config.server()
    backend = config.backend(bioindex)
    row = backend.preflight(index, prefix, key_prefix, rollback)
    logger.info("pre-flight passed", extra={"backend": backend.name, "row": row.receipt()})

    target = f"s3://{os.environ['DATA_BUCKET']}/{key_prefix}"
    run = RunFolder(parse_location(f"s3://{os.environ['RUN_BUCKET']}/runs/{event.execution}/"))
    plan = make_plan(target, index, run, rollback=rollback, shards=event.input.shards, prefix=prefix)
    logger.info("planned", extra={"files": len(plan.files), "bytes": plan.total_bytes, "shards": plan.shards})

    check = config.reader_check()
    readers = run.read_readers()
    if readers is None and bioindex is not None and check.samples > 0:
        readers = capture(bioindex, backend, row, plan, check.samples)
        run.write_readers(readers)
    if readers is not None:
        logger.info("sample answers captured", extra={"canary": readers.canary, "samples": len(readers.samples)})
    return {
        "run": run.uri,
        "index": plan.index,
        "prefix": plan.prefix,
        "target": plan.target,
        "shards": plan.shards,
        "files": len(plan.files),
        "bytes": plan.total_bytes,
        # Batch job Parameters must be strings.
        "level": str(event.input.level),
    }
