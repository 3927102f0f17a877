"""What each Report handler gets: Summarize and ExplainFailure the run that ended (ExplainFailure also
the caught error), ReportIndexes a bulk run's index runs. Each a model of its own, so that a state
sending a key its handler does not take fails at once (tests/test_asl_source.py checks the ASL)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from batch_job.boundary import PlanResult
from batch_job.errors import BadInput
from batch_job.locations import parse_location
from batch_job.records import Mode
from batch_job.runfolder import RunFolder

logger = Logger(child=True)


class RunEndEvent(BaseModel):
    """Summarize's event: the index run that SUCCEEDED, and Plan's result."""

    model_config = ConfigDict(extra="forbid")

    execution: str
    mode: Mode
    plan: dict[str, Any]  # Plan's result, as the state machine keeps it in $.plan

    @cached_property
    def planned(self) -> PlanResult | None:
        """Plan's result, parsed once; None when Plan itself failed."""
        if not self.plan:
            return None
        try:
            return PlanResult.from_json(self.plan)
        except BadInput:  # a run planned by an older release, still running across an upgrade
            logger.warning("Plan's result is not this release's: %s", sorted(self.plan))
            return None

    def run_folder(self) -> RunFolder | None:
        run = self.planned.run if self.planned else self.plan.get("run")  # .get: an older release's plan
        return RunFolder(parse_location(run)) if run else None

    def target(self) -> str:
        return self.planned.target if self.planned else self.plan.get("target", "")


class FailureEvent(RunEndEvent):
    """ExplainFailure's event: the index run that failed, the state it failed in and the caught error."""

    plan: dict[str, Any] = {}  # empty when Plan itself failed (its failure state passes no plan)
    step: str  # the state's name
    error: dict[str, Any] = {}  # the caught error: {"Error": ..., "Cause": ...}


class IndexesEvent(BaseModel):
    """ReportIndexes' event: a bulk run's index runs, as its Map state ended them, and the ones it skipped."""

    model_config = ConfigDict(extra="forbid")

    execution: str
    mode: Mode
    machine: str  # the index runs' state machine
    results: list[dict[str, Any]] = []  # each index's run: index, prefix, execution, status
    skipped: list[dict[str, Any]] = []  # indexes not converted, and why
