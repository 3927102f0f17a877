"""The run folder: where each record of a run lives, read and written through the folder's store.

    plan.json                  what to convert, with every source's size and ETag, and shard numbers
    <step>/shard-K.json        what each step did to each file of shard K
    <step>/shard-K.error.json  why the step's job for shard K exited non-zero (gone once it succeeds)
    <step>/shard-K.progress.json  how far the step's job for shard K has got, rewritten while it works
    <step>/shard-K.restored.json  what a delete step put back when the bioindex flag changed under it
    baseline.json              the bioindex's answers to a few queries before the run, and the canary
    flag.json                  the bioindex flag as read back after setting it (the delete receipt)
    refresh.json               how the bioindex processes were made to load the new flag (refresh-revert.json:
                               the old flag again, after the bioindex could not read the new side)
    readers-check.json         what ProveReaders did: refreshes, answers compared, the canary's fate
    outcome.json               how the run ended: its summary, or its Error and Cause
    bulk-report.json, .txt     a bulk run's table of every index (the run folder of the bulk execution)
    canary/<key>               a copy of the canary file while it is deleted, to restore it from

Beside the run folders, receipts/<index>/<prefix>flag.json keeps the latest flag.json of each
(index, prefix): the proof a later run may rely on when the bioindex cannot show a prefix.
The records themselves are defined in records.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from batch_job.errors import BadInput, StoreError
from batch_job.locations import Location, parse_location
from batch_job.records import (
    Baseline,
    FileRecord,
    Flag,
    JobError,
    Manifest,
    ManifestHead,
    Outcome,
    Plan,
    PlanHead,
    ReadersCheck,
    Refresh,
    Step,
    StepProgress,
)
from batch_job.stores import S3Store

CANARY_FOLDER = "canary/"
# How much of a record a head read fetches: a plan's head lists a count and a digest per shard (up to
# 10,000 shards); a manifest's is under 2 KB. A head longer than that is read whole.
PLAN_HEAD_LIMIT = 1024 * 1024
MANIFEST_HEAD_LIMIT = 64 * 1024


def _shard_key(step: Step, shard: int | None, suffix: str) -> str:
    """`<step>/shard-K<suffix>`: every per-shard record of a step (shard None: a run by hand over
    every shard, `shard-all`). `_shards` lists them back by suffix."""
    return f"{step}/shard-{'all' if shard is None else shard}{suffix}"


def manifest_key(step: Step, shard: int) -> str:
    return _shard_key(step, shard, ".json")


def run_folder_uri(bucket: str, execution: str) -> str:
    """Where an execution's run folder is in the stack's run bucket."""
    return f"s3://{bucket}/runs/{execution}/"


def receipts_uri(bucket: str) -> str:
    """Where the flag receipts are in the stack's run bucket, beside the run folders."""
    return f"s3://{bucket}/receipts/"


def restored_key(step: Step, shard: int) -> str:
    return _shard_key(step, shard, ".restored.json")


def error_key(step: Step, shard: int | None) -> str:
    """Why a step's job failed."""
    return _shard_key(step, shard, ".error.json")


def progress_key(step: Step, shard: int | None) -> str:
    return _shard_key(step, shard, ".progress.json")


def receipt_key(index: str, prefix: str) -> str:
    """Where the latest flag receipt of (index, prefix) lives, relative to the receipts folder."""
    return f"{index}/{prefix}{Flag.NAME}"


class RunFolder:
    """Reads and writes the run folder's records through the location's store."""

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
        return self.location.store.head(self.location.key(Plan.NAME)) is not None

    def read_plan(self) -> Plan:
        data = self._read(Plan.NAME)
        if data is None:
            raise BadInput(f"no plan in run folder {self.uri} (run `bgzip-job plan` first)")
        return Plan.from_json(data)

    def read_plan_head(self) -> PlanHead:
        """The plan's first line only (Summarize, SetCompressed): not its list of every file."""
        data = self.location.store.read_head(self.location.key(Plan.NAME), PLAN_HEAD_LIMIT)
        if data is None:
            raise BadInput(f"no plan in run folder {self.uri} (run `bgzip-job plan` first)")
        head = PlanHead.from_head(data)
        return head if head is not None else self.read_plan().head

    def write_plan(self, plan: Plan) -> None:
        self._write(Plan.NAME, plan.to_json())

    def read_manifest(self, step: Step, shard: int) -> Manifest | None:
        name = manifest_key(step, shard)
        data = self._read(name)
        return None if data is None else Manifest.from_json(data, name)

    def read_manifests(self, step: Step, shards: int) -> dict[int, Manifest]:
        """Every manifest of a step that exists, read in parallel (a run may have 10,000 shards)."""
        present = self.manifest_shards(step)
        with ThreadPoolExecutor(32) as pool:
            bodies = pool.map(lambda k: (k, self.read_manifest(step, k)), sorted(k for k in present if k < shards))
            return {k: body for k, body in bodies if body is not None}

    def read_manifest_head(self, step: Step, shard: int) -> ManifestHead | None:
        name = manifest_key(step, shard)
        data = self.location.store.read_head(self.location.key(name), MANIFEST_HEAD_LIMIT)
        if data is None:
            return None
        head = ManifestHead.from_head(data, name)
        if head is None:  # written before manifests had heads, or a head over the limit: read it whole
            manifest = self.read_manifest(step, shard)
            return manifest.head if manifest else None
        return head

    def read_manifest_heads(self, step: Step, shards: int) -> dict[int, ManifestHead]:
        """Every manifest head of a step, read in parallel: memory by shards, not by files."""
        present = self.manifest_shards(step)
        with ThreadPoolExecutor(32) as pool:
            heads = pool.map(lambda k: (k, self.read_manifest_head(step, k)), sorted(k for k in present if k < shards))
            return {k: head for k, head in heads if head is not None}

    def finished(self, plan: Plan | PlanHead) -> bool:
        """Whether the run is over: its destructive step is done, OK, in every shard."""
        heads = self.read_manifest_heads(plan.destructive_step, plan.shards)
        return len(heads) == plan.shards and all(head.ok for head in heads.values())

    def manifest_shards(self, step: Step) -> set[int]:
        """Shard numbers with a manifest for the step, from one listing."""
        return self._shards(step, ".json")

    def _shards(self, step: Step, suffix: str) -> set[int]:
        """Shard numbers K with a `<step>/shard-K<suffix>`, from one listing."""
        folder = self.location.key(f"{step}/")  # a folder: local stores list folders only
        shards = set()
        try:
            for info in self.location.store.list_objects(folder):
                name = info.key[len(folder) :]
                number = name.removeprefix("shard-").removesuffix(suffix)
                if name.startswith("shard-") and name.endswith(suffix) and number.isdigit():
                    shards.add(int(number))
        except StoreError:  # a local run folder without the step's folder yet
            return set()
        return shards

    def write_manifest(self, manifest: Manifest) -> None:
        self._write(manifest_key(manifest.step, manifest.shard), manifest.to_json())

    def verified_records(self, shard: int) -> dict[str, FileRecord]:
        """This run's verify records of the shard that say OK, by planned key."""
        manifest = self.read_manifest(Step.VERIFY, shard)
        return manifest.by_key(only_ok=True) if manifest else {}

    def write_restored(self, manifest: Manifest) -> None:
        """What a delete step put back after the flag changed (steps/restore.py)."""
        self._write(restored_key(manifest.step, manifest.shard), manifest.to_json())

    def write_error(self, error: JobError) -> None:
        self._write(error_key(error.step, error.shard), error.to_json())

    def write_progress(self, progress: StepProgress) -> None:
        self._write(progress_key(progress.step, progress.shard), progress.to_json())

    def read_progresses(self, step: Step, unfinished: set[int]) -> dict[int, StepProgress]:
        """The progress records of these shards (those with no manifest yet), from one listing."""
        present = self._shards(step, ".progress.json") & unfinished
        with ThreadPoolExecutor(32) as pool:
            found = pool.map(lambda k: (k, self.read_progress(step, k)), sorted(present))
            return {k: record for k, record in found if record is not None}

    def read_progress(self, step: Step, shard: int) -> StepProgress | None:
        """A job's progress record; None if it wrote none yet (or one that cannot be read: it is
        rewritten as the job works, and only ever shown)."""
        name = progress_key(step, shard)
        try:
            data = self._read(name)
            return None if data is None else StepProgress.from_json(data, name)
        except (BadInput, StoreError):
            return None

    def clear_error(self, step: Step, shard: int | None) -> None:
        info = self.location.store.head(self.location.key(error_key(step, shard)))
        if info is not None:
            self.location.store.delete([(info.key, info.etag)])

    def read_errors(self, step: Step) -> list[JobError]:
        """Every error record the step's jobs left, from one listing."""
        folder = self.location.key(f"{step}/")
        try:
            keys = [i.key for i in self.location.store.list_objects(folder) if i.key.endswith(".error.json")]
        except StoreError:
            return []
        return [JobError.from_json(self.location.store.read_bytes(k) or b"{}", k) for k in sorted(keys)]

    def read_flag(self) -> Flag | None:
        data = self._read(Flag.NAME)
        return None if data is None else Flag.from_json(data)

    def write_flag(self, flag: Flag) -> None:
        self._write(Flag.NAME, flag.to_json())

    def read_baseline(self) -> Baseline | None:
        for name in (Baseline.NAME, Baseline.OLD_NAME):
            data = self._read(name)
            if data is not None:
                return Baseline.from_json(data, name)
        return None

    def write_baseline(self, baseline: Baseline) -> None:
        self._write(Baseline.NAME, baseline.to_json())

    def read_readers_check(self) -> ReadersCheck | None:
        data = self._read(ReadersCheck.NAME)
        return None if data is None else ReadersCheck.from_json(data)

    def write_readers_check(self, check: ReadersCheck) -> None:
        self._write(ReadersCheck.NAME, check.to_json())

    def read_refresh(self, revert: bool = False) -> Refresh | None:
        name = Refresh.REVERT_NAME if revert else Refresh.NAME
        data = self._read(name)
        return None if data is None else Refresh.from_json(data, name)

    def write_refresh(self, refresh: Refresh, revert: bool = False) -> None:
        self._write(Refresh.REVERT_NAME if revert else Refresh.NAME, refresh.to_json())

    def receipts(self) -> Receipts | None:
        """The receipts in this run folder's bucket (runs/NAME/ beside receipts/); None for a local run."""
        store = self.location.store
        return Receipts(parse_location(receipts_uri(store.bucket))) if isinstance(store, S3Store) else None

    def read_outcome(self) -> Outcome | None:
        data = self._read(Outcome.NAME)
        return None if data is None else Outcome.from_json(data)

    def write_outcome(self, outcome: Outcome) -> None:
        self._write(Outcome.NAME, outcome.to_json())

    def canary_key(self, key: str) -> str:
        """Where the canary's copy of `key` lives while it is deleted."""
        return self.location.key(CANARY_FOLDER + key)


class Receipts:
    """The latest flag receipt of each (index, prefix), kept beside the run folders."""

    def __init__(self, location: Location) -> None:
        self.location = location

    def read(self, index: str, prefix: str) -> Flag | None:
        data = self.location.store.read_bytes(self.location.key(receipt_key(index, prefix)))
        return None if data is None else Flag.from_json(data)

    def write(self, flag: Flag) -> None:
        self.location.store.write_bytes(self.location.key(receipt_key(flag.index, flag.prefix)), flag.to_json())
