"""The one place for key naming and the run folder's files, shared by the jobs and the Lambdas.

A run folder holds everything a run decided and did:
    plan.json                  what to convert, with every source's size and ETag, and shard numbers
    <step>/shard-K.json        what each step did to each file of shard K
    flag.json                  the bioindex flag as read back after setting it (the delete receipt)
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from batch_job.locations import BadInput, Location
from batch_job.stores import StoreError

FORMAT_VERSION = 1
PLAN = "plan.json"
FLAG = "flag.json"

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


@dataclass(frozen=True)
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
        body = asdict(self)
        body["total_bytes"] = self.total_bytes
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Plan:
        body = json.loads(data)
        if body.get("version") != FORMAT_VERSION:
            raise BadInput(f"plan.json has format version {body.get('version')}, expected {FORMAT_VERSION}")
        body.pop("total_bytes", None)
        body["files"] = [PlannedFile(**f) for f in body["files"]]
        return cls(**body)


@dataclass
class Flag:
    """The bioindex `compressed` flag as confirmed by reading it back; the receipt for deletions."""

    index: str
    prefix: str
    compressed: bool
    bioindex_url: str
    confirmed_at: str = field(default_factory=now)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Flag:
        return cls(**json.loads(data))


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
        data = self._read(manifest_key(step, shard))
        return None if data is None else json.loads(data)

    def read_manifests(self, step: str, shards: int) -> dict[int, dict]:
        """Every manifest of a step that exists, read in parallel (a run may have 10,000 shards)."""
        present = self.manifest_shards(step)
        with ThreadPoolExecutor(32) as pool:
            bodies = pool.map(lambda k: (k, self.read_manifest(step, k)), sorted(k for k in present if k < shards))
            return {k: body for k, body in bodies if body is not None}

    def manifest_shards(self, step: str) -> set[int]:
        """Shard numbers with a manifest for the step, from one listing."""
        prefix = self.location.key(f"{step}/shard-")
        shards = set()
        try:
            for info in self.location.store.list_objects(prefix):
                number = info.key[len(prefix) :].removesuffix(".json")
                if number.isdigit():
                    shards.add(int(number))
        except StoreError:  # a local run folder without the step's folder yet
            return set()
        return shards

    def write_manifest(self, step: str, shard: int, body: dict) -> None:
        self._write(manifest_key(step, shard), json.dumps(body, indent=1).encode())

    def read_flag(self) -> Flag | None:
        data = self._read(FLAG)
        return None if data is None else Flag.from_json(data)

    def write_flag(self, flag: Flag) -> None:
        self._write(FLAG, flag.to_json())
