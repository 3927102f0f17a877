"""Runs one step over the files of a shard: files in parallel, transient errors retried, every
file's outcome written to the step's manifest in the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from batch_job.cancel import STOP, raise_if_stopped, uninterrupted, waiting_on_workers
from batch_job.errors import AccessDenied, BadInput, FileFailed, ObjectChanged, Refused, StoreError
from batch_job.locations import Location, parse_location
from batch_job.locks import Lease, Locks
from batch_job.progress import Progress, Reports
from batch_job.records import (
    CanaryStatus,
    FileRecord,
    Manifest,
    Mode,
    Plan,
    PlannedFile,
    Status,
    Step,
    StepProgress,
    now,
)
from batch_job.runfolder import RunFolder
from batch_job.stores import is_denied

log = logging.getLogger("bgzip-job")

ATTEMPTS = 3
SMALL_FILE = 1 << 20  # bytes: a file below this holds about one batch of blocks (codec.BATCH_BLOCKS)
SMALL_FILES_IN_PARALLEL = 16  # on a latency-bound store (S3): a small file's requests, not its bytes, take its time
PROGRESS_ENV = "BGZIP_JOB_PROGRESS_SECONDS"  # how often a step rewrites its progress record (default 30)


def progress_seconds() -> float:
    try:
        seconds = float(os.environ.get(PROGRESS_ENV, "30"))
    except ValueError as exc:
        raise BadInput(f"{PROGRESS_ENV} must be a number of seconds, not {os.environ[PROGRESS_ENV]!r}") from exc
    if seconds <= 0:
        raise BadInput(f"{PROGRESS_ENV} must be above 0 seconds")
    return seconds


@dataclass
class StepContext:
    run: RunFolder
    plan: Plan
    target: Location
    progress: Progress
    codec_pool: ThreadPoolExecutor
    threads: int
    lease: Lease | None = None  # the run's lease on its prefix while the step works (locks.Lease)

    @property
    def locks(self) -> Locks:
        return Locks(self.target)


FileWork = Callable[[StepContext, PlannedFile], FileRecord]
ShardFinish = Callable[[StepContext, int, list[FileRecord]], None]


@dataclass(frozen=True)
class Batching:
    """Small files a step checks many at a time (verify: one htslib process for a batch, not one a
    file). A batch only proves files good: `work` returns the records of those it proved, and every
    other file of the batch is then done alone by the step's FileWork, which says what is wrong."""

    fits: Callable[[PlannedFile], bool]
    work: Callable[[StepContext, list[PlannedFile]], dict[str, FileRecord]]
    files: int = 64  # at most this many files a batch
    bytes: int = 4 << 20  # and at most this many planned bytes


def _units(files: list[PlannedFile], batching: Batching | None, workers: int) -> list[list[PlannedFile]]:
    """The files in plan order, as the work units of the file workers: batches of the files that fit
    one (no fewer batches than `workers`, while each has a few files), and every other file alone."""
    if batching is None:
        return [[planned] for planned in files]
    units: list[list[PlannedFile]] = []
    batch: list[PlannedFile] = []
    batch_bytes = 0
    per_batch = min(batching.files, max(4, -(-sum(map(batching.fits, files)) // workers)))
    for planned in files:
        fits = batching.fits(planned)
        if batch and (not fits or len(batch) == per_batch or batch_bytes + planned.size > batching.bytes):
            # full, or a file that does not fit comes next: the batch goes first, so units keep plan order
            units.append(batch)
            batch, batch_bytes = [], 0
        if fits:
            batch.append(planned)
            batch_bytes += planned.size
        else:
            units.append([planned])
    if batch:
        units.append(batch)
    return units


def _pool_for(
    unit: list[PlannedFile], mode: Mode, file_pool: Executor, small_pool: Executor, batch_pool: Executor
) -> Executor:
    """A batch to the batch workers, a small file to the small-file workers, any other to the file workers."""
    if len(unit) > 1:
        return batch_pool
    return small_pool if _is_small(unit[0], mode) else file_pool


def _is_small(planned: PlannedFile, mode: Mode) -> bool:
    """Whether the file holds little memory: in a rollback the planned size is the .gz's, and the
    X.json restored from it may be ten times larger."""
    return planned.size < (SMALL_FILE if mode == Mode.COMPRESS else SMALL_FILE // 8)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ObjectChanged | FileFailed | BadInput):
        return False
    return isinstance(exc, StoreError | BotoCoreError | ClientError | OSError)


def _attempt(ctx: StepContext, work: FileWork, planned: PlannedFile) -> FileRecord:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            record = work(ctx, planned)
            ctx.progress.file_done(planned.key, record.ok, record.error or "")
            return record
        except (BadInput, Refused, AccessDenied):  # the run folder, a precondition or the role is wrong:
            raise  # not this file's failure, and no retry of the job can help
        except Exception as exc:  # every failure becomes a manifest record, never a silent skip
            if is_denied(exc):
                raise AccessDenied(f"{planned.key}: access denied: {exc}") from exc
            if attempt < ATTEMPTS and _is_transient(exc):
                log.warning("%s: %s: attempt %d failed (%s), retrying", ctx.progress.step, planned.key, attempt, exc)
                time.sleep(min(2**attempt, 10))
                continue
            error = f"{type(exc).__name__}: {exc}"
            ctx.progress.file_done(planned.key, False, error)
            return FileRecord.failure(planned.key, error)
    raise AssertionError("unreachable")


def load_plan(run: RunFolder, mode: Mode | None) -> tuple[Plan, Location]:
    """The run's plan and target; with `mode`, refuse a plan of the other direction."""
    plan = run.read_plan()
    if mode is not None and plan.mode != mode:
        raise BadInput(f"the plan in {run.uri} is a {plan.mode} plan; this step belongs to a {mode} run")
    return plan, parse_location(plan.target)


def default_shard(shard: int | None) -> int | None:
    """The shard to work on: the argument, else the Batch array index, else None for all shards."""
    if shard is not None:
        return shard
    index = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
    if index in (None, ""):
        return None
    if not index.isdigit():
        raise BadInput(f"AWS_BATCH_JOB_ARRAY_INDEX is {index!r}, not a shard number")
    return int(index)


def run_step(
    run: RunFolder,
    step: Step,
    mode: Mode | None,
    shard: int | None,
    work: FileWork,
    *,
    threads: int,
    parallel_files: int = 2,
    finish_shard: ShardFinish | None = None,
    check: Callable[[RunFolder, Plan], None] | None = None,
    batching: Batching | None = None,
) -> Progress:
    """Do `work` for every planned file of the shard(s) and write `<step>/shard-K.json` for each."""
    plan, target = load_plan(run, mode)
    if check is not None:
        check(run, plan)
    shards = [shard] if shard is not None else list(range(plan.shards))
    files = [f for k in shards for f in plan.files_of(k)]
    progress = Progress(step, len(files), sum(f.size for f in files))
    step_started = now()

    def report(p: Progress) -> None:
        run.write_progress(StepProgress(step, shard, p.files, p.total_files, p.bytes_in, p.total_bytes, step_started))

    # Every step renews its run's lease while it works; the delete steps' requests are fenced by it.
    lease = Lease(Locks(target), run.uri)
    reports = Reports(progress, report, progress_seconds())
    with lease, reports, ThreadPoolExecutor(threads, thread_name_prefix="codec") as codec_pool:
        ctx = StepContext(run, plan, target, progress, codec_pool, threads, lease)
        with contextlib.ExitStack() as pools:
            file_pool = pools.enter_context(ThreadPoolExecutor(parallel_files, thread_name_prefix="file"))
            # Small files on S3 go many at once: each is its requests' latency, and holds little memory.
            small_pool, small_workers = file_pool, parallel_files
            if target.store.latency_bound and parallel_files < SMALL_FILES_IN_PARALLEL:
                small_workers = SMALL_FILES_IN_PARALLEL
                small_pool = pools.enter_context(ThreadPoolExecutor(small_workers, thread_name_prefix="small"))
            batch_pool = small_pool
            if not target.store.latency_bound and batching is not None:
                # On a local folder a batch keeps a second core busy with its own process (verify's
                # bgzip): a second batch at once only contends for the GIL (2,000 files: 0.5 s, not 0.7).
                batch_pool = pools.enter_context(ThreadPoolExecutor(1, thread_name_prefix="batch"))
            for k in shards:
                started = now()
                earlier = run.read_manifest(step, k)
                earlier_records = earlier.by_key() if earlier else {}
                spent = spent_by_this_run(run, plan, k) if step in REDONE_AFTER_DELETION else set()
                ended = threading.Event()

                def one(unit: list[PlannedFile], earlier_records=earlier_records, spent=spent, ended=ended):
                    try:
                        return _work_on(ctx, work, batching, unit, earlier_records, spent, ended)
                    except BaseException:
                        ended.set()  # the step ends with this error: the other units stop at their next file
                        raise

                futures = [
                    _pool_for(unit, plan.mode, file_pool, small_pool, batch_pool).submit(one, unit)
                    for unit in _units(plan.files_of(k), batching, small_workers)
                ]
                with waiting_on_workers():
                    _wait_awake(futures)
                raise_if_stopped()
                records = [r for future in futures for r in future.result()]  # the first failure, in plan order
                with uninterrupted():  # what finish_shard deletes is in the manifest before any Ctrl-C
                    if finish_shard is not None:
                        finish_shard(ctx, k, records)
                    failed = [r.key for r in records if not r.ok]
                    records = [_never_worse(r, earlier_records.get(r.key)) for r in records]
                    run.write_manifest(
                        Manifest(
                            step,
                            k,
                            plan.index,
                            plan.prefix,
                            plan.target,
                            plan.created,
                            started,
                            now(),
                            ok=not failed,
                            failed=failed,
                            files=records,
                        )
                    )
    return progress


def _work_on(
    ctx: StepContext,
    work: FileWork,
    batching: Batching | None,
    unit: list[PlannedFile],
    earlier_records: dict[str, FileRecord],
    spent: set[str],
    ended: threading.Event,
) -> list[FileRecord]:
    """One unit's records, in plan order: a batch's proof where it gave one, else each file's work."""
    raise_if_stopped()  # interrupted while these files waited for a worker
    proved = _batch(ctx, batching, [f for f in unit if f.key not in spent]) if len(unit) > 1 else {}
    records = []
    for planned in unit:
        raise_if_stopped()
        if ended.is_set():  # another unit failed the step: nothing of this shard is recorded
            return records
        if planned.key in spent:  # this run deleted its source side: the earlier record stands
            ctx.progress.file_done(planned.key, True, "")
            records.append(earlier_records.get(planned.key) or FileRecord(planned.key, True))
        elif planned.key in proved:
            ctx.progress.file_done(planned.key, True, "")
            records.append(proved[planned.key])
        else:
            records.append(_attempt(ctx, work, planned))
    return records


def _batch(ctx: StepContext, batching: Batching | None, files: list[PlannedFile]) -> dict[str, FileRecord]:
    """The records of the files a batch proved; none when it could not run (each file alone then
    says why, or raises what stops the step)."""
    if batching is None or not files:
        return {}
    try:
        return batching.work(ctx, files)
    except Exception as exc:  # every file is done alone next, and fails on its own account
        log.debug("%s: a batch of %d files was not checked together: %s", ctx.progress.step, len(files), exc)
        return {}


def _wait_awake(futures: list[Future]) -> None:
    """Wait for the file workers, waking four times a second: the kernel may deliver Ctrl-C or SIGTERM
    to a worker thread, and Python runs the handler (which sets STOP) only when the main thread wakes.
    Once STOP is set or a file raised (a fatal error: access denied, a refusal), the files still
    queued are cancelled and the running ones end at their next chunk, as Executor.map does."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
        if STOP.is_set() or any(not f.cancelled() and f.exception() is not None for f in done):
            for future in pending:
                future.cancel()
            wait(pending)
            return


# Steps whose work needs the side a later step of the same run deletes (compress and verify need the
# originals; decompress and verify of a rollback need the .gz).
REDONE_AFTER_DELETION = {Step.COMPRESS, Step.VERIFY, Step.DECOMPRESS}


def canary_spent(run: RunFolder) -> set[str]:
    """The planned key of the canary, if the reader check deleted its spent side."""
    check = run.read_readers_check()
    if check is not None and check.canary_status in (CanaryStatus.DELETED, CanaryStatus.RELEASED):
        baseline = run.read_baseline()
        return {baseline.canary_key} if baseline else set()
    return set()


def spent_by_this_run(run: RunFolder, plan: Plan, shard: int) -> set[str]:
    """Planned keys whose source side this run itself deleted (its destructive step, or the canary)."""
    manifest = run.read_manifest(plan.destructive_step, shard)
    spent = set(manifest.by_key(only_ok=True)) if manifest else set()
    return spent | canary_spent(run)


def _never_worse(record: FileRecord, earlier: FileRecord | None) -> FileRecord:
    """A re-run never overwrites a success with a failure: the success stays on record, with the
    later failure beside it (the step still fails, so the failure is seen)."""
    if record.ok or earlier is None or not earlier.ok or record.status == Status.RESTORED:
        return record  # a file put back is not "deleted", whatever an earlier attempt recorded
    return dataclasses.replace(earlier, later_failure=record.error or "failed")
