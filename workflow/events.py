"""What each state sends its Lambda: the event of every function, in the order a run meets them - the
execution input Plan checks, then Plan's, SetCompressed's, RefreshReaders', ProveReaders', Summarize's
and ExplainFailure's events; the bulk machine's input, SelectIndexes' and ReportIndexes' events.

Each refuses a key it does not know (a misspelt key in a state's payload is an error, never
ignored); statemachine/build.py checks every Lambda state's Payload against its model as it writes
the ASL. What the Lambdas answer, and Plan's result, are records of boundary.py.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger
from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from batch_job.errors import BadInput
from batch_job.locations import check_prefix, parse_location
from batch_job.records import Mode, RefreshMode, renamed
from batch_job.runfolder import RunFolder
from workflow.boundary import PlanResult

logger = Logger(child=True)

INDEX_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MAX_BULK_NAME = 60  # a bulk execution's name: each index run is named <index>-<this>
# A model's validator is built when a Lambda first parses one (defer_build): each function parses one
# or two of these models, and building all of them at import was a fifth of a cold start's own imports.
EVENT_CONFIG = ConfigDict(extra="forbid", defer_build=True)


def _prefix(value: str) -> str:
    return check_prefix(value)


Prefix = Annotated[str, AfterValidator(_prefix)]  # an index's prefix as __Indexes has it, ending in /
# The run folder's URI ($.plan.runFolder). A run started before the stack was updated from an earlier
# release sends it as "run".
RunFolderUri = Annotated[str, Field(alias="runFolder", validation_alias=AliasChoices("runFolder", "run"))]


class ExecutionInput(BaseModel):
    """What an operator passes to StartExecution: the index name and prefix as `__Indexes` has them
    (`bgz start` builds it as boundary.RunInput)."""

    model_config = EVENT_CONFIG

    index: str = Field(pattern=INDEX_NAME)
    prefix: Prefix
    shards: int | None = Field(default=None, ge=1, le=10_000)
    level: int = Field(default=-1, ge=-1, le=9)
    # Set by the bulk machine: links this run to it in the console.
    started_by: str | None = Field(default=None, alias="AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID")
    # Set by the bulk machine: how many index runs share the job queue at once.
    bulk_concurrency: int | None = Field(default=None, ge=1, alias="bulkConcurrency")


class PlanEvent(BaseModel):
    """Plan's event: the execution, its input, and whether `bgz plan` only previews the run (dryRun)."""

    model_config = EVENT_CONFIG

    mode: Literal["compress", "rollback"]
    execution: str
    execution_arn: str = Field(alias="executionArn")
    input: ExecutionInput
    dry_run: bool = Field(default=False, alias="dryRun")  # `bgz plan`: pre-flight and listing only

    @field_validator("execution")
    @classmethod
    def _execution(cls, value: str) -> str:
        # The execution name names the Batch jobs and the run folder.
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", value):
            raise ValueError(f"execution name {value!r} may use only letters, digits, '-' and '_' (Batch job names)")
        return value


class SetCompressedEvent(BaseModel):
    """SetCompressed's and SetUncompressed's event: the flag to set for this (index, prefix), and the run."""

    model_config = EVENT_CONFIG

    index: str
    prefix: str
    compressed: bool
    run_folder: RunFolderUri
    execution: str


class RefreshEvent(BaseModel):
    """RefreshReaders' event (and ReloadOldFlag's): restart the readers, check or await their refresh."""

    model_config = EVENT_CONFIG

    action: Literal["restart", "check", "await"]
    run_folder: RunFolderUri
    execution: str
    compressed: bool  # the flag every process must load
    revert: bool = False  # the flag was set back after the bioindex could not read the new side
    task_token: str | None = Field(default=None, alias="taskToken")


class ProveReadersEvent(BaseModel):
    """ProveReaders' event (and ProveOldAnswers', with revert): which side every reader must now read."""

    model_config = EVENT_CONFIG

    run_folder: RunFolderUri
    execution: str
    compressed: bool
    # The ReaderRefresh mode this run took ($.plan.refresh.mode), whatever the stack says now. A run
    # started before the stack was updated from an earlier release sends it as "refresh".
    refresh_mode: RefreshMode = Field(alias="refreshMode", validation_alias=AliasChoices("refreshMode", "refresh"))
    revert: bool = False  # prove the old answers are back after the flag was set back


class RunEndEvent(BaseModel):
    """Summarize's event: the index run that SUCCEEDED, and Plan's result."""

    model_config = EVENT_CONFIG

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
        # An older release's plan that does not parse: its run folder, under either name.
        uri = self.planned.run_folder if self.planned else renamed(self.plan, PlanResult.OLD_KEYS).get("runFolder")
        return RunFolder(parse_location(uri)) if uri else None

    def target(self) -> str:
        return self.planned.target if self.planned else self.plan.get("target", "")


class FailureEvent(RunEndEvent):
    """ExplainFailure's event: the index run that failed, the state it failed in and the caught error."""

    plan: dict[str, Any] = {}  # empty when Plan itself failed (its failure state passes no plan)
    # Where it failed: a state's name (states.py). A run started before the stack was updated from an
    # earlier release sends it as "step".
    state: str = Field(validation_alias=AliasChoices("state", "step"))
    error: dict[str, Any] = {}  # the caught error: {"Error": ..., "Cause": ...}


class Explicit(BaseModel):
    """One (index, prefix) of a bulk run's explicit list."""

    model_config = EVENT_CONFIG

    index: str
    prefix: Prefix


class BulkInput(BaseModel):
    """What an operator passes to the bulk machine's StartExecution."""

    model_config = EVENT_CONFIG

    mode: Literal["compress", "rollback"]
    all: bool = False
    include: list[str] | None = None
    exclude: list[str] = []
    indexes: list[Explicit] | None = None
    concurrency: int = Field(default=0, ge=0, le=40)  # 0: the stack's BulkConcurrency
    level: int = Field(default=-1, ge=-1, le=9)

    @model_validator(mode="after")
    def _one_selection(self) -> BulkInput:
        chosen = [
            name for name, value in (("all", self.all), ("include", self.include), ("indexes", self.indexes)) if value
        ]
        if len(chosen) != 1:
            raise ValueError(
                'give exactly one of "all": true, "include": [NAME, ...] or "indexes": [{index, prefix}, ...]'
            )
        return self


class SelectEvent(BaseModel):
    """SelectIndexes' event: the bulk run's input, and the index runs' state machines."""

    model_config = EVENT_CONFIG

    # Each index run is named <index>-<this>: leave the index room.
    execution: str = Field(max_length=MAX_BULK_NAME)
    input: BulkInput
    machines: dict[Literal["compress", "rollback"], str]  # the child state machines' ARNs


class IndexesEvent(BaseModel):
    """ReportIndexes' event: a bulk run's index runs, as its Map state ended them, and the ones it skipped."""

    model_config = EVENT_CONFIG

    execution: str
    mode: Mode
    machine: str  # the index runs' state machine
    results: list[dict[str, Any]] = []  # each index's run: index, prefix, execution, status
    skipped: list[dict[str, Any]] = []  # indexes not converted, and why
