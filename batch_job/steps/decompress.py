"""Rollback: restore each planned X.json from X.json.gz, streaming, with every block's CRC checked.

A restored X.json records the .gz ETag it was made from, so a re-run skips what is done. An X.json
that is already there and was not made by us (the originals were never deleted) is left untouched:
verify then proves it equals the .gz before anything compressed is removed.
"""

from __future__ import annotations

from batch_job import provenance
from batch_job.codec import CountingReader, Decompression, iter_stream
from batch_job.errors import FileFailed
from batch_job.provenance import current_source
from batch_job.records import FileRecord, PlannedFile, Status
from batch_job.steps.runner import StepContext


def decompress_file(ctx: StepContext, planned: PlannedFile) -> FileRecord:
    store = ctx.target.store
    gz = current_source(store, planned)
    record = FileRecord(planned.key, True, gz_etag=gz.etag, gz_size=gz.size)
    existing = store.head(planned.original)
    if existing is not None:
        ctx.progress.skip(gz.size, existing.size)
        made_by_us = existing.metadata.get(provenance.SOURCE_ETAG) == gz.etag
        record.status = Status.ALREADY_DONE if made_by_us else Status.KEPT_EXISTING
        record.original_etag, record.original_size = existing.etag, existing.size
        return record

    with store.open(planned.key, gz.etag) as stream:
        reader = CountingReader(stream, lambda n: ctx.progress.advance(bytes_in=n))
        decompression = Decompression(iter_stream(reader), ctx.codec_pool, window=2 * ctx.threads)
        restored = store.write(planned.original, decompression, provenance.made_from(gz), size_hint=8 * gz.size)
    if restored.size != decompression.block_index.uncompressed_size:
        raise FileFailed(f"wrote {restored.size} bytes of {planned.original}, decompressed more")
    ctx.progress.advance(bytes_out=restored.size)
    record.status, record.original_etag, record.original_size = Status.RESTORED, restored.etag, restored.size
    return record
