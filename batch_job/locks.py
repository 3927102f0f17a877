"""One run per prefix: a lock object per target prefix, taken with a conditional create.

Locks live in one folder per store, outside every bioindex prefix (the bioindex reads every object
under a prefix):
    S3:    s3://<data bucket>/.bgzip-workflow/locks/<key prefix>.lock
    local: $BGZIP_JOB_LOCKS (default <temp dir>/bgzip-workflow-locks/)<absolute folder path>/.lock
A lock's body names its holder: the run folder, and for a workflow run the execution ARN.

Taking a lock: create ours only if the key is free (S3 `If-None-Match: *`, an exclusive link
locally), then list every lock and give ours up if another holds a prefix that contains or lies
inside ours. Of two runs racing on overlapping prefixes each lists after its own create, so each
sees the other's lock: at most one goes on - possibly neither, which is safe and says so. A lock
whose execution is no longer RUNNING is stale and is cleared, with a log line.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from batch_job.errors import BadInput, ObjectChanged, PrefixLocked, StoreError
from batch_job.locations import Location
from batch_job.records import now, parse_time
from batch_job.stores import LocalStore, S3Store

log = logging.getLogger("bgzip-job")

LOCK_FOLDER = ".bgzip-workflow/locks/"
LOCK_NAME = ".lock"
LOCKS_ENV = "BGZIP_JOB_LOCKS"
# How long a lock's execution counts as running although Step Functions says it does not exist.
JUST_STARTED_SECONDS = 300


@dataclass
class Lock:
    key_prefix: str  # the target's key prefix (local: its absolute path without the leading '/')
    target: str
    run: str  # the holder: its run folder
    execution: str = ""  # the holder's Step Functions execution, if it is a workflow run
    mode: str = ""
    index: str = ""
    prefix: str = ""
    created: str = field(default_factory=now)

    def holder(self) -> str:
        who = f"execution {self.execution.rsplit(':', 1)[-1]}" if self.execution else f"the run by hand {self.run}"
        return f"{who} ({self.mode} of index {self.index!r}, since {self.created}; run folder {self.run})"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Lock:
        """A lock as written by this or a later version: fields this version does not know are
        ignored; a missing `created` reads as the oldest time there is."""
        try:
            body = json.loads(data)
            known = {f.name for f in fields(cls)}
            return cls(**({"created": ""} | {k: v for k, v in body.items() if k in known}))
        except (ValueError, TypeError, AttributeError) as exc:
            raise BadInput(f"not a bgzip-workflow lock: {exc}") from exc


@dataclass
class UnreadableLock(Lock):
    """A lock object that does not parse: it holds its prefix (a run may still own it), and names
    itself and how to remove it. Never written."""

    problem: str = ""
    where: str = ""  # the lock object's URI

    def holder(self) -> str:
        return (
            f"the unreadable lock object {self.where} ({self.problem}); if no run holds it, "
            f"`bgzip-job unlock {self.target}` removes it"
        )


def _overlap(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


def _age_seconds(created: str) -> float:
    try:
        return (datetime.now(UTC) - parse_time(created)).total_seconds()
    except ValueError:  # a lock without a readable time: as old as can be
        return float("inf")


def execution_is_running(lock: Lock) -> bool:
    """Whether the lock's holder may still be working. A run by hand cannot be asked: only its last
    destructive step or `bgzip-job unlock` frees its lock. An execution is asked; when it cannot be
    asked, it counts as running."""
    if not lock.execution:
        return True
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    region = lock.execution.split(":")[3]  # the execution's own region, whatever the caller's is
    try:
        status = boto3.client("stepfunctions", region_name=region).describe_execution(executionArn=lock.execution)
        status = status["status"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
            return True
        # DescribeExecution is eventually consistent: a just-started execution may not be found yet.
        return _age_seconds(lock.created) < JUST_STARTED_SECONDS
    except BotoCoreError:
        return True
    return status == "RUNNING"


def _how_to_free(lock: Lock) -> str:
    """What frees a prefix `lock` holds, after a '; ' (an unreadable lock's holder() says it)."""
    if isinstance(lock, UnreadableLock):
        return "until then no run may start"
    if lock.execution:
        return f"wait for it, or stop it first (bgz stop {lock.execution.rsplit(':', 1)[-1]})"
    return f"wait for it; if that run is no longer going on, `bgzip-job unlock {lock.target}` frees the prefix"


class Locks:
    """The lock folder of a target's store, and the target's lock in it."""

    def __init__(self, target: Location) -> None:
        if isinstance(target.store, S3Store):
            bucket = target.store.bucket
            self.folder = Location(target.store, LOCK_FOLDER, f"s3://{bucket}/{LOCK_FOLDER}")
            self.key_prefix = target.prefix
        else:
            assert isinstance(target.store, LocalStore)
            root = Path(os.environ.get(LOCKS_ENV) or Path(tempfile.gettempdir()) / "bgzip-workflow-locks")
            root.mkdir(parents=True, exist_ok=True)
            self.folder = Location(LocalStore(root), "", f"{root.resolve()}/")
            self.key_prefix = str(target.store.root).lstrip("/") + "/" + target.prefix
        self.target = target

    @property
    def uri(self) -> str:
        return self.folder.uri + self.key_prefix + LOCK_NAME

    def _key(self, key_prefix: str) -> str:
        return self.folder.key(key_prefix + LOCK_NAME)

    def read(self, key_prefix: str | None = None) -> tuple[Lock, str] | None:
        """A lock and its ETag (to release exactly that version), or None."""
        key = self._key(self.key_prefix if key_prefix is None else key_prefix)
        info = self.folder.store.head(key)
        if info is None:
            return None
        try:
            data = self.folder.store.read_bytes(key)
        except ObjectChanged:  # released between the HEAD and the GET
            return None
        if data is None:
            return None
        try:
            return Lock.from_json(data), info.etag
        except BadInput as exc:
            prefix = self.key_prefix if key_prefix is None else key_prefix
            target = self.target.store.uri(prefix) if isinstance(self.target.store, S3Store) else f"/{prefix}"
            where = self.folder.store.uri(key)
            return UnreadableLock(prefix, target, run="", created="", problem=str(exc), where=where), info.etag

    def held(self) -> list[tuple[Lock, str]]:
        """Every lock in the folder (a handful: one per run in progress)."""
        try:
            infos = list(self.folder.store.list_objects(self.folder.prefix))
        except StoreError:  # a local lock folder not made yet
            return []
        found = []
        for info in infos:
            if info.key.endswith("/" + LOCK_NAME):
                key_prefix = info.key[len(self.folder.prefix) : -len(LOCK_NAME)]
                lock = self.read(key_prefix)
                if lock is not None:
                    found.append(lock)
        return found

    def blocking(self) -> Lock | None:
        """The lock a run on this target would meet: its own or one of a prefix containing or inside it
        (read only: a stale one is reported, not cleared)."""
        for other, _ in self.held():
            if other.key_prefix == self.key_prefix or _overlap(other.key_prefix, self.key_prefix):
                return other
        return None

    def _remove(self, lock: Lock, etag: str) -> None:
        self.folder.store.delete([(self._key(lock.key_prefix), etag)])

    def _clear_stale(self, lock: Lock, etag: str) -> None:
        log.warning("lock: clearing the stale lock of %s held by %s", lock.target, lock.holder())
        self._remove(lock, etag)

    def acquire(self, lock: Lock, alive: Callable[[Lock], bool] = execution_is_running) -> None:
        """Take the target's lock for `lock.run`, or raise PrefixLocked naming the holder."""
        for _ in range(3):
            if self.folder.store.create(self._key(lock.key_prefix), lock.to_json()) is None:
                found = self.read()
                if found is None:
                    continue  # released in between: try again
                existing, etag = found
                if existing.run != lock.run:
                    if not alive(existing):
                        log.warning(
                            "lock: clearing the stale lock of %s held by %s", existing.target, existing.holder()
                        )
                        self._remove(existing, etag)
                        continue
                    raise PrefixLocked(f"{lock.target} is locked by {existing.holder()}; {_how_to_free(existing)}")
                # this run holds it already (a re-run of its plan): the overlap check below still applies
            try:
                self._refuse_overlaps(lock, alive)
            except BaseException:
                self.release(lock.run)  # never leave a lock behind that this call could not stand by
                raise
            return
        raise PrefixLocked(f"could not take the lock of {lock.target}: it kept changing hands; try again")

    def _refuse_overlaps(self, lock: Lock, alive: Callable[[Lock], bool]) -> None:
        for other, etag in self.held():
            if other.key_prefix == lock.key_prefix or not _overlap(other.key_prefix, lock.key_prefix):
                continue
            if not alive(other):
                self._clear_stale(other, etag)
                continue
            where = "lies inside" if lock.key_prefix.startswith(other.key_prefix) else "contains"
            raise PrefixLocked(
                f"{lock.target} {where} {other.target}, which is locked by {other.holder()}; {_how_to_free(other)}"
            )

    def release(self, run: str) -> bool:
        """Remove the target's lock if `run` holds it; whether it did."""
        found = self.read()
        if found is None or found[0].run != run:
            return False
        self._remove(*found)
        log.info("lock: released %s", self.uri)
        return True

    def check_held_by(self, run: str) -> None:
        """Refuse unless `run` holds the target's lock: the destructive steps' precondition."""
        found = self.read()
        if found is None:
            raise PrefixLocked(f"no run holds the lock of {self.target.uri}; this run must plan again to take it")
        if found[0].run != run:
            raise PrefixLocked(f"{self.target.uri} is locked by {found[0].holder()}, not by this run")

    def unlock(self) -> Lock | None:
        """Remove the target's lock whoever holds it (an operator who knows better)."""
        found = self.read()
        if found is not None:
            self._remove(*found)
        return found[0] if found else None
