"""One run per prefix: a lock object per target prefix, taken with a conditional create, held
with a lease.

Locks live with the data, where every run on that data finds them, whatever machine, user or temp
folder it runs with:
    S3:    s3://<data bucket>/.bgzip-workflow/locks/<key prefix>.lock  (outside every bioindex
           prefix: the bioindex reads every object under one)
    local: <target folder>/.bgzip-workflow.lock  (on the target's own filesystem, NFS included)
A lock's body names its holder: the run folder, and for a workflow run the execution ARN.

Taking a lock: create ours only if the key is free (S3 `If-None-Match: *`, an exclusive link
locally), then look for every lock of a prefix that contains or lies inside ours (S3: the lock
folder; locally: the target's parent folders and its subfolders) and give ours up if another run
holds one. Of two runs racing on overlapping prefixes each looks after its own create, so each
sees the other's lock: at most one goes on - possibly neither, which is safe and says so.

Holding it: a lock carries a lease. While a step of its run works, the step renews the lease
(`Lease`, a conditional overwrite of exactly the version it holds: S3 `If-Match`; locally the new
version renamed over the old under a flock on `<lock>.guard`, which a removal takes too, so the
lock is never missing while it is renewed) every quarter lease, and a
delete request is sent only while the lease covers the request's whole time (`Store.fenced`): so
when a lease has run out, nothing of its holder is in flight. A lock is stale when its lease has run
out and, for a workflow run, its execution no longer runs; a stale lock is cleared with a log line.
`bgzip-job unlock` refuses a live lease unless forced, and then waits it out.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path

from batch_job.errors import BadInput, DeletesRefused, LeaseExpired, NotDeleted, ObjectChanged, PrefixLocked, StoreError
from batch_job.locations import Location
from batch_job.records import now, parse_time
from batch_job.stores import LocalStore, S3Store, Store

log = logging.getLogger("bgzip-job")

LOCK_FOLDER = ".bgzip-workflow/locks/"
LOCK_NAME = ".lock"
LOCAL_LOCK_NAME = ".bgzip-workflow.lock"
# How long a lock's execution counts as running although Step Functions says it does not exist.
JUST_STARTED_SECONDS = 300
# A lease: how long a lock stays live without renewal. Its holder renews it every quarter lease and
# cuts each delete attempt off within a quarter lease, so a lease outlives two failed renewals and a
# whole attempt, with room for clocks that differ (clock_allowance). BGZIP_JOB_LEASE_SECONDS sets the
# leases of the locks a process takes (the tests use short ones).
LEASE_SECONDS = 120
LEASE_ENV = "BGZIP_JOB_LEASE_SECONDS"
# Reads and deletes of a lock its holder keeps renewing, before a release gives up.
RELEASE_ATTEMPTS = 5


def lease_seconds() -> int:
    value = os.environ.get(LEASE_ENV, "")
    return int(value) if value.isdigit() and int(value) >= 4 else LEASE_SECONDS


@dataclass
class Lock:
    key_prefix: str  # the target's key prefix (local: its absolute path without the leading '/')
    target: str
    run_folder: str  # the holder's run folder (JSON key: run)
    execution_arn: str = ""  # the holder's Step Functions execution, if it is a workflow run
    mode: str = ""
    index: str = ""
    prefix: str = ""
    created: str = field(default_factory=now)
    renewed: str = ""  # the lease's last renewal ("": at `created`)
    lease_seconds: int = 0  # 0: a lock of a version without leases (only its run or `unlock` frees it)

    def holder(self) -> str:
        name = self.execution_arn.rsplit(":", 1)[-1]
        who = f"execution {name}" if self.execution_arn else f"the run by hand {self.run_folder}"
        activity = f"; lease renewed {self.renewed}" if self.renewed and self.renewed != self.created else ""
        since = f"since {self.created}{activity}"
        return f"{who} ({self.mode} of index {self.index!r}, {since}; run folder {self.run_folder})"

    def lease_left(self) -> float | None:
        """Seconds until the lease runs out as other machines see it (negative: it has), allowing for
        their clocks; None for a lock without a lease."""
        if not self.lease_seconds:
            return None
        return self.lease_seconds + clock_allowance(self.lease_seconds) - _age_seconds(self.renewed or self.created)

    # The JSON keys of execution_arn and run_folder: every version reading a lock must find its holder
    # there (one that did not would take a running workflow's lock between its steps for a lapsed run
    # by hand's).
    EXECUTION_KEY = "execution"
    RUN_FOLDER_KEY = "run"

    def to_dict(self) -> dict:
        body = asdict(self)
        body[self.EXECUTION_KEY] = body.pop("execution_arn")
        body[self.RUN_FOLDER_KEY] = body.pop("run_folder")
        return body

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Lock:
        """A lock as written by this or a later version: fields this version does not know are
        ignored; a missing `created` reads as the oldest time there is."""
        try:
            body = json.loads(data)
            known = {f.name for f in fields(cls)}
            if cls.EXECUTION_KEY in body:
                body["execution_arn"] = body.pop(cls.EXECUTION_KEY)
            if cls.RUN_FOLDER_KEY in body:
                body["run_folder"] = body.pop(cls.RUN_FOLDER_KEY)
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


def clock_allowance(lease: float) -> float:
    """How far two machines' clocks may differ, plus the second records are rounded to."""
    return min(10.0, lease / 8) + 1


def holder_alive(lock: Lock) -> bool:
    """Whether the lock's holder may still be working: its lease is live, or its execution still runs
    (between states no process renews it). A run by hand without a lease cannot be asked: only its
    last destructive step or `bgzip-job unlock` frees its lock."""
    left = lock.lease_left()
    if left is not None and left > 0:
        return True
    if lock.execution_arn:
        return execution_is_running(lock)
    return left is None


def execution_is_running(lock: Lock) -> bool:
    """Whether the lock's holder may still be working. A run by hand cannot be asked: only its last
    destructive step or `bgzip-job unlock` frees its lock. An execution is asked; when it cannot be
    asked, it counts as running."""
    if not lock.execution_arn:
        return True
    status = execution_status(lock.execution_arn)
    if status == "ExecutionDoesNotExist":
        # DescribeExecution is eventually consistent: a just-started execution may not be found yet.
        return _age_seconds(lock.created) < JUST_STARTED_SECONDS
    return status in ("RUNNING", None)


def execution_status(arn: str) -> str | None:
    """An execution's status (RUNNING, ABORTED, ...) asked in its own region, whatever the caller's;
    "ExecutionDoesNotExist" if Step Functions does not know it (yet); None if it cannot be asked."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return boto3.client("stepfunctions", region_name=arn.split(":")[3]).describe_execution(executionArn=arn)[
            "status"
        ]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        return code if code == "ExecutionDoesNotExist" else None
    except BotoCoreError:
        return None


def _how_to_free(lock: Lock) -> str:
    """What frees a prefix `lock` holds, after a '; ' (an unreadable lock's holder() says it)."""
    if isinstance(lock, UnreadableLock):
        return "until then no run may start"
    if lock.execution_arn:
        return f"wait for it, or stop it first (bgz stop {lock.execution_arn.rsplit(':', 1)[-1]})"
    if lock.lease_left() is not None:
        return (
            f"a step of it is working, or was less than {lock.lease_seconds} s ago (it renews its lease while one "
            f"works); wait for it; if that run is no longer going on, `bgzip-job unlock {lock.target}` frees "
            "the prefix once the lease has lapsed"
        )
    return f"wait for it; if that run is no longer going on, `bgzip-job unlock {lock.target}` frees the prefix"


class Locks:
    """Where a target's store keeps its locks, and the target's lock among them."""

    def __init__(self, target: Location) -> None:
        if isinstance(target.store, S3Store):
            bucket = target.store.bucket
            self.folder = Location(target.store, LOCK_FOLDER, f"s3://{bucket}/{LOCK_FOLDER}")
            self.key_prefix = target.prefix
            self.lock_name = LOCK_NAME
        else:
            assert isinstance(target.store, LocalStore)
            # Keys: absolute paths without the leading '/'; guarded: a renewal and a removal take turns.
            self.folder = Location(LocalStore("/", guarded=True), "", "/")
            self.key_prefix = str(target.store.root / target.prefix).strip("/") + "/"
            self.lock_name = LOCAL_LOCK_NAME
        self.target = target

    @property
    def uri(self) -> str:
        return self.folder.store.uri(self.key_of(self.key_prefix))

    def key_of(self, key_prefix: str) -> str:
        """The lock object of a key prefix."""
        return self.folder.key(key_prefix + self.lock_name)

    def _target_uri(self, key_prefix: str) -> str:
        return self.target.store.uri(key_prefix) if isinstance(self.target.store, S3Store) else f"/{key_prefix}"

    def read(self, key_prefix: str | None = None) -> tuple[Lock, str] | None:
        """A lock and its ETag (to renew or release exactly that version), or None."""
        prefix = self.key_prefix if key_prefix is None else key_prefix
        key = self.key_of(prefix)
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
            unreadable = UnreadableLock(prefix, self._target_uri(prefix), run_folder="", created="", problem=str(exc))
            unreadable.where = self.folder.store.uri(key)
            return unreadable, info.etag

    def _lock_prefixes(self) -> Iterator[str]:
        """The key prefixes that may have a lock bearing on this target's: S3, every lock of the
        bucket (a handful: one per run in progress); locally, the target, its parent folders and
        its subfolders."""
        if isinstance(self.target.store, S3Store):
            try:
                infos = list(self.folder.store.list_objects(self.folder.prefix))
            except StoreError:
                return
            for info in infos:
                if info.key.endswith("/" + LOCK_NAME):
                    yield info.key[len(self.folder.prefix) : -len(LOCK_NAME)]
            return
        parts = self.key_prefix.strip("/").split("/")
        for depth in range(len(parts)):
            yield "/".join(parts[:depth]) + "/" if depth else ""
        root = Path("/") / self.key_prefix
        for dirpath, _, filenames in os.walk(root):
            if LOCAL_LOCK_NAME in filenames:
                yield str(Path(dirpath)).strip("/") + "/"

    def held(self) -> list[tuple[Lock, str]]:
        """Every lock that may bear on this target's (S3: every lock of the bucket)."""
        found = []
        for key_prefix in dict.fromkeys(self._lock_prefixes()):
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
        self.folder.store.delete([(self.key_of(lock.key_prefix), etag)])

    def _clear_stale(self, lock: Lock, etag: str) -> None:
        log.warning("lock: clearing the stale lock of %s held by %s", lock.target, lock.holder())
        self._remove(lock, etag)

    def acquire(self, lock: Lock, alive: Callable[[Lock], bool] = holder_alive) -> None:
        """Take the target's lock for `lock.run_folder`, or raise PrefixLocked naming the holder."""
        lock = replace(lock, lease_seconds=lock.lease_seconds or lease_seconds())
        for _ in range(3):
            if self.folder.store.create(self.key_of(lock.key_prefix), lock.to_json()) is None:
                found = self.read()
                if found is None:
                    continue  # released in between: try again
                existing, etag = found
                if existing.run_folder != lock.run_folder:
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
                self.release(lock.run_folder)  # never leave a lock behind that this call could not stand by
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

    def release(self, run_folder: str) -> bool:
        """Remove the target's lock if the run of `run_folder` holds it; whether it did. The delete names
        the version read; a holder still at work (`bgz stop` releases while a stopped step winds down)
        may renew it in between, and then it is read and deleted again."""
        for _ in range(RELEASE_ATTEMPTS):
            found = self.read_own()
            if found is None or found[0].run_folder != run_folder:
                return False
            try:
                self._remove(*found)
            except DeletesRefused:
                raise
            except NotDeleted:  # renewed since it was read: not ours to lose, read it again
                continue
            log.info("lock: released %s", self.uri)
            return True
        raise StoreError(
            f"{RELEASE_ATTEMPTS} deletes of the lock of {self.uri} were refused (it kept changing, or S3 failed)"
        )

    def read_own(self) -> tuple[Lock, str] | None:
        """The target's lock where one is expected (held by a run checking it is still its own).
        Locally a renewal takes the file away for an instant: a missing one is looked for again a few
        times before it counts as gone. (Looking for other prefixes' locks needs no second look.)"""
        for pause in (0.02, 0.05, 0.1, 0.2):
            found = self.read()
            if found is not None or not isinstance(self.folder.store, LocalStore):
                return found
            time.sleep(pause)
        return self.read()

    def check_held_by(self, run_folder: str) -> None:
        """Refuse unless the run of `run_folder` holds the target's lock: the destructive steps' precondition."""
        found = self.read_own()
        if found is None:
            raise PrefixLocked(f"no run holds the lock of {self.target.uri}; this run must plan again to take it")
        if found[0].run_folder != run_folder:
            raise PrefixLocked(f"{self.target.uri} is locked by {found[0].holder()}, not by this run")

    def renew(self, lock: Lock, etag: str) -> tuple[Lock, str] | None:
        """A new lease on exactly this version of our lock; None if it is no longer that version."""
        renewed = replace(lock, renewed=now())
        info = self.folder.store.replace(self.key_of(lock.key_prefix), renewed.to_json(), etag)
        return (renewed, info.etag) if info is not None else None

    def unlock(self, force: bool = False, say: Callable[[str], None] = print) -> Lock | None:
        """Remove the target's lock whoever holds it (an operator who knows better). A live lease is
        refused unless `force`; then the lock is removed and the lease waited out, so that nothing
        its holder sent is still in flight when this returns."""
        removed = None
        for _ in range(10):
            found = self.read()
            if found is None:
                break
            lock, etag = found
            if not force and not isinstance(lock, UnreadableLock) and holder_alive(lock):
                left = lock.lease_left()
                live = f"its lease is live for {left:.0f} s more" if left and left > 0 else "its execution is running"
                raise PrefixLocked(
                    f"{lock.target} is held by {lock.holder()}, and {live}: it may be working. Stop it first; "
                    "or `bgzip-job unlock --force`, which takes the lock away and waits out the lease"
                )
            try:
                self._remove(lock, etag)
            except NotDeleted:  # its holder renewed it in between: read it again
                continue
            removed = lock
            break
        else:
            raise PrefixLocked(f"{self.uri} kept changing while it was being removed; try again")
        left = removed.lease_left() if removed is not None else None
        if left is not None and left > 0:
            say(
                f"removed the lock of {removed.target}; a {removed.mode or 'run'} step of {removed.run_folder} may "
                f"still have a delete request in flight until its lease ends: waiting {left:.0f} s"
            )
            time.sleep(left)
        return removed


class Lease:
    """A step's hold on its run's lock: renewed every quarter lease in the background while the step
    works, and the `check` its deletes are fenced with (Store.fenced). A step whose run does not hold
    the lock renews nothing; the delete steps check that it does before every batch anyway."""

    def __init__(self, locks: Locks, run_folder: str) -> None:
        self.locks, self.run_folder = locks, run_folder
        self.held: tuple[Lock, str] | None = None
        self.deadline = 0.0  # monotonic: when the lease runs out as this process counts
        self.lost = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fenced: dict[int, Store] = {}  # one fenced client per store, made on first use

    @property
    def budget(self) -> float:
        """Seconds one fenced request attempt may take."""
        return self.held[0].lease_seconds / 4 if self.held else 0.0

    def __enter__(self) -> Lease:
        found = self.locks.read()
        if found is None or found[0].run_folder != self.run_folder or not found[0].lease_seconds:
            return self  # not this run's lock, or an older version's lock without a lease
        self.held = found
        self._renew()
        self._thread = threading.Thread(target=self._beat, name="lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        for _ in range(5):
            started = time.monotonic()
            try:
                renewed = self.locks.renew(*self.held)
                if renewed is None:  # another version now: a sibling array job of this run renewed it?
                    found = self.locks.read_own()
                    if found is not None and found[0].run_folder == self.run_folder:
                        self.held = found
                        continue
            except StoreError as exc:  # the lease stands until its deadline; the next beat tries again
                log.warning("lock: could not renew the lease of %s: %s", self.locks.uri, exc)
                return
            if renewed is None:
                self.lost = "this run's lock was removed or taken over while the step worked"
                log.warning("lock: %s: %s", self.locks.uri, self.lost)
                return
            self.held = renewed
            self.deadline = started + renewed[0].lease_seconds
            return

    def _beat(self) -> None:
        while not self._stop.wait(self.held[0].lease_seconds / 4) and not self.lost:
            self._renew()

    def check(self) -> None:
        """Right before a delete request is sent: the lease must cover the whole attempt."""
        if self.lost:
            raise LeaseExpired(f"{self.locks.target.uri}: {self.lost}; this delete was not sent")
        if time.monotonic() + self.budget > self.deadline:
            raise LeaseExpired(
                f"{self.locks.target.uri}: this run's lease on the prefix would run out before this delete request "
                "could end (its renewals failed, or this process was paused); it was not sent"
            )

    def store(self, store: Store) -> Store:
        """`store` fenced by this lease (as is, when this step holds no lease)."""
        if not self.held:
            return store
        if id(store) not in self._fenced:
            self._fenced[id(store)] = store.fenced(self.check, self.budget)
        return self._fenced[id(store)]

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
