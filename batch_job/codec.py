"""Streaming BGZF compression and decompression with blocks worked on in parallel threads.

libdeflate releases the GIL, so a thread pool scales over cores. Input is read in batches of whole
blocks and at most `window` batches are in flight, so memory stays bounded whatever the file size.

The memory bound of a compress or decompress step, whatever the file sizes (constants from bgzf.py,
codec.py and stores.py; the steps pass window = 2 * threads):

    per file  = window * BATCH_BLOCKS * (BLOCK_DATA_SIZE + MAX_BLOCK_SIZE)   batches in flight, in and out
              + (_RangedReader.AHEAD + 1) * RANGE_SIZE                     S3 ranges read ahead, and the current one
              + (_MultipartUpload.IN_FLIGHT + 1) * part size               S3 parts uploading, and the one filling
    step      = files in parallel * per file
              + on S3, 16 small files: each about 1 MiB in and 1 MiB out, and its copy for the PUT
                (under 1 MiB; in a rollback a .gz under 128 KiB, at most 10x that restored)   runner.py

A 2-vCPU job with the defaults (2 threads, 2 files, 16 MiB parts): 2 * (8 + 40 + 48) MiB = 192 MiB,
and about 16 * 4 MiB = 64 MiB more for small files on S3. Verify holds a batch's .gz of small files
in memory: at most 4 MiB a batch (runner.Batching), one batch a worker.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import BinaryIO

from batch_job import bgzf
from batch_job.errors import BGZFError

BATCH_BLOCKS = 16  # blocks per task: about 1 MiB of input, few enough tasks to keep overhead low


def read_exact(stream: BinaryIO, size: int) -> bytes:
    """Read `size` bytes, or fewer only at end of stream (network bodies return short reads)."""
    parts = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _ordered(pool: Executor, tasks: Iterable[Callable[[], object]], window: int) -> Iterator:
    """Run tasks on the pool, at most `window` at once, yielding results in submission order. A lone
    task (a file of one batch) runs in the calling thread: handing a few KiB to the pool and waiting
    for it costs more than the work."""
    tasks = iter(tasks)
    first = next(tasks, None)
    if first is None:
        return
    second = next(tasks, None)
    if second is None:
        yield first()
        return
    yield from _pooled(pool, itertools.chain((first, second), tasks), window)


def _pooled(pool: Executor, tasks: Iterable[Callable[[], object]], window: int) -> Iterator:
    pending: deque[Future] = deque()
    try:
        for task in tasks:
            pending.append(pool.submit(task))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _compress_batch(data: bytes, lib_level: int) -> tuple[bytes, list[tuple[int, int]]]:
    blocks = []
    sizes = []
    for start in range(0, len(data), bgzf.BLOCK_DATA_SIZE):
        raw = data[start : start + bgzf.BLOCK_DATA_SIZE]
        block = bgzf.encode_block(raw, lib_level)
        blocks.append(block)
        sizes.append((len(block), len(raw)))
    return b"".join(blocks), sizes


class Compression:
    """One file's compression: iterate it for the .gz bytes, then read `block_index` (the .gzi content)."""

    def __init__(self, source: BinaryIO, pool: Executor, level: int, window: int) -> None:
        self._source = source
        self._pool = pool
        self._lib_level = bgzf.libdeflate_level(level)
        self._window = window
        self.block_index = bgzf.BlockIndex()

    def _tasks(self) -> Iterator[Callable[[], tuple[bytes, list[tuple[int, int]]]]]:
        size = bgzf.BLOCK_DATA_SIZE * BATCH_BLOCKS
        while True:
            data = read_exact(self._source, size)
            if not data:
                return
            yield lambda data=data: _compress_batch(data, self._lib_level)

    def __iter__(self) -> Iterator[bytes]:
        for blob, sizes in _ordered(self._pool, self._tasks(), self._window):
            for compressed_len, raw_len in sizes:
                self.block_index.add_block(compressed_len, raw_len)
            yield blob
        self.block_index.add_block(len(bgzf.EOF_BLOCK), 0)
        yield bgzf.EOF_BLOCK


def _decode_batch(blocks: list[bytes]) -> list[bytes]:
    # Kept as one bytes object per block: same-sized allocations are reused by the allocator,
    # where joined ~1 MiB buffers fragmented glibc's per-thread arenas (RSS grew with file size).
    return [bgzf.decode_block(block) for block in blocks]


class Decompression:
    """One file's decompression with every block's CRC checked; iterate it for the raw bytes.

    After iteration `block_index` holds the block index rebuilt from the stream.
    """

    def __init__(self, chunks: Iterable[bytes], pool: Executor, window: int) -> None:
        self._chunks = chunks
        self._pool = pool
        self._window = window
        self.block_index = bgzf.BlockIndex()
        self.saw_eof_block = False

    def _batches(self) -> Iterator[list[bytes]]:
        batch: list[bytes] = []
        for block in bgzf.iter_blocks(self._chunks):
            self.saw_eof_block = block == bgzf.EOF_BLOCK
            batch.append(block)
            if len(batch) == BATCH_BLOCKS:
                yield batch
                batch = []
        if batch:
            yield batch

    def _tasks(self) -> Iterator[Callable[[], tuple[list[bytes], list[bytes]]]]:
        for batch in self._batches():
            yield lambda batch=batch: (batch, _decode_batch(batch))

    def __iter__(self) -> Iterator[bytes]:
        for batch, decoded in _ordered(self._pool, self._tasks(), self._window):
            for block, data in zip(batch, decoded, strict=True):
                self.block_index.add_block(len(block), len(data))
                yield data
        if not self.saw_eof_block:
            raise BGZFError("BGZF stream ends without the EOF block (truncated file)")


class CountingReader:
    """Wraps a read stream and reports the bytes read, for progress on long files."""

    def __init__(self, stream: BinaryIO, report: Callable[[int], None]) -> None:
        self._stream = stream
        self._report = report

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._report(len(data))
        return data


def iter_stream(stream: BinaryIO, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := stream.read(chunk_size):
        yield chunk
