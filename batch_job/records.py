"""The run folder's records: what a run decided (the plan), did (manifests), and proved (the flag,
the readers). One typed definition of each, with its JSON form; runfolder.py reads and writes them.

A record read back that has missing, extra or mistyped fields is bad input, said in one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, astuple, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache

from batch_job.errors import BadInput
from batch_job.keys import COMPRESSED_SUFFIX, compressed_key, gzi_key, original_key

# plan.json's format. 2: head first (files_per_shard), manifests with totals; version 1 run folders
# (an upgrade mid-run) are read, and an older bgzip-workflow refuses a version 2 one in one line.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def _check_version(version: object) -> None:
    if version not in READABLE_VERSIONS:
        raise BadInput(
            f"{Plan.NAME} has format version {version}; this bgzip-workflow reads versions "
            f"{READABLE_VERSIONS[0]} to {READABLE_VERSIONS[-1]}: finish the run with the version that planned it"
        )


class Mode(StrEnum):
    """Which way a run converts."""

    COMPRESS = "compress"
    ROLLBACK = "rollback"


class Step(StrEnum):
    """An engine step; each writes <step>/shard-K.json in the run folder."""

    COMPRESS = "compress"
    DECOMPRESS = "decompress"
    VERIFY = "verify"
    DELETE = "delete"
    REMOVE_COMPRESSED = "remove-compressed"


# The step that deletes the side a run of each mode makes redundant.
DESTRUCTIVE_STEP = {Mode.COMPRESS: Step.DELETE, Mode.ROLLBACK: Step.REMOVE_COMPRESSED}


class Status(StrEnum):
    """What a step did to one file (verify records have none: `ok` says it all)."""

    COMPRESSED = "compressed"
    RESTORED = "restored"
    ALREADY_DONE = "already-done"  # an earlier attempt made this output from the current source
    KEPT_EXISTING = "kept-existing"  # rollback: an X.json was there already; verify proves it equal
    DELETED = "deleted"
    ALREADY_DELETED = "already-deleted"
    FAILED = "failed"


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # every time a record holds: UTC, to the second


def now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A record's time (or an operator's, in the same form) as an aware UTC datetime; ValueError if not one."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


@contextlib.contextmanager
def malformed(name: str) -> Iterator[None]:
    """A record with missing, extra or mistyped fields is bad input, said in one line."""
    try:
        yield
    except BadInput:  # already says what is wrong, and with which record
        raise
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise BadInput(f"{name} is malformed: {exc}") from exc


def renamed(body: dict, old_names: dict[str, str]) -> dict:
    """`body` with each key an earlier release wrote (`old_names`: old -> new) under its current name:
    a record written before a rename still reads."""
    return {old_names.get(name, name): value for name, value in body.items()}


def json_object(data: bytes, name: str) -> dict:
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise BadInput(f"{name} is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadInput(f"{name} is malformed: a JSON object was expected, found {type(body).__name__}")
    return body


# Plan and manifests are written head first: line one is every field but the file list, ending
# with HEAD_END, then one file a line. A reader of the head (the run's size, a shard's totals) reads
# only the first line: a 250,000-file plan is about 30 MB.
HEAD_END = ', "files": ['


_compact = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(f, separators=...), one encoder for all


def _head_first(head: dict, files: Iterable[dict], tail: dict | None = None) -> bytes:
    lines = ",\n".join(_compact(f) for f in files)
    end = "".join(f", {json.dumps(name)}: {json.dumps(value)}" for name, value in (tail or {}).items())
    return (json.dumps(head)[:-1] + HEAD_END + "\n" + lines + "\n]" + end + "}\n").encode()


def _head_of(data: bytes, name: str) -> dict | None:
    """The head of a head-first record from its first line; None if `data` holds no whole first line
    that is a head (a record written before heads, or a head longer than was read: the caller then
    reads the record whole)."""
    line, newline, _ = data.partition(b"\n")
    line = line.decode(errors="replace")
    if not newline or not line.endswith(HEAD_END):
        return None
    return json_object((line[: -len(HEAD_END)] + "}").encode(), name)


def keys_digest(keys: Iterable[str]) -> str:
    """Which keys, in 16 hex digits: a shard's planned keys in the plan's head, its verified ones in
    the verify manifest's, so that SetCompressed compares key sets without reading either whole."""
    digest = hashlib.sha256()
    for key in sorted(keys):
        digest.update(key.encode() + b"\n")
    return digest.hexdigest()[:16]


@cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def _without_none(record: object) -> dict:
    values = ((name, getattr(record, name)) for name in _field_names(type(record)))
    return {name: value for name, value in values if value is not None}


@dataclass(frozen=True, slots=True)  # a plan may hold hundreds of thousands
class PlannedFile:
    """One file of the plan: `key` is the step's source (X.json, or X.json.gz in a rollback)."""

    key: str
    size: int
    etag: str
    shard: int

    @property
    def original(self) -> str:
        return original_key(self.key) if self.key.endswith(COMPRESSED_SUFFIX) else self.key

    @property
    def compressed(self) -> str:
        return compressed_key(self.original)

    @property
    def gzi(self) -> str:
        return gzi_key(self.original)


@dataclass
class Plan:
    """plan.json: what a run converts, with every source's size and ETag and its shard."""

    mode: Mode
    index: str  # the bioindex index name
    target: str
    prefix: str
    shards: int
    files: list[PlannedFile]
    created: str = field(default_factory=now)
    version: int = FORMAT_VERSION

    NAME = "plan.json"

    def __post_init__(self) -> None:
        """Refused as the plan is made or read (malformed, then): with 0 shards every step would do
        nothing and say OK; a file in a shard the plan lacks would never be converted."""
        if not isinstance(self.shards, int) or self.shards < 1:
            raise ValueError(f"shards must be a number of at least 1, found {self.shards!r}")
        stray = next((f for f in self.files if not 0 <= f.shard < self.shards), None)
        if stray is not None:
            raise ValueError(f"{stray.key} is in shard {stray.shard}, but the plan has {self.shards} shards")

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def destructive_step(self) -> Step:
        return DESTRUCTIVE_STEP[self.mode]

    def files_of(self, shard: int | None) -> list[PlannedFile]:
        if shard is None:
            return list(self.files)
        if not 0 <= shard < self.shards:
            raise BadInput(f"shard {shard} does not exist: the plan has shards 0..{self.shards - 1}")
        return [f for f in self.files if f.shard == shard]

    @property
    def head(self) -> PlanHead:
        keys: list[list[str]] = [[] for _ in range(self.shards)]
        for f in self.files:  # every shard in range: __post_init__
            keys[f.shard].append(f.key)
        return PlanHead(
            self.mode,
            self.index,
            self.target,
            self.prefix,
            self.shards,
            self.created,
            self.total_bytes,
            [len(k) for k in keys],
            [keys_digest(k) for k in keys],
        )

    def to_json(self) -> bytes:
        """Head first, compact, one file a line, built without copying the plan into dicts first."""
        head = asdict(self.head) | {"version": FORMAT_VERSION}
        files = ({"key": f.key, "size": f.size, "etag": f.etag, "shard": f.shard} for f in self.files)
        return _head_first(head, files)

    @classmethod
    def from_json(cls, data: bytes) -> Plan:
        body = json_object(data, cls.NAME)
        _check_version(body.get("version"))
        for derived in ("total_bytes", "files_per_shard", "keys_per_shard"):
            body.pop(derived, None)
        with malformed(cls.NAME):
            body["mode"] = Mode(body["mode"])
            body["files"] = [PlannedFile(**f) for f in body["files"]]
            return cls(**body)


@dataclass(frozen=True)
class PlanHead:
    """plan.json's first line: the plan without its file list, for the code that needs only its size."""

    mode: Mode
    index: str
    target: str
    prefix: str
    shards: int
    created: str
    total_bytes: int
    files_per_shard: list[int]
    keys_per_shard: list[str]  # keys_digest of each shard's planned keys

    @property
    def file_count(self) -> int:
        return sum(self.files_per_shard)

    @property
    def destructive_step(self) -> Step:
        return DESTRUCTIVE_STEP[self.mode]

    @classmethod
    def from_head(cls, data: bytes) -> PlanHead | None:
        """From plan.json's first line; None for a plan written before its head had files_per_shard."""
        head = _head_of(data, Plan.NAME)
        if head is None or "files_per_shard" not in head:
            return None
        _check_version(head.get("version"))
        with malformed(Plan.NAME):
            found = cls(**{f.name: head[f.name] for f in fields(cls)} | {"mode": Mode(head["mode"])})
            if not len(found.files_per_shard) == len(found.keys_per_shard) == found.shards:
                raise ValueError(f"{found.shards} shards, but counts and key digests of other numbers")
            return found


@dataclass(slots=True)
class FileRecord:
    """What one step did to one planned file. Each step fills the fields it knows; absent ones are
    left out of the JSON. The ETags are what later steps re-check before they trust or delete."""

    key: str  # the planned key
    ok: bool
    status: Status | None = None
    error: str | None = None
    later_failure: str | None = None  # a re-run failed after this success on record (see runner)
    original_etag: str | None = None  # X.json: what compress read, verify checked, decompress made
    original_size: int | None = None
    gz_etag: str | None = None
    gz_size: int | None = None
    gzi_etag: str | None = None
    gzi_size: int | None = None
    sha256: str | None = None  # verify: of the uncompressed bytes
    random_access_offsets_checked: int | None = None
    deleted: list[tuple[str, str]] | None = None  # delete steps: the (key, ETag) pairs removed

    @classmethod
    def failure(cls, key: str, error: str) -> FileRecord:
        return cls(key, False, error=error)

    def to_dict(self) -> dict:
        return _without_none(self)

    # Compress manifests written before the one-name-per-object rename call X.json's ETag "source".
    OLD_NAMES = {"source_etag": "original_etag", "source_size": "original_size"}

    @classmethod
    def from_dict(cls, body: dict) -> FileRecord:
        record = cls(**renamed(body, cls.OLD_NAMES))
        if not isinstance(record.key, str) or not isinstance(record.ok, bool):
            raise TypeError(f"a file record needs a key and ok, got {body!r}")
        if record.status is not None:
            record.status = Status(record.status)
        if record.deleted is not None:
            record.deleted = [(k, e) for k, e in record.deleted]
        return record


@dataclass(frozen=True)
class Totals:
    """A manifest's sums, written in its first line: Summarize and SetCompressed read these, not
    every record of a 250,000-file run."""

    files: int = 0
    ok: int = 0
    original_bytes: int = 0  # the X.json bytes (Summarize reads verify's)
    compressed_bytes: int = 0  # verify: the .gz and .gzi bytes
    deleted: int = 0  # delete steps: the objects removed

    @classmethod
    def of(cls, records: Iterable[FileRecord]) -> Totals:
        files = ok = original = compressed = deleted = 0
        for r in records:
            files += 1
            ok += r.ok
            original += r.original_size or 0
            compressed += (r.gz_size or 0) + (r.gzi_size or 0)
            deleted += len(r.deleted or ()) if r.ok else 0  # a failed or put-back record deleted nothing that stays
        return cls(files, ok, original, compressed, deleted)

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass(frozen=True)
class ManifestHead:
    """A manifest's first line: whose shard it is, from which plan, and its totals."""

    step: Step
    shard: int
    plan_created: str
    ok: bool
    totals: Totals
    ok_keys: str  # keys_digest of the keys of its OK records

    @classmethod
    def from_head(cls, data: bytes, name: str) -> ManifestHead | None:
        """None for a manifest written before manifests had heads."""
        head = _head_of(data, name)
        if head is None or "totals" not in head:
            return None
        with malformed(name):
            totals = Totals(**head["totals"])
            return cls(Step(head["step"]), head["shard"], head["plan_created"], head["ok"], totals, head["ok_keys"])


@dataclass
class Manifest:
    """<step>/shard-K.json: one step's records of every file of one shard, head first (ManifestHead)."""

    step: Step
    shard: int
    index: str
    prefix: str
    target: str
    plan_created: str
    started: str
    finished: str
    ok: bool  # this attempt; each record keeps the best outcome on record
    failed: list[str]
    files: list[FileRecord]

    @property
    def head(self) -> ManifestHead:
        ok_keys = keys_digest(r.key for r in self.files if r.ok)
        return ManifestHead(self.step, self.shard, self.plan_created, self.ok, Totals.of(self.files), ok_keys)

    def to_json(self) -> bytes:
        names = [f.name for f in fields(self) if f.name not in ("failed", "files")]
        head = self.head
        derived = {"totals": asdict(head.totals), "ok_keys": head.ok_keys}
        body = {name: getattr(self, name) for name in names} | derived
        return _head_first(body, (r.to_dict() for r in self.files), tail={"failed": self.failed})

    @classmethod
    def from_json(cls, data: bytes, name: str) -> Manifest:
        body = json_object(data, name)
        for derived in ("totals", "ok_keys"):  # from the records
            body.pop(derived, None)
        with malformed(name):
            body["step"] = Step(body["step"])
            body["files"] = [FileRecord.from_dict(r) for r in body["files"]]
            return cls(**body)

    def by_key(self, only_ok: bool = False) -> dict[str, FileRecord]:
        return {r.key: r for r in self.files if r.ok or not only_ok}


@dataclass
class JobError:
    """<step>/shard-K.error.json: why the step's job for shard K exited non-zero (gone once it succeeds)."""

    step: Step
    shard: int | None  # None: a run by hand over every shard
    exit: int
    message: str
    failed: list[str]
    log_stream: str = ""
    at: str = field(default_factory=now)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, name: str) -> JobError:
        with malformed(name):
            return cls(**json_object(data, name))


@dataclass
class StepProgress:
    """<step>/shard-K.progress.json: how far the step's job for shard K has got, rewritten while it works
    (bgz watch counts it for the shards that have no manifest yet, and says the rate and time left)."""

    step: Step
    shard: int | None  # None: a run by hand over every shard
    files: int
    total_files: int
    bytes_done: int
    total_bytes: int
    started: str
    at: str = field(default_factory=now)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, name: str) -> StepProgress:
        with malformed(name):
            return cls(**json_object(data, name))


@dataclass
class Flag:
    """flag.json: the bioindex `compressed` flag as read back after setting it; the receipt for deletions.

    `backend` says how it was read back: "mysql" read the one `__Indexes` row of (index, prefix)
    back by its id (`row`: id, arity, table, schema, built); "http" saw the listing change, or
    relied on an earlier receipt of the same (index, prefix). `before` is the flag before the change.
    """

    index: str
    prefix: str
    compressed: bool
    bioindex_url: str
    backend: str = "http"
    before: bool | None = None
    row: dict | None = None
    target: str = ""
    execution: str = ""
    read_back_at: str = field(default_factory=now)

    NAME = "flag.json"
    OLD_NAMES = {"confirmed_at": "read_back_at"}  # receipts and runs of the release before

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Flag:
        with malformed(cls.NAME):
            flag = cls(**renamed(json_object(data, cls.NAME), cls.OLD_NAMES))
            if not isinstance(flag.compressed, bool):  # "true" would read as true and "false" too
                raise TypeError(f"compressed must be true or false, found {flag.compressed!r}")
            if not isinstance(flag.index, str) or not isinstance(flag.prefix, str):
                raise TypeError("index and prefix must be strings")
            return flag


@dataclass
class Answer:
    """The bioindex's answer to one query (`q`): how many records, and their digest (hashed canonically)."""

    q: list[str]
    count: int
    sha256: str


@dataclass
class Baseline:
    """baseline.json: the bioindex's answers before the run, captured at Plan for ProveReaders, and the
    canary file they read from. Runs planned by an older release wrote it as readers.json, its answers
    under `samples` and the canary's key under `canary`; both are read."""

    index: str
    arity: int
    canary_key: str  # the planned key (X.json, or X.json.gz in a rollback) whose file is the canary
    answers: list[Answer]
    tied_to_canary: bool  # the answers' records were read from the canary file (mysql backend)
    captured_at: str = field(default_factory=now)

    NAME = "baseline.json"
    OLD_NAME = "readers.json"
    OLD_NAMES = {"samples": "answers", "canary": "canary_key"}

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, name: str = NAME) -> Baseline:
        body = renamed(json_object(data, name), cls.OLD_NAMES)
        with malformed(name):
            body["answers"] = [Answer(**a) for a in body["answers"]]
            return cls(**body)


class CanaryStatus(StrEnum):
    """Where the canary is; written before each transition, so a retried ProveReaders continues."""

    SET_ASIDE = "set-aside"  # copied into the run folder, about to be deleted
    DELETED = "deleted"
    RESTORED = "restored"  # put back after an answer differed
    RELEASED = "released"  # the check passed: it stays deleted, its copy is gone


@dataclass
class CanaryObject:
    """One object of the canary's spent side, and its copy in the run folder."""

    key: str
    etag: str
    size: int
    aside: str
    aside_etag: str
    restored_etag: str | None = None


@dataclass
class CanaryRecord:
    status: CanaryStatus
    at: str
    objects: list[CanaryObject] = field(default_factory=list)


class RefreshMode(StrEnum):
    """How the bioindex processes are made to load the flag once it changed (the stack's ReaderRefresh)."""

    CONFIRM = "confirm"  # the run waits until an operator says every process has restarted
    ECS_SERVICE = "ecs-service"  # a new deployment of the bioindex's ECS services, awaited to completion
    HOOK = "hook"  # the operator's Lambda restarts the bioindex and returns when every process has
    REQUESTS = "requests"  # GET /api/bio/indexes bursts: reaches the processes that happen to be idle

    @property
    def restarts(self) -> bool:
        """Whether every process serving afterwards is known to have loaded the flag: it started since."""
        return self is not RefreshMode.REQUESTS


@dataclass
class Outcome:
    """outcome.json: how the run ended, as its last state said - the summary, or the Error and
    Cause. A bulk run's report reads it instead of carrying every index's summary in its state."""

    status: str  # SUCCEEDED or FAILED
    summary: dict | None = None
    error: str = ""
    cause: str = ""

    NAME = "outcome.json"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Outcome:
        with malformed(cls.NAME):
            return cls(**json_object(data, cls.NAME))


@dataclass
class Refresh:
    """refresh.json (refresh-revert.json when the flag was set back): how the bioindex processes were
    made to load the flag `compressed` - the ECS deployments this run started, or the task token an
    operator's `bgz confirm` resumes the run with - and when that was done."""

    mode: RefreshMode
    compressed: bool
    execution: str
    started: str = field(default_factory=now)
    deployments: dict[str, str] = field(default_factory=dict)  # ECS service -> the deployment this run started
    task_token: str | None = None
    asked: str | None = None  # what the operator was asked to do
    done_at: str | None = None  # when every process had restarted (a deployment finished, `bgz confirm`)
    confirmed_by: str | None = None

    NAME = "refresh.json"
    REVERT_NAME = "refresh-revert.json"
    OLD_NAMES = {"done": "done_at"}  # runs started by the release before

    def to_json(self) -> bytes:
        return json.dumps(_without_none(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, name: str = NAME) -> Refresh:
        body = renamed(json_object(data, name), cls.OLD_NAMES)
        with malformed(name):
            body["mode"] = RefreshMode(body["mode"])
            return cls(**body)


@dataclass
class ReadersCheck:
    """readers-check.json: what ProveReaders did: refreshes, answers compared, the canary's fate.

    `proven` is true only when the refresh restarted every process (RefreshMode.restarts) and every
    answer matched; `unreadable` is the first error or difference seen with the new flag before the
    canary was deleted, after which the flag was set back (`reverted`) and the old answers proven
    back (`old_answers_back_at`)."""

    execution: str
    started: str = field(default_factory=now)
    checked: bool | None = None
    proven: bool | None = None
    refresh: str | None = None  # the RefreshMode that ran before the check
    reason: str | None = None  # why the readers were not checked, or not proven
    refreshed: int | None = None
    requests: int | None = None
    differences: list[str] | None = None
    errors: list[str] | None = None
    unreadable: str | None = None
    reverted: str | None = None
    old_answers_back_at: str | None = None
    canary: CanaryRecord | None = None
    finished: str | None = None

    NAME = "readers-check.json"
    OLD_NAMES = {"old_answers_back": "old_answers_back_at"}  # runs of the release before

    @property
    def canary_status(self) -> CanaryStatus | None:
        return self.canary.status if self.canary else None

    def to_json(self) -> bytes:
        body = _without_none(self)
        if self.canary is not None:
            body["canary"] = _without_none(self.canary) | {"objects": [_without_none(o) for o in self.canary.objects]}
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ReadersCheck:
        body = renamed(json_object(data, cls.NAME), cls.OLD_NAMES)
        with malformed(cls.NAME):
            if body.get("canary") is not None:
                canary = body["canary"]
                objects = [CanaryObject(**o) for o in canary.get("objects", [])]
                body["canary"] = CanaryRecord(CanaryStatus(canary["status"]), canary["at"], objects)
            return cls(**body)
