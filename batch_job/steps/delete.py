"""The only destructive steps: delete the originals (compress run) or the compressed files (rollback).

Each re-checks everything itself, whatever the workflow did before it:
- the run folder holds flag.json: the bioindex flag of this index and prefix, as read back
  (`compressed: true` before originals go, `false` before compressed files go);
- this run's verify manifest records the file OK;
- the file to keep and the files to delete still have the ETags verify recorded.
- this run holds the lock of the prefix (checked right before each batch is deleted), so a compress
  run's delete and a rollback's remove-compressed can never run on one prefix at once;
- the live bioindex flag is still what flag.json recorded (read right before each batch and after
  the last; bioindex/live_flag.py). If it changed, deleting stops and what this run deleted is put
  back (restore.py), so the bioindex reads what its flag says.
Only keys derived from the plan are deleted, in DeleteObjects batches. A file already deleted by an
earlier attempt counts as done, so the step can be re-run after any failure. A run by hand releases
its lock when its last destructive step has done every file; a workflow run's Summarize or failure
path does.
"""

from __future__ import annotations

import threading

from batch_job.bioindex.live_flag import LiveFlag
from batch_job.errors import AccessDenied, FileFailed, FlagMoved, LeaseExpired, NotDeleted, Refused
from batch_job.locations import parse_location
from batch_job.locks import Locks
from batch_job.records import CanaryStatus, FileRecord, Flag, Mode, Plan, PlannedFile, RefreshMode, Status, Step
from batch_job.runfolder import RunFolder, restored_key
from batch_job.steps.runner import StepContext
from batch_job.stores import DELETE_BATCH, Store


def check_flag(run: RunFolder, plan: Plan) -> Flag:
    """flag.json, if it shows the flag this run's deletions depend on; else refuse the whole step."""
    wanted = plan.mode == Mode.COMPRESS
    flag = run.read_flag()
    if flag is None:
        raise Refused(
            f"no {Flag.NAME} in {run.uri}: the bioindex flag was never read back "
            f"compressed={str(wanted).lower()}, so nothing is deleted"
        )
    if (flag.index, flag.prefix) != (plan.index, plan.prefix):
        raise Refused(
            f"{Flag.NAME} is for index {flag.index!r} prefix {flag.prefix!r}, "
            f"but this run is index {plan.index!r} prefix {plan.prefix!r}; nothing is deleted"
        )
    if flag.compressed is not wanted:
        raise Refused(f"{Flag.NAME} says compressed={str(flag.compressed).lower()}; nothing is deleted")
    return flag


def check_deletable(run: RunFolder, plan: Plan) -> Flag:
    """flag.json, checked (check_flag), and - for a workflow run, whose ProveReaders leaves readers-check.json -
    a reader proof that ended well: a run that failed at RefreshReaders or ProveReaders cannot be
    finished by starting its delete step by hand. (A run by hand has no such record.)"""
    flag = check_flag(run, plan)
    refresh = run.read_refresh()
    if refresh is not None and refresh.mode != RefreshMode.REQUESTS and not refresh.done_at:
        raise Refused(f"{refresh.NAME} shows the bioindex was never restarted for this flag; nothing is deleted")
    check = run.read_readers_check()
    if check is None:
        return flag
    passed = check.finished is not None and not check.reverted and check.checked is not None
    if check.checked and check.canary is not None:
        passed = passed and check.canary_status == CanaryStatus.RELEASED
    if not passed:
        raise Refused(
            f"{check.NAME} shows the reader proof of this run did not pass (canary {check.canary_status or 'none'}, "
            f"flag set back: {bool(check.reverted)}); nothing is deleted: start a new execution instead"
        )
    return flag


def release_when_done(run: RunFolder, plan: Plan, step: Step) -> bool:
    """A run by hand ends with its destructive step: release its lock once every shard is done."""
    locks = Locks(parse_location(plan.target))
    found = locks.read()
    if found is None or found[0].run_folder != run.uri or found[0].execution_arn:
        return False  # not ours, or a workflow run's (its Summarize releases it)
    return run.finished(plan) and locks.release(run.uri)


def deletable(store: Store, mode: Mode, planned: PlannedFile, verified: FileRecord) -> list[tuple[str, str]]:
    """The (key, ETag) pairs deleting this file's spent side removes, after checking that the side
    kept and the side removed are still exactly what verify saw. Shared by the delete steps and the
    reader check's canary, so both refuse on the same grounds."""
    expected = {
        planned.original: verified.original_etag,
        planned.compressed: verified.gz_etag,
        planned.gzi: verified.gzi_etag,
    }
    if mode == Mode.COMPRESS:
        keep, remove = [planned.compressed, planned.gzi], [planned.original]
    else:
        keep, remove = [planned.original], [planned.compressed, planned.gzi]
    for key in keep:
        info = store.head(key)
        if info is None or info.etag != expected[key]:
            raise FileFailed(f"{key} is missing or changed since it was verified; nothing deleted for it")
    present = []
    for key in remove:
        info = store.head(key)
        if info is None:
            continue
        if info.etag != expected[key]:
            raise FileFailed(f"{key} changed since it was verified; not deleted")
        present.append((key, info.etag))
    return present


class GuardedDelete:
    """Per-file checks in parallel, then the shard's deletions in batches, each right after a check
    that this run holds the prefix's lock and a read of the live bioindex flag; one more read of
    the flag after the last batch. If the flag changed, deleting stops and everything this run
    deleted is put back (steps/restore.py)."""

    def __init__(self) -> None:
        self._verified: dict[int, dict[str, FileRecord]] = {}
        self._lock = threading.Lock()
        self.live: LiveFlag | None = None
        self.flag: Flag | None = None  # flag.json, read once by check()
        self.stopped: FlagMoved | None = None  # the flag changed: no further shard is touched
        self.denied: AccessDenied | None = None  # S3 refused a delete: the step ends final (exit 2)
        self.lease_expired: LeaseExpired | None = None  # a delete not sent: the step ends, retried (exit 3)

    def check(self, run: RunFolder, plan: Plan) -> None:
        """The step's preconditions (check_deletable), and the live flag to re-read before each batch."""
        if not run.manifest_shards(Step.VERIFY):  # by hand, out of order: say so once, final, not per file
            raise Refused(f"verify has not run in {run.uri}: run `bgzip-job verify --run-folder {run.uri}` first")
        self.flag = check_deletable(run, plan)
        self.live = LiveFlag.for_deleting(self.flag)

    def _record_of(self, ctx: StepContext, planned: PlannedFile) -> FileRecord:
        with self._lock:  # files are checked in parallel; read each shard's verify manifest once
            if planned.shard not in self._verified:
                self._verified[planned.shard] = ctx.run.verified_records(planned.shard)
        record = self._verified[planned.shard].get(planned.key)
        if record is None:
            raise FileFailed(f"{planned.key} was not verified OK in this run")
        return record

    def check_file(self, ctx: StepContext, planned: PlannedFile) -> FileRecord:
        if self.stopped is not None:
            raise self.stopped
        if self.denied is not None:  # retrying cannot help, nor can the next shard
            raise self.denied
        if self.lease_expired is not None:  # nothing more is sent under a lease that is gone
            raise self.lease_expired
        present = deletable(ctx.target.store, ctx.plan.mode, planned, self._record_of(ctx, planned))
        ctx.progress.advance(bytes_in=planned.size)
        status = Status.DELETED if present else Status.ALREADY_DELETED
        return FileRecord(planned.key, True, status=status, deleted=present)

    def _check_live(self) -> None:
        if self.live is not None:
            self.live.check(self.flag)

    def finish_shard(self, ctx: StepContext, shard: int, records: list[FileRecord]) -> None:
        deleting = [r for r in records if r.ok and r.deleted]
        done: list[FileRecord] = []
        try:
            if not deleting:  # a retry after a failed attempt: what that attempt deleted is checked too
                self._check_live()
            for batch in _batches(deleting):
                ctx.locks.check_held_by(ctx.run.uri)  # only the run holding the prefix's lock deletes
                self._check_live()
                # Sent only while the run's lease covers the request (locks.Lease, Store.fenced).
                store = ctx.lease.store(ctx.target.store) if ctx.lease else ctx.target.store
                try:
                    store.delete([obj for r in batch for obj in r.deleted])
                except Exception as exc:  # the manifest must say what was not deleted, not crash the step
                    if isinstance(exc, AccessDenied):
                        self.denied = exc
                    if isinstance(exc, LeaseExpired):
                        self.lease_expired = exc
                    kept = exc.kept if isinstance(exc, NotDeleted) else None  # else: no key is known gone
                    in_batch = {id(r) for r in batch}
                    for record in deleting[len(done) :]:
                        mine = [f"{k} ({kept[k]})" for k, _ in record.deleted if kept is not None and k in kept]
                        if kept is not None and id(record) in in_batch and not mine:
                            done.append(record)  # S3 deleted every object of this one
                            continue
                        why = f"not deleted: {', '.join(mine)}" if mine else f"delete failed: {exc}"
                        record.ok, record.status, record.error = False, Status.FAILED, why
                        ctx.progress.failed.append(record.key)
                    break
                done += batch
            if done:
                self._check_live()  # a change while the last batch went is undone now
        except FlagMoved as exc:
            self.stopped = self._put_back(ctx, shard, done, exc)

    def _put_back(self, ctx: StepContext, shard: int, done: list[FileRecord], moved: FlagMoved) -> FlagMoved:
        """Re-make what this run deleted; the error the step ends with says what was put back."""
        from batch_job.steps.restore import restore_spent  # the codec: not loaded by the Lambdas' `deletable`

        step = ctx.plan.destructive_step
        restored = restore_spent(ctx, step, shard, {r.key for r in done})
        not_back = {r.key: r.error for r in restored.files if not r.ok}
        for record in done:
            record.ok = False
            if record.key in not_back:
                record.status, record.error = Status.FAILED, f"deleted; could not be put back: {not_back[record.key]}"
            else:
                record.status, record.error = Status.RESTORED, "deleted, then put back: the bioindex flag changed"
        spent = "originals" if ctx.plan.mode == Mode.COMPRESS else "compressed files"
        kept = ".gz" if ctx.plan.mode == Mode.COMPRESS else ".json"
        back = sum(1 for r in restored.files if r.ok)
        where = ctx.run.location.store.uri(ctx.run.location.key(restored_key(step, shard)))
        message = (
            f"the bioindex flag changed while this run deleted {spent}: {moved}. Deleting stopped; the {back} {spent} "
            f"this run had deleted are back, re-made from their verified {kept} and checked ({where})"
        )
        if not_back:
            message += (
                f"; {len(not_back)} could not be put back ({next(iter(not_back.values()))}): their verified {kept} "
                "are still there, and running this step again puts back what it can"
            )
        return FlagMoved(
            message + ". Find out who changed the flag and why, then start a new run (or a rollback) accordingly"
        )


def _batches(records: list[FileRecord]) -> list[list[FileRecord]]:
    """Records grouped so that each group's objects fit one DeleteObjects request."""
    batches: list[list[FileRecord]] = []
    size = DELETE_BATCH
    for record in records:
        if size + len(record.deleted) > DELETE_BATCH:
            batches.append([])
            size = 0
        batches[-1].append(record)
        size += len(record.deleted)
    return batches
