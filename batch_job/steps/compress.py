"""Compress each planned X.json into X.json.gz (BGZF) and X.json.gz.gzi, leaving X.json untouched.

Both outputs record the source they were made from (provenance.py), the .gzi written last, so a
re-run redoes exactly the files that are not done.
"""

from __future__ import annotations

from batch_job import provenance
from batch_job.codec import Compression, CountingReader
from batch_job.errors import FileFailed
from batch_job.provenance import current_source, output_is_current
from batch_job.records import FileRecord, PlannedFile, Status
from batch_job.steps.runner import StepContext


def compress_file(ctx: StepContext, planned: PlannedFile, level: int) -> FileRecord:
    store = ctx.target.store
    source = current_source(store, planned)
    gz, gzi = store.head(planned.compressed), store.head(planned.gzi)
    record = FileRecord(planned.key, True, original_etag=source.etag, original_size=source.size)
    if output_is_current(source, gz, gzi):
        ctx.progress.skip(source.size, gz.size + gzi.size)
        record.status, record.gz_etag, record.gz_size, record.gzi_etag = Status.ALREADY_DONE, gz.etag, gz.size, gzi.etag
        return record

    meta = provenance.made_from(source)
    with store.open(planned.key, source.etag) as stream:
        reader = CountingReader(stream, lambda n: ctx.progress.advance(bytes_in=n))
        compression = Compression(reader, ctx.codec_pool, level, window=2 * ctx.threads)
        gz = store.write(planned.compressed, compression, meta, size_hint=source.size)
    block_index = compression.block_index
    if block_index.uncompressed_size != source.size:
        raise FileFailed(f"read {block_index.uncompressed_size} bytes of {planned.key}, expected {source.size}")
    gzi = store.write(planned.gzi, [block_index.to_gzi()], meta | {provenance.GZ_ETAG: gz.etag})
    ctx.progress.advance(bytes_out=gz.size + gzi.size)
    record.status, record.gz_etag, record.gz_size, record.gzi_etag = Status.COMPRESSED, gz.etag, gz.size, gzi.etag
    return record
