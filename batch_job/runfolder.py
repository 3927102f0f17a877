"""The one place for key naming and the run folder's files, shared by the jobs and the Lambdas.

A run folder holds everything a run decided and did:
    plan.json                  what to convert, with every source's size and ETag, and shard numbers
    <step>/shard-K.json        what each step did to each file of shard K
    <step>/shard-K.error.json  why the step's job for shard K exited non-zero (gone once it succeeds)
    readers.json               the bioindex's answers to sample queries before the run, and the canary
    flag.json                  the bioindex flag as read back after setting it (the delete receipt)
    readers-check.json         what ProveReaders did: refreshes, answers compared, the canary's fate
    canary/<key>               a copy of the canary file while it is deleted, to restore it from

Beside the run folders, receipts/<index>/<prefix>flag.json keeps the latest flag.json of each
(index, prefix): the proof a later run may rely on when the bioindex cannot show a prefix.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from batch_job.errors import BadInput, StoreError
from batch_job.locations import Location

FORMAT_VERSION = 1
PLAN = "plan.json"
FLAG = "flag.json"
READERS = "readers.json"
READERS_CHECK = "readers-check.json"
CANARY_FOLDER = "canary/"

COMPRESS = "compress"
ROLLBACK = "rollback"

ORIGINAL_SUFFIX = ".json"
COMPRESSED_SUFFIX = ".json.gz"
INDEX_SUFFIX = ".json.gz.gzi"

# User metadata on every output: which source version it was made from.
META_SOURCE_ETAG = "source-etag"
META_SOURCE_SIZE = "source-size"
META_GZ_ETAG = "gz-etag"  # on a .gzi: the .gz it indexes

# Step names: each writes <step>/shard-K.json in the run folder.
STEP_COMPRESS = "compress"
STEP_DECOMPRESS = "decompress"
STEP_VERIFY = "verify"
STEP_DELETE = "delete"
STEP_REMOVE_COMPRESSED = "remove-compressed"

# State machine states that run an engine step -> that step (whose manifests say what it did).
STATE_STEPS = {
    "Compress": STEP_COMPRESS,
    "Verify": STEP_VERIFY,
    "DeleteOriginals": STEP_DELETE,
    "Decompress": STEP_DECOMPRESS,
    "VerifyRestored": STEP_VERIFY,
    "RemoveCompressed": STEP_REMOVE_COMPRESSED,
}


@contextlib.contextmanager
def _malformed(name: str) -> Iterator[None]:
    """A run-folder file with missing, extra or mistyped fields is bad input, said in one line."""
    try:
        yield
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise BadInput(f"{name} is malformed: {exc}") from exc


def _json_object(data: bytes, name: str) -> dict:
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise BadInput(f"{name} is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadInput(f"{name} is malformed: a JSON object was expected, found {type(body).__name__}")
    return body


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compressed_key(original: str) -> str:
    return original + ".gz"


def index_key(original: str) -> str:
    return original + ".gz.gzi"


def original_key(compressed: str) -> str:
    if not compressed.endswith(COMPRESSED_SUFFIX):
        raise ValueError(f"{compressed} is not a .json.gz key")
    return compressed[: -len(".gz")]


def manifest_key(step: str, shard: int) -> str:
    return f"{step}/shard-{shard}.json"


def error_key(step: str, shard: int | None) -> str:
    """Why a step's job failed (shard None: a run by hand over every shard)."""
    return f"{step}/shard-{'all' if shard is None else shard}.error.json"


def receipt_key(index: str, prefix: str) -> str:
    """Where the latest flag receipt of (index, prefix) lives, relative to the receipts folder."""
    return f"{index}/{prefix}{FLAG}"


def s3_prefix(subdir: str, prefix: str) -> str:
    """The S3 key prefix of a bioindex prefix: `<subdir>/<prefix>` as the bioindex's
    BIOINDEX_S3_SUBDIR setting makes it (no subdir: the prefix itself)."""
    subdir = subdir.strip("/")
    return f"{subdir}/{prefix}" if subdir else prefix


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
    def index(self) -> str:
        return index_key(self.original)


@dataclass
class Plan:
    mode: str
    index: str
    target: str
    prefix: str
    shards: int
    files: list[PlannedFile]
    created: str = field(default_factory=now)
    version: int = FORMAT_VERSION

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def files_of(self, shard: int | None) -> list[PlannedFile]:
        if shard is None:
            return list(self.files)
        if not 0 <= shard < self.shards:
            raise BadInput(f"shard {shard} does not exist: the plan has shards 0..{self.shards - 1}")
        return [f for f in self.files if f.shard == shard]

    def to_json(self) -> bytes:
        """Compact, one file a line: a 250,000-file plan is about 30 MB, built without copying the
        plan into dicts first."""
        head = {name: getattr(self, name) for name in ("mode", "index", "target", "prefix", "shards", "created")}
        head |= {"version": self.version, "total_bytes": self.total_bytes}
        lines = (
            json.dumps({"key": f.key, "size": f.size, "etag": f.etag, "shard": f.shard}, separators=(",", ":"))
            for f in self.files
        )
        return (json.dumps(head)[:-1] + ', "files": [\n' + ",\n".join(lines) + "\n]}\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Plan:
        body = _json_object(data, PLAN)
        if body.get("version") != FORMAT_VERSION:
            raise BadInput(f"{PLAN} has format version {body.get('version')}, expected {FORMAT_VERSION}")
        body.pop("total_bytes", None)
        with _malformed(PLAN):
            body["files"] = [PlannedFile(**f) for f in body["files"]]
            return cls(**body)


@dataclass
class Flag:
    """The bioindex `compressed` flag as confirmed by reading it back; the receipt for deletions.

    `backend` says how it was confirmed: "mysql" read the one `__Indexes` row of (index, prefix)
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
    confirmed_at: str = field(default_factory=now)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Flag:
        with _malformed(FLAG):
            return cls(**_json_object(data, FLAG))


@dataclass
class Sample:
    """One sample query and the bioindex's answer to it before the run (records hashed canonically)."""

    q: list[str]
    count: int
    sha256: str


@dataclass
class Readers:
    """What Plan captured for ProveReaders: sample answers, and the canary file they read from."""

    index: str
    arity: int
    canary: str  # the planned key (X.json, or X.json.gz in a rollback) whose file is the canary
    samples: list[Sample]
    tied_to_canary: bool  # the samples' records were read from the canary file (mysql backend)
    captured_at: str = field(default_factory=now)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Readers:
        body = _json_object(data, READERS)
        with _malformed(READERS):
            body["samples"] = [Sample(**s) for s in body["samples"]]
            return cls(**body)


class RunFolder:
    """Reads and writes the run folder's files through the location's store."""

    def __init__(self, location: Location) -> None:
        self.location = location

    @property
    def uri(self) -> str:
        return self.location.uri

    def _read(self, name: str) -> bytes | None:
        return self.location.store.read_bytes(self.location.key(name))

    def _write(self, name: str, data: bytes) -> None:
        self.location.store.write_bytes(self.location.key(name), data)

    def has_plan(self) -> bool:
        return self.location.store.head(self.location.key(PLAN)) is not None

    def read_plan(self) -> Plan:
        data = self._read(PLAN)
        if data is None:
            raise BadInput(f"no plan in run folder {self.uri} (run `bgzip-job plan` first)")
        return Plan.from_json(data)

    def write_plan(self, plan: Plan) -> None:
        self._write(PLAN, plan.to_json())

    def read_manifest(self, step: str, shard: int) -> dict | None:
        name = manifest_key(step, shard)
        data = self._read(name)
        if data is None:
            return None
        body = _json_object(data, name)
        if not isinstance(body.get("files"), list) or not all(
            isinstance(r, dict) and "key" in r for r in body["files"]
        ):
            raise BadInput(f"{name} is malformed: no list of file records")
        return body

    def read_manifests(self, step: str, shards: int) -> dict[int, dict]:
        """Every manifest of a step that exists, read in parallel (a run may have 10,000 shards)."""
        present = self.manifest_shards(step)
        with ThreadPoolExecutor(32) as pool:
            bodies = pool.map(lambda k: (k, self.read_manifest(step, k)), sorted(k for k in present if k < shards))
            return {k: body for k, body in bodies if body is not None}

    def manifest_shards(self, step: str) -> set[int]:
        """Shard numbers with a manifest for the step, from one listing."""
        folder = self.location.key(f"{step}/")  # a folder: local stores list folders only
        shards = set()
        try:
            for info in self.location.store.list_objects(folder):
                name = info.key[len(folder) :]
                number = name.removeprefix("shard-").removesuffix(".json")
                if name.startswith("shard-") and number.isdigit():
                    shards.add(int(number))
        except StoreError:  # a local run folder without the step's folder yet
            return set()
        return shards

    def write_manifest(self, step: str, shard: int, body: dict) -> None:
        self._write(manifest_key(step, shard), json.dumps(body, indent=1).encode())

    def write_error(self, step: str, shard: int | None, body: dict) -> None:
        self._write(error_key(step, shard), json.dumps(body, indent=1).encode())

    def clear_error(self, step: str, shard: int | None) -> None:
        info = self.location.store.head(self.location.key(error_key(step, shard)))
        if info is not None:
            self.location.store.delete([(info.key, info.etag)])

    def read_errors(self, step: str) -> list[dict]:
        """Every error record the step's jobs left, from one listing."""
        folder = self.location.key(f"{step}/")
        try:
            keys = [i.key for i in self.location.store.list_objects(folder) if i.key.endswith(".error.json")]
        except StoreError:
            return []
        return [_json_object(self.location.store.read_bytes(k) or b"{}", k) for k in sorted(keys)]

    def read_flag(self) -> Flag | None:
        data = self._read(FLAG)
        return None if data is None else Flag.from_json(data)

    def write_flag(self, flag: Flag) -> None:
        self._write(FLAG, flag.to_json())

    def read_readers(self) -> Readers | None:
        data = self._read(READERS)
        return None if data is None else Readers.from_json(data)

    def write_readers(self, readers: Readers) -> None:
        self._write(READERS, readers.to_json())

    def read_readers_check(self) -> dict | None:
        data = self._read(READERS_CHECK)
        return None if data is None else json.loads(data)

    def write_readers_check(self, body: dict) -> None:
        self._write(READERS_CHECK, json.dumps(body, indent=1).encode())


class Receipts:
    """The latest flag receipt of each (index, prefix), kept beside the run folders."""

    def __init__(self, location: Location) -> None:
        self.location = location

    def read(self, index: str, prefix: str) -> Flag | None:
        data = self.location.store.read_bytes(self.location.key(receipt_key(index, prefix)))
        return None if data is None else Flag.from_json(data)

    def write(self, flag: Flag) -> None:
        self.location.store.write_bytes(self.location.key(receipt_key(flag.index, flag.prefix)), flag.to_json())
