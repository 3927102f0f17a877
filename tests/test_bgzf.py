"""The codec against the real htslib `bgzip` (Debian's tabix package): byte identity, random
access through our .gzi, `bgzip -t`, and decompression with CRC checks."""

from __future__ import annotations

import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from batch_job import bgzf
from batch_job.codec import Compression, Decompression
from batch_job.errors import BGZFError
from offline.sample_index import gwas_lines

BGZIP = shutil.which("bgzip") or "bgzip: install Debian's tabix package (make test does)"

BLOCK = bgzf.BLOCK_DATA_SIZE
INPUTS = {
    "empty": b"",
    "one-byte": b"\n",
    "exactly-one-block": gwas_lines(BLOCK * 2)[:BLOCK],
    "one-block-plus-one": gwas_lines(BLOCK * 2)[: BLOCK + 1],
    "gwas-multi-block": gwas_lines(1_500_000, seed=3),
    "incompressible": random.Random(5).randbytes(3 * BLOCK + 17),
}


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(2) as executor:
        yield executor


def ours(data: bytes, pool, level: int = -1) -> tuple[bytes, bytes]:
    import io

    compression = Compression(io.BytesIO(data), pool, level, window=4)
    gz = b"".join(compression)
    return gz, compression.block_index.to_gzi()


def htslib(tmp_path: Path, data: bytes, level: int = -1) -> tuple[bytes, bytes]:
    src = tmp_path / "in.json"
    src.write_bytes(data)
    gz = subprocess.run(
        [BGZIP, "-c", "-i", "-I", str(tmp_path / "ref.gzi"), "-l", str(level), str(src)],
        check=True,
        capture_output=True,
    ).stdout
    return gz, (tmp_path / "ref.gzi").read_bytes()


@pytest.mark.parametrize("name", INPUTS)
def test_default_output_is_byte_identical_to_bgzip_i(tmp_path, pool, name):
    assert ours(INPUTS[name], pool) == htslib(tmp_path, INPUTS[name])


def test_blocks_are_made_by_the_libdeflate_bgzip_links():
    """Debian's bgzip links the system libdeflate; the wheel's own differs on tiny inputs."""
    assert bgzf.CODEC == "system libdeflate"


def _bgzip_of(data: bytes) -> bytes:
    return subprocess.run([BGZIP, "-c"], input=data, check=True, capture_output=True).stdout


def test_byte_identical_to_bgzip_at_every_size_from_1_to_2000_bytes(pool):
    records = gwas_lines(4000, seed=11)
    inputs = [records[:n] for n in range(1, 2001)]
    with ThreadPoolExecutor(4) as runner:
        references = list(runner.map(_bgzip_of, inputs))
    differ = [len(data) for data, ref in zip(inputs, references, strict=True) if ours(data, pool)[0] != ref]
    assert differ == []


@pytest.mark.parametrize("tail", [1, 17, 300, 599, 1000])
def test_byte_identical_when_the_last_block_is_tiny(tmp_path, pool, tail):
    data = gwas_lines(3 * BLOCK, seed=tail)[: 2 * BLOCK + tail]
    assert ours(data, pool) == htslib(tmp_path, data)


@pytest.mark.parametrize("level", [0, 1, 4, 6, 9])
def test_levels_match_bgzip_l(tmp_path, pool, level):
    data = INPUTS["gwas-multi-block"]
    assert ours(data, pool, level) == htslib(tmp_path, data, level)


def test_bad_level_is_refused():
    with pytest.raises(ValueError, match=r"-1\.\.9"):
        bgzf.libdeflate_level(10)


@pytest.mark.parametrize("name", INPUTS)
def test_output_passes_bgzip_t(tmp_path, pool, name):
    gz, _ = ours(INPUTS[name], pool)
    (tmp_path / "x.json.gz").write_bytes(gz)
    subprocess.run([BGZIP, "-t", str(tmp_path / "x.json.gz")], check=True)


def _offsets(data: bytes) -> list[int]:
    line_starts = [0, *(i + 1 for i, c in enumerate(data[:-1]) if c == 10)]
    edges = [e + d for e in range(BLOCK, len(data), BLOCK) for d in (-1, 0, 1)]
    rng = random.Random(1)
    return sorted({0, len(data) - 1, *edges, *rng.sample(line_starts, 20), line_starts[-1]})


def test_bgzip_reads_our_files_by_uncompressed_offset(tmp_path, pool):
    """What the bioindex server does: `bgzip -b START -s LEN X.json.gz` with our .gzi beside it."""
    data = INPUTS["gwas-multi-block"]
    gz, gzi = ours(data, pool)
    (tmp_path / "x.json.gz").write_bytes(gz)
    (tmp_path / "x.json.gz.gzi").write_bytes(gzi)
    for offset in _offsets(data):
        for length in (1, 300, 70_000):
            out = subprocess.run(
                [BGZIP, "-b", str(offset), "-s", str(length), str(tmp_path / "x.json.gz")],
                check=True,
                capture_output=True,
            ).stdout
            assert out == data[offset : offset + length], (offset, length)
    unbounded = subprocess.run(
        [BGZIP, "-b", str(BLOCK + 5), str(tmp_path / "x.json.gz")], check=True, capture_output=True
    ).stdout
    assert unbounded == data[BLOCK + 5 :]


def test_gzi_entries_find_the_block_of_an_offset(pool):
    data = INPUTS["gwas-multi-block"]
    gz, gzi = ours(data, pool)
    entries = bgzf.parse_gzi(gzi)
    assert len(entries) == -(-len(data) // BLOCK) - 1
    coffset, uoffset = bgzf.block_for_offset(entries, 2 * BLOCK + 10)
    assert uoffset == 2 * BLOCK
    block = next(bgzf.iter_blocks([gz[coffset:]]))
    assert bgzf.decode_block(block)[10:20] == data[2 * BLOCK + 10 : 2 * BLOCK + 20]
    assert bgzf.parse_gzi(ours(b"", pool)[1]) == []


@pytest.mark.parametrize("name", INPUTS)
def test_decompression_restores_bgzip_output(tmp_path, pool, name):
    gz, gzi = htslib(tmp_path, INPUTS[name])
    chunks = [gz[i : i + 7777] for i in range(0, len(gz), 7777)]
    decompression = Decompression(chunks, pool, window=4)
    assert b"".join(decompression) == INPUTS[name]
    assert decompression.block_index.to_gzi() == gzi


def test_decompression_catches_a_corrupt_block(pool):
    gz, _ = ours(INPUTS["gwas-multi-block"], pool)
    corrupt = bytearray(gz)
    corrupt[len(gz) // 2] ^= 0x55
    with pytest.raises(BGZFError):
        b"".join(Decompression([bytes(corrupt)], pool, window=4))


def test_decompression_catches_truncation(pool):
    gz, _ = ours(INPUTS["gwas-multi-block"], pool)
    with pytest.raises(BGZFError, match="truncated"):
        b"".join(Decompression([gz[:-100]], pool, window=4))
    with pytest.raises(BGZFError, match="EOF block"):
        b"".join(Decompression([gz[: -len(bgzf.EOF_BLOCK)]], pool, window=4))


def test_plain_gzip_is_not_bgzf(pool):
    import gzip

    with pytest.raises(BGZFError, match="BC extra field"):
        b"".join(Decompression([gzip.compress(b"{}\n")], pool, window=4))


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [(3, 0x05, "FLG"), (10, 0x07, "XLEN"), (12, ord("X"), "SI1"), (14, 0x03, "SLEN")],
)
def test_a_header_htslib_would_refuse_is_not_bgzf(pool, offset, value, field):
    """The header checks of htslib's check_header(), SLEN included, on the first block's header."""
    gz, _ = ours(INPUTS["gwas-multi-block"], pool)
    assert bgzf.block_size_from_header(gz[: bgzf.HEADER_SIZE]) > 0
    changed = bytearray(gz)
    changed[offset] = value
    with pytest.raises(BGZFError, match="not a BGZF block header"):
        bgzf.block_size_from_header(bytes(changed[: bgzf.HEADER_SIZE]))
