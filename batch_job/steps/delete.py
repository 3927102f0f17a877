"""The only destructive steps: delete the originals (compress run) or the compressed files (rollback).

Each re-checks everything itself, whatever the workflow did before it:
- the run folder holds flag.json confirming the bioindex flag for this index and prefix
  (`compressed: true` before originals go, `false` before compressed files go);
- this run's verify manifest records the file OK;
- the file to keep and the files to delete still have the ETags verify recorded.
- this run holds the lock of the prefix (checked right before each batch is deleted), so a compress
  run's delete and a rollback's remove-compressed can never run on one prefix at once.
Only keys derived from the plan are deleted, in DeleteObjects batches. A file already deleted by an
earlier attempt counts as done, so the step can be re-run after any failure. A run by hand releases
its lock when its last destructive step has done every file; a workflow run's Summarize or failure
path does.
"""

from __future__ import annotations

import threading

from batch_job.errors import FileFailed, Refused
from batch_job.locations import parse_location
from batch_job.locks import Locks
from batch_job.records import CanaryStatus, FileRecord, Flag, Mode, Plan, PlannedFile, RefreshMode, Status, Step
from batch_job.runfolder import RunFolder
from batch_job.steps.runner import StepContext
from batch_job.stores import Store


def check_flag(run: RunFolder, plan: Plan) -> None:
    """Refuse the whole step unless flag.json confirms the flag this run's deletions depend on."""
    wanted = plan.mode == Mode.COMPRESS
    flag = run.read_flag()
    if flag is None:
        raise Refused(
            f"no {Flag.NAME} in {run.uri}: the bioindex flag was never confirmed "
            f"compressed={str(wanted).lower()}, so nothing is deleted"
        )
    if (flag.index, flag.prefix) != (plan.index, plan.prefix):
        raise Refused(
            f"{Flag.NAME} is for index {flag.index!r} prefix {flag.prefix!r}, "
            f"but this run is index {plan.index!r} prefix {plan.prefix!r}; nothing is deleted"
        )
    if flag.compressed is not wanted:
        raise Refused(f"{Flag.NAME} says compressed={str(flag.compressed).lower()}; nothing is deleted")


def check_deletable(run: RunFolder, plan: Plan) -> None:
    """flag.json (check_flag), and - for a workflow run, whose ProveReaders leaves readers-check.json -
    a reader proof that ended well: a run that failed at RefreshReaders or ProveReaders cannot be
    finished by starting its delete step by hand. (A run by hand has no such record.)"""
    check_flag(run, plan)
    refresh = run.read_refresh()
    if refresh is not None and refresh.mode != RefreshMode.REQUESTS and not refresh.done:
        raise Refused(f"{refresh.NAME} shows the bioindex was never restarted for this flag; nothing is deleted")
    check = run.read_readers_check()
    if check is None:
        return
    passed = check.finished is not None and not check.reverted and check.checked is not None
    if check.checked and check.canary is not None:
        passed = passed and check.canary_status == CanaryStatus.RELEASED
    if not passed:
        raise Refused(
            f"{check.NAME} shows the reader proof of this run did not pass (canary {check.canary_status or 'none'}, "
            f"flag set back: {bool(check.reverted)}); nothing is deleted: start a new execution instead"
        )


def release_when_done(run: RunFolder, plan: Plan, step: Step) -> bool:
    """A run by hand ends with its destructive step: release its lock once every shard is done."""
    locks = Locks(parse_location(plan.target))
    found = locks.read()
    if found is None or found[0].run != run.uri or found[0].execution:
        return False  # not ours, or a workflow run's (its Summarize releases it)
    manifests = run.read_manifests(step, plan.shards)
    if len(manifests) < plan.shards or not all(m.ok for m in manifests.values()):
        return False
    return locks.release(run.uri)


def verified_records(run: RunFolder, shard: int) -> dict[str, FileRecord]:
    """This run's verify records of the shard that say OK, by planned key."""
    manifest = run.read_manifest(Step.VERIFY, shard)
    return manifest.by_key(only_ok=True) if manifest else {}


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
    """Per-file checks in parallel, then one batched delete per shard of what passed."""

    def __init__(self) -> None:
        self._verified: dict[int, dict[str, FileRecord]] = {}
        self._lock = threading.Lock()

    def _record_of(self, ctx: StepContext, planned: PlannedFile) -> FileRecord:
        with self._lock:  # files are checked in parallel; read each shard's verify manifest once
            if planned.shard not in self._verified:
                self._verified[planned.shard] = verified_records(ctx.run, planned.shard)
        record = self._verified[planned.shard].get(planned.key)
        if record is None:
            raise FileFailed(f"{planned.key} was not verified OK in this run")
        return record

    def check_file(self, ctx: StepContext, planned: PlannedFile) -> FileRecord:
        present = deletable(ctx.target.store, ctx.plan.mode, planned, self._record_of(ctx, planned))
        ctx.progress.advance(bytes_in=planned.size)
        status = Status.DELETED if present else Status.ALREADY_DELETED
        return FileRecord(planned.key, True, status=status, deleted=present)

    def finish_shard(self, ctx: StepContext, shard: int, records: list[FileRecord]) -> None:
        objects = [(key, etag) for r in records if r.ok for key, etag in r.deleted or []]
        if objects:  # right before deleting: only the run holding the prefix's lock deletes
            ctx.locks.check_held_by(ctx.run.uri)
        try:
            ctx.target.store.delete(objects)
        except Exception as exc:  # the manifest must say these were not deleted, not crash the step
            for record in records:
                if record.ok and record.deleted:
                    record.ok, record.status, record.error = False, Status.FAILED, f"delete failed: {exc}"
                    ctx.progress.failed.append(record.key)
