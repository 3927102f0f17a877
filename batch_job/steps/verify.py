"""Check every X.json against its X.json.gz and .gzi, independently of the code that wrote them.

The .gz is decompressed by htslib (pysam, in long-lived child processes) and compared by size and SHA-256 with a
fresh read of X.json; the block index is rebuilt from the .gz and compared byte for byte with the
stored .gzi; random access through the .gzi is spot-checked against ranges of X.json with Python's
zlib. The record keeps every object's ETag, so delete can prove nothing changed since.
Compress and rollback runs verify the same pair; only which side is the planned source differs.
"""

from __future__ import annotations

import hashlib
import random
import zlib
from collections.abc import Iterator

from batch_job import bgzf
from batch_job.codec import iter_stream
from batch_job.errors import BGZFError, FileFailed
from batch_job.htslib_readers import READERS
from batch_job.provenance import why_not_current
from batch_job.records import FileRecord, Mode, PlannedFile
from batch_job.steps.runner import StepContext
from batch_job.stores import ObjectInfo, Store

SPOT_CHECKS = 8
SPOT_LENGTH = 1000


def _hash_original(ctx: StepContext, planned: PlannedFile, original: ObjectInfo) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with ctx.target.store.open(planned.original, original.etag) as stream:
        for chunk in iter_stream(stream):
            digest.update(chunk)
            size += len(chunk)
            ctx.progress.advance(bytes_in=len(chunk))
    return size, digest.hexdigest()


def _read_with_htslib(store: Store, key: str, etag: str) -> tuple[dict, bgzf.BlockIndex]:
    """Stream the .gz into htslib's reader while rebuilding its block index from the same bytes."""
    block_index = bgzf.BlockIndex()
    last = b""
    scan_error = ""

    def to_htslib(stream) -> Iterator[bytes]:
        """The .gz's bytes as read, passed on block by block while the index is rebuilt from them."""
        nonlocal last, scan_error
        pending: list[bytes] = []

        def read() -> Iterator[bytes]:
            for chunk in iter_stream(stream):
                pending.append(chunk)
                yield chunk

        try:
            for block in bgzf.iter_blocks(read()):
                block_index.add_block(len(block), int.from_bytes(block[-4:], "little"))
                last = block
                yield from pending
                pending.clear()
        except BGZFError as exc:  # htslib gets what was read, and says what it makes of it
            scan_error = str(exc)
        yield from pending

    with store.open(key, etag) as stream, READERS.reader() as reader:
        result = reader.read(to_htslib(stream))
    if "error" in result:
        raise FileFailed(f"{key}: htslib cannot decompress it: {result['error']}")
    if result.get("stopped"):
        raise FileFailed(f"{key}: htslib stopped reading")
    if scan_error:
        raise FileFailed(f"{key}: {scan_error}")
    if last != bgzf.EOF_BLOCK:
        raise FileFailed(f"{key}: no BGZF EOF block at the end (truncated)")
    return result, block_index


def _spot_offsets(size: int, entries: list[tuple[int, int]], seed: str) -> list[int]:
    if size == 0:
        return []
    rng = random.Random(seed)
    offsets = {0, size - 1}
    for _, u in rng.sample(entries, min(3, len(entries))):
        offsets.update((u - 1, u))
    offsets.update(rng.randrange(size) for _ in range(SPOT_CHECKS))
    return sorted(offsets)


def _read_through_gzi(store: Store, gz: ObjectInfo, entries: list[tuple[int, int]], offset: int, length: int) -> bytes:
    """Uncompressed bytes [offset, offset+length) read the way `bgzip -b -s` does, via the .gzi."""
    coffset, uoffset = bgzf.block_for_offset(entries, offset)
    span = min(2 * bgzf.MAX_BLOCK_SIZE, gz.size - coffset)
    raw = store.read_range(gz.key, coffset, span, gz.etag)
    out = bytearray()
    pos = 0
    while pos + bgzf.HEADER_SIZE <= len(raw) and len(out) < offset - uoffset + length:
        size = bgzf.block_size_from_header(raw[pos : pos + bgzf.HEADER_SIZE])
        if pos + size > len(raw):
            break
        out += zlib.decompress(raw[pos + bgzf.HEADER_SIZE : pos + size - bgzf.FOOTER_SIZE], -15)
        pos += size
    start = offset - uoffset
    return bytes(out[start : start + length])


def verify_file(ctx: StepContext, planned: PlannedFile) -> FileRecord:
    store = ctx.target.store
    rollback = ctx.plan.mode == Mode.ROLLBACK
    original, gz, gzi = (store.head(k) for k in (planned.original, planned.compressed, planned.gzi))
    for key, info in ((planned.original, original), (planned.compressed, gz), (planned.gzi, gzi)):
        if info is None:
            raise FileFailed(f"{key} does not exist")
    source = gz if rollback else original
    if (source.etag, source.size) != (planned.etag, planned.size):
        raise FileFailed(f"{planned.key} changed since the plan was made")
    stale = None if rollback else why_not_current(original, gz, gzi)
    if stale:
        raise FileFailed(stale)

    hashing = ctx.codec_pool.submit(_hash_original, ctx, planned, original)
    try:
        decoded, rebuilt = _read_with_htslib(store, planned.compressed, gz.etag)
    finally:
        size, sha256 = hashing.result()
    with store.open(planned.gzi, gzi.etag) as stream:
        stored_gzi = stream.read()

    problems = []
    if decoded["size"] != size or size != original.size:
        problems.append(f"size: {planned.compressed} holds {decoded['size']} bytes, {planned.original} {size}")
    elif decoded["sha256"] != sha256:
        problems.append(f"content: SHA-256 of {planned.compressed} differs from {planned.original}")
    if rebuilt.to_gzi() != stored_gzi:
        problems.append(f"{planned.gzi} does not match the blocks of {planned.compressed}")
    offsets: list[int] = []
    if not problems:
        entries = bgzf.parse_gzi(stored_gzi)
        offsets = _spot_offsets(size, entries, sha256)
        for offset in offsets:
            length = min(SPOT_LENGTH, size - offset)
            expected = store.read_range(planned.original, offset, length, original.etag)
            if _read_through_gzi(store, gz, entries, offset, length) != expected:
                problems.append(f"random access at byte {offset} through {planned.gzi} returns other bytes")
                break
    if problems:
        raise FileFailed("; ".join(problems))
    return FileRecord(
        planned.key,
        True,
        original_etag=original.etag,
        original_size=original.size,
        gz_etag=gz.etag,
        gz_size=gz.size,
        gzi_etag=gzi.etag,
        gzi_size=gzi.size,
        sha256=sha256,
        random_access_offsets_checked=len(offsets),
    )
