"""The records that cross the state machines' boundary: an index run's input, what Plan hands the
states after it, what each later Lambda answers, and what a run ends with. Step Functions, the
console and scripts see them as JSON with camelCase keys; the Lambdas, `bgz` and
statemachine/build.py (each Lambda task's ResultSelector) see these fields, built by keyword only.

What the Lambdas are sent is events.py's; the run folder's own records are batch_job/records.py's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Self

from batch_job.errors import BadInput
from batch_job.records import renamed
from batch_job.sizes import human_bytes


def files_sentence(files: int, uncompressed: int, compressed: int) -> str:
    """ "5 files, 736.65 kB uncompressed, 117.25 kB compressed (15.9%)": a run's sizes, said one way
    wherever they are said (bgz, the notification, a bulk run's table)."""
    ratio = f" ({compressed / uncompressed:.1%})" if uncompressed else ""
    return f"{files} files, {human_bytes(uncompressed)} uncompressed, {human_bytes(compressed)} compressed{ratio}"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


class _Boundary:
    """JSON with camelCase keys, one per field, and back."""

    # Keys an earlier release wrote, and the keys that replaced them: a record kept from before an
    # update (an execution's output, a running execution's $.plan) still parses.
    OLD_KEYS: ClassVar[dict[str, str]] = {}

    @classmethod
    def json_keys(cls) -> list[str]:
        """The keys of its JSON, in order (statemachine/build.py selects Plan's from the Lambda's Payload)."""
        return [_camel(f.name) for f in fields(cls)]

    def to_json(self) -> dict[str, Any]:
        return {_camel(k): v for k, v in asdict(self).items()}

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Self | None:
        """The record in `body`, or None if `body` is not one (a key missing or of the wrong kind)."""
        try:
            body = renamed(body, cls.OLD_KEYS)
            return cls(**{f.name: body[_camel(f.name)] for f in fields(cls)})
        except (KeyError, TypeError, AttributeError):  # AttributeError: a body that is not an object
            return None


@dataclass(frozen=True, kw_only=True)
class RunInput(_Boundary):
    """An index run's execution input: what `bgz start` (or an operator in the console) passes to
    StartExecution. Plan checks it: events.py's ExecutionInput takes these fields, and two
    more that only the bulk machine sets."""

    index: str  # as __Indexes has it
    prefix: str  # the bioindex's prefix, as __Indexes has it
    shards: int | None = None  # None: Plan sizes it (a shard per 20 GiB, no more shards than files, 10,000 at most)
    level: int | None = None  # as bgzip -l; None: not given (Plan takes -1, bgzip's default)

    def to_json(self) -> dict[str, Any]:
        """Only what is set, as an operator would type it."""
        return {key: value for key, value in super().to_json().items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class PlanResult(_Boundary):
    """Plan's answer, kept as `$.plan` for every later state (and for ExplainFailure's Cause)."""

    run_folder: str  # its URI: s3://RUN_BUCKET/runs/<execution name>/
    index: str
    prefix: str  # the bioindex's prefix, as __Indexes has it
    target: str  # where its files are: s3://bucket/<subdir>/<prefix>
    shards: int
    files: int  # how many (plan.json lists them)
    bytes: int
    level: int  # as bgzip -l, -1 its default (the Compress state passes it to Batch as a string)
    # Each Batch state's TimeoutSeconds, sized from this plan: {"compress": 5400, "verify": ...}, one
    # key a step (batch_job/rates.py: timeout_key, step_timeouts).
    timeouts: dict[str, int]
    # How the refresh states make every bioindex process load the new flag, as the stack said at Plan:
    # {"mode": "confirm", "pollSeconds": 30, "confirmTimeoutSeconds": 86400} (lambdas/shared/config.py).
    refresh: dict[str, Any]

    OLD_KEYS = {"run": "runFolder"}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> PlanResult:
        found = cls.parse(body)
        if found is None:
            missing = sorted(set(cls.json_keys()) - set(renamed(body, cls.OLD_KEYS)))
            raise BadInput(f"Plan's result is malformed: {', '.join(missing) or 'a field of the wrong kind'}")
        return found


@dataclass(frozen=True, kw_only=True)
class PlanPreview(_Boundary):
    """Plan's answer to `bgz plan` (dryRun): what the run would cover, with nothing locked or written."""

    dry_run: bool  # always true: tells this answer from a PlanResult
    target: str  # where its files are: s3://bucket/<subdir>/<prefix>
    row: dict[str, Any]  # the index's __Indexes row, as a receipt records it
    files: int
    bytes: int
    shards: int
    sampled_keys: list[str]  # a few of its files, spread over sizes, from which bgz estimates the size after
    locked: str  # "<target> is locked by <holder>" where a live run holds it, else ""
    stale_lock: str  # a lock whose run has ended, which the run's Plan clears, in words, else ""

    OLD_KEYS = {"samples": "sampledKeys"}  # a stack of the release before


@dataclass(frozen=True, kw_only=True)
class FlagReadBack(_Boundary):
    """SetCompressed's answer, kept as `$.flag`: the bioindex flag as read back from the bioindex."""

    index: str
    prefix: str
    compressed: bool
    read_back_at: str


@dataclass(frozen=True, kw_only=True)
class RefreshProgress(_Boundary):
    """RefreshReaders' answer in ecs-service mode, kept as `$.refresh`; the Choice after it reads `done`.
    In hook mode the state keeps `{"done": true}` there, in confirm mode what `bgz confirm` sent
    (`{"confirmedBy": <user>, "doneAt": <time>}`); requests mode keeps nothing."""

    done: bool
    waiting: str  # the deployments still running, in words


@dataclass(frozen=True, kw_only=True)
class ReadersProof(_Boundary):
    """ProveReaders' answer, kept as `$.readersProof`: the head of what readers-check.json records in full."""

    checked: bool
    proven: bool
    reason: str  # why not proven; "" when proven
    canary_objects: list[str]  # the canary's objects, deleted first and left deleted (an answer that differed
    # put them back and failed the state instead); Summarize counts them among the objects deleted
    queries: int  # how many sample queries (baseline.json's, captured at Plan) were asked again and compared


@dataclass(frozen=True, kw_only=True)
class OldAnswers(_Boundary):
    """ProveOldAnswers' answer once the flag was set back, kept as `$.oldAnswers`."""

    old_answers_back: bool


@dataclass(frozen=True, kw_only=True)
class Explanation(_Boundary):
    """ExplainFailure's answer: the failed run's Error and Cause, in plain words."""

    error: str
    cause: str


@dataclass(frozen=True, kw_only=True)
class RunSummary(_Boundary):
    """A run that SUCCEEDED: the execution's output (Summarize), read by bgz, Notify and a bulk run."""

    mode: str
    index: str
    prefix: str
    run_folder: str
    files: int
    bytes_uncompressed: int
    bytes_compressed: int
    objects_deleted: int
    readers_proven: bool  # only a refresh that restarted every process, then matching answers

    OLD_KEYS = {"run": "runFolder"}

    @property
    def ratio(self) -> float | None:
        return round(self.bytes_compressed / self.bytes_uncompressed, 4) if self.bytes_uncompressed else None

    def sentence(self) -> str:
        return files_sentence(self.files, self.bytes_uncompressed, self.bytes_compressed)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "ratio": self.ratio}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> RunSummary | None:
        """The summary in an execution's output; None for output that is not one (a bulk run's)."""
        return cls.parse(body)


@dataclass(frozen=True, kw_only=True)
class BulkSummary(_Boundary):
    """A bulk run's output (ReportIndexes): its counts, the head of its table, where the whole table is."""

    mode: str
    converted: int
    failed: int
    skipped: int
    table: str  # capped to what a Cause or an output shows; `report` has it all
    report: str  # s3://RUN_BUCKET/runs/<bulk execution>/bulk-report.txt

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> BulkSummary | None:
        return cls.parse(body)
