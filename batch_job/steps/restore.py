"""Put back what this run deleted, when the flag its deletions relied on has changed.

The side a delete step removes is re-made from the side it kept, which verify checked in this run:
in a compress run X.json from X.json.gz, streamed, its bytes checked against the SHA-256 verify
recorded before the upload completes (a mismatch aborts it, so no wrong X.json ever appears); in a
rollback X.json.gz and its .gzi from X.json, read pinned to the ETag verify saw. Not only this job's
files: other array children, and the reader check's canary, may have deleted before the flag
changed. A file whose side is there is left alone, so a second job restoring at the same time, or
a re-run, does no harm.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from batch_job import provenance
from batch_job.bgzf import DEFAULT_LEVEL
from batch_job.codec import Decompression, iter_stream
from batch_job.errors import FileFailed
from batch_job.progress import Progress
from batch_job.records import FileRecord, Manifest, Mode, PlannedFile, Status, Step, now
from batch_job.steps.compress import compress_file
from batch_job.steps.runner import StepContext, canary_spent

PARALLEL_FILES = 8


def _checked(chunks: Iterable[bytes], sha256: str, size: int, key: str) -> Iterator[bytes]:
    """The chunks, then a FileFailed instead of the end if they are not the verified bytes: raised
    inside the upload, so the store aborts it."""
    digest, seen = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        seen += len(chunk)
        yield chunk
    if (digest.hexdigest(), seen) != (sha256, size):
        raise FileFailed(f"{key} re-made from its .gz is not the verified original (SHA-256 or size); not written")


def _original_from_gz(ctx: StepContext, planned: PlannedFile, verified: FileRecord) -> FileRecord | None:
    store = ctx.target.store
    if store.head(planned.original) is not None:
        return None
    gz = store.head(planned.compressed)
    if gz is None or gz.etag != verified.gz_etag:
        raise FileFailed(f"{planned.original} is gone and {planned.compressed} is not the verified .gz; not re-made")
    if not verified.sha256 or verified.original_size is None:
        raise FileFailed(f"verify recorded no SHA-256 of {planned.original}; cannot re-make it")
    with store.open(planned.compressed, gz.etag) as stream:
        decompression = Decompression(iter_stream(stream), ctx.codec_pool, window=2 * ctx.threads)
        chunks = _checked(decompression, verified.sha256, verified.original_size, planned.original)
        made = store.write(planned.original, chunks, provenance.made_from(gz), size_hint=verified.original_size)
    ctx.progress.file_done(planned.original, True)
    return FileRecord(
        planned.key,
        True,
        status=Status.RESTORED,
        original_etag=made.etag,
        original_size=made.size,
        gz_etag=gz.etag,
        sha256=verified.sha256,
    )


def _gz_from_original(ctx: StepContext, planned: PlannedFile, verified: FileRecord) -> FileRecord | None:
    store = ctx.target.store
    if store.head(planned.compressed) is not None and store.head(planned.gzi) is not None:
        return None
    if verified.original_etag is None or verified.original_size is None:
        raise FileFailed(f"verify recorded no ETag of {planned.original}; cannot re-make {planned.compressed}")
    source = PlannedFile(planned.original, verified.original_size, verified.original_etag, planned.shard)
    made = compress_file(ctx, source, DEFAULT_LEVEL)  # refuses an X.json that is not the verified one
    made.key, made.status, made.sha256 = planned.key, Status.RESTORED, verified.sha256
    return made


def deleted_by_this_run(ctx: StepContext, step: Step, shard: int, deleting_now: set[str]) -> list[PlannedFile]:
    """The planned files whose spent side this run may have deleted: every file of this job's shard
    (an earlier attempt may have deleted some and failed before its manifest was written), what
    every shard's manifest of `step` records, the canary, and `deleting_now`. A job still deleting
    elsewhere, or the retry of one that failed, re-reads the flag and puts back its own shard."""
    keys = set(deleting_now) | canary_spent(ctx.run) | {f.key for f in ctx.plan.files_of(shard)}
    for manifest in ctx.run.read_manifests(step, ctx.plan.shards).values():
        keys |= {r.key for r in manifest.files if r.ok}
    return [f for f in ctx.plan.files if f.key in keys]


def restore_spent(ctx: StepContext, step: Step, shard: int, deleting_now: set[str]) -> Manifest:
    """Re-make the deleted side of every file this run deleted; write and return
    `<step>/shard-K.restored.json`. Its `ok` is false if any file could not be put back (its record
    says why)."""
    plan, run = ctx.plan, ctx.run
    files = deleted_by_this_run(ctx, step, shard, deleting_now)
    verified: dict[str, FileRecord] = {}
    for k in sorted({f.shard for f in files}):
        verified |= run.verified_records(k)
    remake = _original_from_gz if plan.mode == Mode.COMPRESS else _gz_from_original
    threads = os.cpu_count() or 1
    progress = Progress(f"{step} (putting back)", len(files), sum(f.size for f in files))

    def one(planned: PlannedFile) -> FileRecord | None:
        record = verified.get(planned.key)
        if record is None:
            return FileRecord.failure(planned.key, "no verify record of it in this run; not re-made")
        try:
            return remake(restore_ctx, planned, record)
        except FileFailed as exc:
            return FileRecord.failure(planned.key, str(exc))
        except Exception as exc:  # every file is tried; a failure is recorded, never lost
            return FileRecord.failure(planned.key, f"{type(exc).__name__}: {exc}")

    started = now()
    with ThreadPoolExecutor(threads, thread_name_prefix="codec") as codec_pool:
        restore_ctx = dataclasses.replace(ctx, progress=progress, codec_pool=codec_pool, threads=threads)
        with ThreadPoolExecutor(PARALLEL_FILES, thread_name_prefix="restore") as pool:
            records = [r for r in pool.map(one, files) if r is not None]
    failed = [r.key for r in records if not r.ok]
    manifest = Manifest(
        step, shard, plan.index, plan.prefix, plan.target, plan.created, started, now(), not failed, failed, records
    )
    run.write_restored(manifest)
    return manifest
