"""Check every X.json against its X.json.gz and .gzi, independently of the code that wrote them.

The .gz is decompressed by htslib's own bgzip (the reader the bioindex server runs) and compared byte
for byte with a fresh read of X.json, whose SHA-256 is recorded; the block index is rebuilt from the
.gz and compared byte for byte with the stored .gzi; random access through the .gzi is spot-checked
with Python's zlib against X.json's bytes at those offsets, kept as it streamed by. The record keeps
every object's ETag, so delete can prove nothing changed since. Compress and rollback runs verify
the same pair; only which side is the planned source differs.
"""

from __future__ import annotations

import hashlib
import io
import random
import secrets
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from batch_job import bgzf
from batch_job.cancel import raise_if_stopped
from batch_job.codec import iter_stream, read_exact
from batch_job.errors import BGZFError, FileFailed
from batch_job.htslib import BgzipDecompression
from batch_job.provenance import why_not_current
from batch_job.records import FileRecord, Mode, PlannedFile
from batch_job.steps.runner import StepContext
from batch_job.stores import ObjectInfo, Store

SPOT_CHECKS = 8
SPOT_LENGTH = 1000
THREADED_FROM = 1 << 20  # bytes of .gz from which bgzip decompresses on threads


class BlockScan:
    """The .gz's bytes passed on as read, while its block index is rebuilt from them."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.block_index = bgzf.BlockIndex()
        self.last = b""
        self.error = ""

    def __iter__(self) -> Iterator[bytes]:
        pending: list[bytes] = []

        def read() -> Iterator[bytes]:
            for chunk in iter_stream(self._stream):
                pending.append(chunk)
                yield chunk

        try:
            for block in bgzf.iter_blocks(read()):
                self.block_index.add_block(len(block), int.from_bytes(block[-4:], "little"))
                self.last = block
                yield from pending
                pending.clear()
        except BGZFError as exc:  # htslib gets what was read, and says what it makes of it
            self.error = str(exc)
        yield from pending


@dataclass
class Comparison:
    size: int  # bytes of X.json read
    sha256: str  # of X.json, when it was read to the end
    decoded_size: int | None  # bytes htslib decompressed; None if reading stopped at a difference
    first_difference: int | None = None  # offset of the first differing byte both sides hold


def compare(original: Iterator[bytes], decoded: BinaryIO, advance: Callable[[int], None]) -> Comparison:
    """Read X.json and htslib's output side by side; stop at the first byte that differs."""
    digest = hashlib.sha256()
    size = 0
    for chunk in original:
        other = read_exact(decoded, len(chunk))
        if other != chunk:
            at = next((i for i, (a, b) in enumerate(zip(chunk, other, strict=False)) if a != b), None)
            if at is not None:
                return Comparison(size, "", None, size + at)
            return Comparison(size + len(chunk), "", size + len(other))  # htslib's output ended early
        digest.update(chunk)
        size += len(chunk)
        advance(len(chunk))
    extra = 0
    while more := decoded.read(1 << 20):  # longer than X.json: say by how much
        extra += len(more)
    return Comparison(size, digest.hexdigest(), size + extra)


class Windows:
    """The bytes of X.json at the spot-check offsets, kept as its stream passes by: no ranged reads
    (on S3 they were most of a small file's requests)."""

    def __init__(self, offsets: list[int], size: int) -> None:
        self.spans = [(offset, min(SPOT_LENGTH, size - offset)) for offset in offsets]
        self.kept = {offset: bytearray() for offset in offsets}

    def through(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        at = 0
        for chunk in chunks:
            end = at + len(chunk)
            for offset, length in self.spans:
                if offset < end and offset + length > at:
                    self.kept[offset] += chunk[max(offset, at) - at : min(offset + length, end) - at]
            at = end
            yield chunk


def _check_content(
    ctx: StepContext, planned: PlannedFile, original: ObjectInfo, gz: ObjectInfo, windows: Windows
) -> tuple[Comparison, bgzf.BlockIndex]:
    """X.json against htslib's decompression of X.json.gz; the block index rebuilt from the .gz."""
    store = ctx.target.store
    with store.open(planned.compressed, gz.etag) as gz_stream, store.open(planned.original, original.etag) as json:
        scan = BlockScan(gz_stream)
        with BgzipDecompression(scan, ctx.threads if gz.size >= THREADED_FROM else 1) as bgzip:
            chunks = windows.through(iter_stream(json))
            compared = compare(chunks, bgzip.stdout, lambda n: ctx.progress.advance(bytes_in=n))
    if bgzip.error:
        raise FileFailed(f"{planned.compressed}: htslib cannot decompress it: {bgzip.error}")
    if scan.error:
        raise FileFailed(f"{planned.compressed}: {scan.error}")
    # A difference stops the reading (bgzip is killed, the .gz not read to its end): said before the
    # end of the stream is looked at.
    if compared.first_difference is not None:
        at = compared.first_difference
        raise FileFailed(f"content: {planned.compressed} differs from {planned.original} at byte {at}")
    if compared.decoded_size != original.size or compared.size != original.size:
        raise FileFailed(
            f"size: {planned.compressed} holds {compared.decoded_size} bytes, {planned.original} {original.size}"
        )
    if scan.last != bgzf.EOF_BLOCK:
        raise FileFailed(f"{planned.compressed}: no BGZF EOF block at the end (truncated)")
    return compared, scan.block_index


def _spot_offsets(size: int, entries: list[tuple[int, int]], seed: str) -> list[int]:
    if size == 0:
        return []
    rng = random.Random(seed)
    offsets = {0, size - 1}
    for _, u in rng.sample(entries, min(3, len(entries))):
        offsets.update((u - 1, u))
    offsets.update(rng.randrange(size) for _ in range(SPOT_CHECKS))
    return sorted(offsets)


class _BlocksFrom:
    """The .gz's blocks from one .gzi entry on (one ranged read), inflated only as far as asked."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.inflated = bytearray()
        self._pos = 0

    def inflate_to(self, end: int) -> bytearray:
        raw, pos = self.raw, self._pos
        while pos + bgzf.HEADER_SIZE <= len(raw) and len(self.inflated) < end:
            size = bgzf.block_size_from_header(raw[pos : pos + bgzf.HEADER_SIZE])
            if pos + size > len(raw):
                break
            self.inflated += zlib.decompress(raw[pos + bgzf.HEADER_SIZE : pos + size - bgzf.FOOTER_SIZE], -15)
            pos += size
        self._pos = pos
        return self.inflated


def _read_through_gzi(
    read_range: Callable[[int, int], bytes],
    gz: ObjectInfo,
    entries: list[tuple[int, int]],
    offset: int,
    length: int,
    read: dict[int, _BlocksFrom],
) -> bytes:
    """Uncompressed bytes [offset, offset+length) read the way `bgzip -b -s` does, via the .gzi.
    `read` keeps each entry's blocks (`read_range(start, length)` of the .gz) for the other offsets in them."""
    coffset, uoffset = bgzf.block_for_offset(entries, offset)
    if coffset not in read:
        read[coffset] = _BlocksFrom(read_range(coffset, min(2 * bgzf.MAX_BLOCK_SIZE, gz.size - coffset)))
    start = offset - uoffset
    return bytes(read[coffset].inflate_to(start + length)[start : start + length])


def _wrong_offset(
    read_range: Callable[[int, int], bytes], gz: ObjectInfo, entries: list[tuple[int, int]], windows: Windows
) -> int | None:
    """The first spot-check offset whose bytes read through the .gzi differ from X.json's, or None."""
    read: dict[int, _BlocksFrom] = {}
    for offset, length in windows.spans:
        if _read_through_gzi(read_range, gz, entries, offset, length, read) != windows.kept[offset]:
            return offset
    return None


def _current(ctx: StepContext, planned: PlannedFile) -> tuple[ObjectInfo, ObjectInfo, ObjectInfo]:
    """X.json, X.json.gz and X.json.gz.gzi as they are now; refused unless the planned side is as
    planned and (compress) the outputs were made from this X.json."""
    store = ctx.target.store
    return _as_planned(ctx, planned, *(store.head(k) for k in (planned.original, planned.compressed, planned.gzi)))


def _as_planned(
    ctx: StepContext, planned: PlannedFile, original: ObjectInfo | None, gz: ObjectInfo | None, gzi: ObjectInfo | None
) -> tuple[ObjectInfo, ObjectInfo, ObjectInfo]:
    for key, info in ((planned.original, original), (planned.compressed, gz), (planned.gzi, gzi)):
        if info is None:
            raise FileFailed(f"{key} does not exist")
    source = gz if ctx.plan.mode == Mode.ROLLBACK else original
    if (source.etag, source.size) != (planned.etag, planned.size):
        raise FileFailed(f"{planned.key} changed since the plan was made")
    stale = None if ctx.plan.mode == Mode.ROLLBACK else why_not_current(original, gz, gzi)
    if stale:
        raise FileFailed(stale)
    return original, gz, gzi


def _stored_gzi(store: Store, planned: PlannedFile, gzi: ObjectInfo) -> tuple[bytes, list[tuple[int, int]]]:
    with store.open(planned.gzi, gzi.etag) as stream:
        stored = stream.read()
    try:
        return stored, bgzf.parse_gzi(stored)
    except BGZFError:
        return stored, []  # the comparison with the rebuilt index says what is wrong with it


def _record(planned: PlannedFile, infos: tuple[ObjectInfo, ...], sha256: str, offsets: int) -> FileRecord:
    original, gz, gzi = infos
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
        random_access_offsets_checked=offsets,
    )


def verify_file(ctx: StepContext, planned: PlannedFile) -> FileRecord:
    store = ctx.target.store
    original, gz, gzi = _current(ctx, planned)
    stored_gzi, entries = _stored_gzi(store, planned, gzi)
    offsets = _spot_offsets(original.size, entries, seed=f"{planned.key} {original.etag}")
    windows = Windows(offsets, original.size)
    compared, rebuilt = _check_content(ctx, planned, original, gz, windows)
    if rebuilt.to_gzi() != stored_gzi:
        raise FileFailed(f"{planned.gzi} does not match the blocks of {planned.compressed}")

    def read_range(start: int, length: int) -> bytes:
        return store.read_range(gz.key, start, length, gz.etag)

    wrong = _wrong_offset(read_range, gz, entries, windows)
    if wrong is not None:
        raise FileFailed(f"random access at byte {wrong} through {planned.gzi} returns other bytes")
    return _record(planned, (original, gz, gzi), compared.sha256, len(offsets))


# ---- many small files: one htslib process a batch -------------------------------------------------
#
# A process a file costs more than a small file's bytes (a prefix is often thousands of Spark part
# files of a few KiB). So the small files of a shard are checked in batches: their .gz, each followed
# by a BGZF block holding a marker of its own (random, made now), go through one `bgzip -d`, whose
# output must then be each X.json followed by its marker. The markers keep every file to its own
# bytes: a .gz that decompresses short or long puts its marker where X.json's bytes are expected, or
# the next bytes where its marker is. A batch only proves files good; at the first file it cannot,
# the rest of the batch is checked one by one (verify_file), which also says what is wrong.

MARKER_SIZE = 32
BATCHED_BELOW = 256 << 10  # bytes: files below this are batched; a batch holds its .gz in memory (runner.Batching)


def fits_a_batch(planned: PlannedFile) -> bool:
    return planned.size < BATCHED_BELOW


@dataclass
class _Prepared:
    """One file of a batch, checked up to htslib's decompression."""

    planned: PlannedFile
    infos: tuple[ObjectInfo, ObjectInfo, ObjectInfo]  # X.json, X.json.gz, X.json.gz.gzi
    gz: bytes
    entries: list[tuple[int, int]]
    windows: Windows


def _prepare(ctx: StepContext, planned: PlannedFile) -> _Prepared | None:
    """The file's objects read and its .gz's blocks checked against its .gzi; None if anything is
    not as it must be (verify_file then says what)."""
    store = ctx.target.store
    # The .gz and .gzi each in one read that also says its version (one GET on S3, not a HEAD and a GET).
    gz_read, gzi_read = (store.read_object(k, BATCHED_BELOW) for k in (planned.compressed, planned.gzi))
    if gz_read is None or gzi_read is None:
        return None
    (gz, data), (gzi, stored_gzi) = gz_read, gzi_read
    if len(data) != gz.size or len(stored_gzi) != gzi.size:  # too large for a batch: read alone
        return None
    try:
        original, gz, gzi = _as_planned(ctx, planned, store.head(planned.original), gz, gzi)
    except FileFailed:
        return None
    try:
        entries = bgzf.parse_gzi(stored_gzi)
    except BGZFError:
        return None
    scan = BlockScan(io.BytesIO(data))
    for _ in scan:
        pass
    if scan.error or scan.last != bgzf.EOF_BLOCK or scan.block_index.to_gzi() != stored_gzi:
        return None
    offsets = _spot_offsets(original.size, entries, seed=f"{planned.key} {original.etag}")
    return _Prepared(planned, (original, gz, gzi), data, entries, Windows(offsets, original.size))


def _matches(ctx: StepContext, prepared: _Prepared, decoded: BinaryIO, marker: bytes) -> str | None:
    """X.json's SHA-256 if htslib's next output is X.json followed by `marker`, else None."""
    original = prepared.infos[0]
    digest = hashlib.sha256()
    size = 0
    with ctx.target.store.open(prepared.planned.original, original.etag) as stream:
        for chunk in prepared.windows.through(iter_stream(stream)):
            if read_exact(decoded, len(chunk)) != chunk:
                return None
            digest.update(chunk)
            size += len(chunk)
    if size != original.size or read_exact(decoded, len(marker)) != marker:
        return None
    return digest.hexdigest()


def verify_batch(ctx: StepContext, files: list[PlannedFile]) -> dict[str, FileRecord]:
    """The records of the files this batch proves good (see above); the others are left to verify_file."""
    prepared = []
    for planned in files:
        raise_if_stopped()
        try:
            found = _prepare(ctx, planned)
        except Exception:  # a read failed: the file is checked alone, which retries or says why
            found = None
        if found is not None:
            prepared.append(found)
    if not prepared:
        return {}
    token = secrets.token_bytes(MARKER_SIZE - 4)
    markers = [token + n.to_bytes(4, "big") for n in range(len(prepared))]
    level = bgzf.libdeflate_level(1)

    def stream() -> Iterator[bytes]:
        for p, marker in zip(prepared, markers, strict=True):
            yield p.gz
            yield bgzf.encode_block(marker, level)

    proved: dict[str, FileRecord] = {}
    with BgzipDecompression(stream(), threads=1) as bgzip:
        for p, marker in zip(prepared, markers, strict=True):
            try:
                sha256 = _matches(ctx, p, bgzip.stdout, marker)
            except Exception:  # X.json could not be read: it, and the files after it, are checked alone
                sha256 = None
            if sha256 is None:
                break  # htslib's output no longer lines up with the files: the rest are checked alone
            # The .gz's blocks from the bytes read already: no request each.
            if _wrong_offset(lambda start, n, p=p: p.gz[start : start + n], p.infos[1], p.entries, p.windows) is None:
                proved[p.planned.key] = _record(p.planned, p.infos, sha256, len(p.windows.spans))
                ctx.progress.advance(bytes_in=p.infos[0].size)
    return proved
