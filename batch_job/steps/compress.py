"""Compress each planned X.json into X.json.gz (BGZF) and X.json.gz.gzi, leaving X.json untouched.

An output counts as done only when both objects exist and record the source they were made from:
the .gz carries the source's ETag and size, and the .gzi, written last, also carries the .gz's
ETag. A run killed at any point therefore leaves nothing a later step mistakes for a finished output,
and a re-run redoes exactly the files that are not done.
"""

from __future__ import annotations

from batch_job import runfolder as rf
from batch_job.codec import Compression, CountingReader
from batch_job.errors import FileFailed
from batch_job.runfolder import PlannedFile
from batch_job.steps.runner import StepContext
from batch_job.stores import ObjectInfo


def output_is_current(source: ObjectInfo, gz: ObjectInfo | None, gzi: ObjectInfo | None) -> bool:
    """Whether .gz and .gzi were completely written from exactly this version of the source."""
    if gz is None or gzi is None:
        return False
    return (
        gz.metadata.get(rf.META_SOURCE_ETAG) == source.etag
        and gz.metadata.get(rf.META_SOURCE_SIZE) == str(source.size)
        and gzi.metadata.get(rf.META_SOURCE_ETAG) == source.etag
        and gzi.metadata.get(rf.META_GZ_ETAG) == gz.etag
    )


def current_source(ctx: StepContext, planned: PlannedFile) -> ObjectInfo:
    """The planned source, refusing it if it is gone or is not the version the plan saw."""
    source = ctx.target.store.head(planned.key)
    if source is None:
        raise FileFailed(f"{planned.key} is gone since the plan was made")
    if (source.etag, source.size) != (planned.etag, planned.size):
        raise FileFailed(
            f"{planned.key} changed since the plan was made (ETag {source.etag}, size {source.size}; "
            f"planned {planned.etag}, {planned.size})"
        )
    return source


def compress_file(ctx: StepContext, planned: PlannedFile, level: int) -> dict:
    store = ctx.target.store
    source = current_source(ctx, planned)
    gz, gzi = store.head(planned.compressed), store.head(planned.index)
    record = {"key": planned.key, "ok": True, "source_etag": source.etag, "source_size": source.size}
    if output_is_current(source, gz, gzi):
        ctx.progress.advance(source.size, gz.size + gzi.size)
        return record | {"status": "already-done", "gz_etag": gz.etag, "gz_size": gz.size, "gzi_etag": gzi.etag}

    meta = {rf.META_SOURCE_ETAG: source.etag, rf.META_SOURCE_SIZE: str(source.size)}
    with store.open(planned.key, source.etag) as stream:
        reader = CountingReader(stream, lambda n: ctx.progress.advance(bytes_in=n))
        compression = Compression(reader, ctx.codec_pool, level, window=2 * ctx.threads)
        gz = store.write(planned.compressed, compression, meta, size_hint=source.size)
    if compression.index.uncompressed_size != source.size:
        raise FileFailed(f"read {compression.index.uncompressed_size} bytes of {planned.key}, expected {source.size}")
    gzi = store.write(planned.index, [compression.index.to_gzi()], meta | {rf.META_GZ_ETAG: gz.etag})
    ctx.progress.advance(bytes_out=gz.size + gzi.size)
    return record | {
        "status": "compressed",
        "gz_etag": gz.etag,
        "gz_size": gz.size,
        "gzi_etag": gzi.etag,
    }
