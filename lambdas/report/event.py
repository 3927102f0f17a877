"""What every Report handler gets (Summarize, ExplainFailure, ReportIndexes), and the run folder it names."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from batch_job.boundary import PlanResult
from batch_job.errors import BadInput
from batch_job.locations import parse_location
from batch_job.records import Mode
from batch_job.runfolder import RunFolder

logger = Logger(child=True)

MAX_CAUSE = 32_000  # a Fail state's Cause holds at most 32,768 characters


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

    @cached_property
    def planned(self) -> PlanResult | None:
        """Plan's result, parsed once; None when Plan itself failed (its failure state passes an empty plan)."""
        if not self.plan:
            return None
        try:
            return PlanResult.from_json(self.plan)
        except BadInput:  # a run planned by an older release, still running across an upgrade
            logger.warning("Plan's result is not this release's: %s", sorted(self.plan))
            return None


def run_folder(event: ReportEvent) -> RunFolder | None:
    run = event.planned.run if event.planned else event.plan.get("run")  # .get: an older release's plan
    return RunFolder(parse_location(run)) if run else None


def cap(text: str, limit: int = MAX_CAUSE, where: str = "") -> str:
    """At most `limit` characters (a Fail state's Cause may hold 32,768): the head, then how much
    was left out and where the rest is."""
    if len(text) <= limit:
        return text
    tail = f" ... ({len(text) - limit:,} characters more{'; all of it: ' + where if where else ''})"
    return text[: limit - len(tail)] + tail
