"""The BGZF block format and htslib's .gzi index, byte for byte as htslib writes them.

Only the format lives here (one block in, one block out); streaming and threads are in codec.py.

A BGZF file is a series of gzip members ("blocks"), each at most 64 KiB, laid out as in the SAM/BAM
specification (SAMv1, section 4.1, "The BGZF compression format"), all integers little-endian:

    offset  size  field
    0       1     ID1   31
    1       1     ID2   139
    2       1     CM    8 (deflate)
    3       1     FLG   4 (FEXTRA)
    4       4     MTIME 0
    8       1     XFL   0
    9       1     OS    255 (unknown)
    10      2     XLEN  6
    12      1     SI1   66 ('B')
    13      1     SI2   67 ('C')
    14      2     SLEN  2
    16      2     BSIZE total block size - 1
    18      ...   CDATA raw deflate data, BSIZE - XLEN - 19 bytes
    -8      4     CRC32 of the uncompressed data
    -4      4     ISIZE length of the uncompressed data

The file ends with the 28-byte empty block EOF_BLOCK (SAMv1 4.1.2). The .gzi beside it is what
htslib's `bgzf_index_dump_hfile` writes: a uint64 count `noffs - 1`, then `noffs - 1` pairs of
uint64 (compressed offset, uncompressed offset), one per block start after the first, (0, 0).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import deflate

from batch_job import system_libdeflate
from batch_job.errors import BadInput, BGZFError

# Blocks are compressed by the libdeflate bgzip links when the system has it (byte-identical to
# bgzip at every size), else by the `deflate` wheel's (identical but for inputs or last blocks
# below about 600 bytes). CODEC names which, for the logs and the tests.
if system_libdeflate.available():
    _compress, _crc32, CODEC = system_libdeflate.deflate_compress, system_libdeflate.crc32, "system libdeflate"
else:
    _compress, _crc32, CODEC = deflate.deflate_compress, deflate.crc32, "deflate wheel"

# htslib's BGZF_BLOCK_SIZE: the uncompressed bytes bgzip puts in every block but the last.
BLOCK_DATA_SIZE = 0xFF00
MAX_BLOCK_SIZE = 0x10000  # BGZF_MAX_BLOCK_SIZE
HEADER_SIZE = 18
FOOTER_SIZE = 8
# The header up to BSIZE (offsets 0..15 above), as htslib writes it.
_HEADER_PREFIX = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")

# bgzip -l N -> the libdeflate level htslib uses for it: bgzf_compress() takes -1 as 6, then maps
# 1..9 through lvl_map {1, 2, 3, 5, 6, 7, 8, 10, 12}; level 0 is a stored block of its own making
# (see encode_block). Checked against Debian's bgzip by tests/test_bgzf.py.
_LIBDEFLATE_LEVEL = {-1: 7, 0: 0, 1: 1, 2: 2, 3: 3, 4: 5, 5: 6, 6: 7, 7: 8, 8: 10, 9: 12}
DEFAULT_LEVEL = -1


def libdeflate_level(level: int) -> int:
    """Map a bgzip `-l` level to libdeflate's scale, refusing what bgzip refuses."""
    if level not in _LIBDEFLATE_LEVEL:
        raise BadInput(f"compression level must be -1..9 (as bgzip -l), got {level}")
    return _LIBDEFLATE_LEVEL[level]


def encode_block(data: bytes, lib_level: int) -> bytes:
    """Compress up to BLOCK_DATA_SIZE bytes into one BGZF block (libdeflate level)."""
    if len(data) > BLOCK_DATA_SIZE:
        raise ValueError("a BGZF block holds at most 65280 uncompressed bytes here")
    if lib_level == 0:
        # bgzf_compress() writes level 0 as one stored deflate block (BFINAL=1, BTYPE=00, LEN, NLEN).
        payload = b"\x01" + struct.pack("<HH", len(data), len(data) ^ 0xFFFF) + data
    else:
        payload = _compress(data, lib_level)
    size = HEADER_SIZE + len(payload) + FOOTER_SIZE
    return b"".join(
        (
            _HEADER_PREFIX,
            struct.pack("<H", size - 1),
            payload,
            struct.pack("<II", _crc32(data), len(data)),
        )
    )


def block_size_from_header(header: bytes) -> int:
    """Total size of the block whose first 18 bytes are `header`.

    Checks what htslib's check_header() checks (gzip magic and deflate, FEXTRA, XLEN 6, the BC
    subfield with SLEN 2), and FLG exactly 4: we only read BGZF that bgzip wrote."""
    if len(header) < HEADER_SIZE:
        raise BGZFError("truncated BGZF block header")
    if (
        header[:4] != b"\x1f\x8b\x08\x04"
        or header[10:12] != b"\x06\x00"
        or header[12:14] != b"BC"
        or header[14:16] != b"\x02\x00"
    ):
        raise BGZFError("not a BGZF block header (gzip member without the BC extra field)")
    size = struct.unpack_from("<H", header, 16)[0] + 1
    if size < HEADER_SIZE + FOOTER_SIZE:
        raise BGZFError(f"impossible BGZF block size {size}")
    return size


def decode_block(block: bytes) -> bytes:
    """Inflate one whole BGZF block and check its CRC32 and length."""
    crc, isize = struct.unpack_from("<II", block, len(block) - FOOTER_SIZE)
    payload = block[HEADER_SIZE : len(block) - FOOTER_SIZE]
    try:
        data = deflate.deflate_decompress(payload, isize) if isize else b""
    except deflate.DeflateError as exc:
        raise BGZFError(f"corrupt deflate data: {exc}") from exc
    if len(data) != isize:
        raise BGZFError(f"block inflated to {len(data)} bytes, footer says {isize}")
    if deflate.crc32(data) != crc:
        raise BGZFError("block CRC32 mismatch")
    return data


def iter_blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a stream of BGZF bytes (any chunking) into whole blocks, the EOF block included."""
    buf = bytearray()
    pos = 0
    for chunk in chunks:
        buf += chunk
        while True:
            if len(buf) - pos < HEADER_SIZE:
                break
            size = block_size_from_header(bytes(buf[pos : pos + HEADER_SIZE]))
            if len(buf) - pos < size:
                break
            yield bytes(buf[pos : pos + size])
            pos += size
        if pos:
            del buf[:pos]
            pos = 0
    if buf:
        raise BGZFError(f"truncated BGZF stream: {len(buf)} trailing bytes")


class BlockIndex:
    """Block starts of a BGZF file as (compressed, uncompressed) offsets: htslib's .gzi content.

    htslib counts every data block start, the first one (0, 0) included (`noffs`), and
    bgzf_index_dump_hfile() stores noffs - 1 entries, leaving out (0, 0). An empty file's count is
    2**64 - 1 (as Debian's bgzip writes it, checked by tests/test_bgzf.py), read back as no entries.
    """

    def __init__(self) -> None:
        self.entries: list[tuple[int, int]] = []
        self.compressed_size = 0
        self.uncompressed_size = 0
        self._blocks = 0

    def add_block(self, compressed_len: int, uncompressed_len: int) -> None:
        """Record the next block; empty blocks (the EOF block) start no entry, as in htslib."""
        if uncompressed_len:
            if self._blocks:
                self.entries.append((self.compressed_size, self.uncompressed_size))
            self._blocks += 1
        self.compressed_size += compressed_len
        self.uncompressed_size += uncompressed_len

    def to_gzi(self) -> bytes:
        count = (self._blocks - 1) & 0xFFFFFFFFFFFFFFFF
        body = b"".join(struct.pack("<QQ", c, u) for c, u in self.entries)
        return struct.pack("<Q", count) + body


def parse_gzi(data: bytes) -> list[tuple[int, int]]:
    """Read a .gzi into its (compressed, uncompressed) entries, checking its length."""
    if len(data) < 8:
        raise BGZFError(".gzi shorter than its 8-byte count")
    count = (struct.unpack_from("<Q", data)[0] + 1) & 0xFFFFFFFFFFFFFFFF
    entries = max(count - 1, 0)
    if len(data) != 8 + 16 * entries:
        raise BGZFError(f".gzi length {len(data)} does not match its count of {entries} entries")
    return [struct.unpack_from("<QQ", data, 8 + 16 * i) for i in range(entries)]


def block_for_offset(entries: list[tuple[int, int]], offset: int) -> tuple[int, int]:
    """The (compressed, uncompressed) start of the block holding uncompressed byte `offset`."""
    lo, hi = 0, len(entries)
    while lo < hi:
        mid = (lo + hi) // 2
        if entries[mid][1] <= offset:
            lo = mid + 1
        else:
            hi = mid
    return entries[lo - 1] if lo else (0, 0)
