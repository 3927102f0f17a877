"""Deterministic GWAS-like JSON-lines data, shaped like a bioindex's associations files.

Used by `make demo`, the tests and the benchmark, so all three work on the same kind of records.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import BinaryIO

PHENOTYPES = ("T2D", "BMI", "LDL", "HDL", "CAD", "HbA1c", "FG", "WHR")
BASES = "ACGT"


def gwas_lines(target_bytes: int, seed: int = 0, phenotype: str | None = None) -> bytes:
    """About `target_bytes` of JSON lines sorted by position, one association per line."""
    rng = random.Random(seed)
    pheno = phenotype or rng.choice(PHENOTYPES)
    lines = []
    size = 0
    chrom, pos = 1, 10_000
    while size < target_bytes:
        pos += rng.randint(1, 4000)
        if pos > 240_000_000:
            chrom, pos = chrom % 22 + 1, 10_000
        ref, alt = rng.sample(BASES, 2)
        beta = rng.gauss(0, 0.05)
        se = abs(rng.gauss(0.02, 0.005)) + 1e-4
        p = rng.random() ** 4
        line = (
            f'{{"varId": "{chrom}:{pos}:{ref}:{alt}", "dbSNP": "rs{rng.randint(1, 900_000_000)}", '
            f'"chromosome": "{chrom}", "position": {pos}, "reference": "{ref}", "alt": "{alt}", '
            f'"phenotype": "{pheno}", "ancestry": "Mixed", "pValue": {p:.6g}, "beta": {beta:.6f}, '
            f'"stdErr": {se:.6f}, "zScore": {beta / se:.5f}, "n": {rng.randint(1000, 900_000)}}}\n'
        ).encode()
        lines.append(line)
        size += len(line)
    return b"".join(lines)


def write_gwas_file(out: BinaryIO, total_bytes: int, seed: int = 0, chunk: int = 16 << 20) -> int:
    """Stream about `total_bytes` of records to `out` without holding them all in memory."""
    written = 0
    part = 0
    while written < total_bytes:
        data = gwas_lines(min(chunk, total_bytes - written), seed=seed * 100_003 + part)
        out.write(data)
        written += len(data)
        part += 1
    return written


def make_sample_index(root: Path, seed: int = 7, ascii_keys: bool = False) -> list[Path]:
    """A small bioindex-like prefix: nested folders, a multi-block file, edge sizes, a non-JSON file.

    `ascii_keys` leaves the non-ASCII folder name out: the bioindex cannot index such keys.
    """
    written = []
    for name, data in _sample_files(seed, ascii_keys).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    (root / "T2D" / "_SUCCESS").write_bytes(b"")
    (root / "README.txt").write_text("not part of the index\n")
    return written


@functools.cache
def _sample_files(seed: int, ascii_keys: bool) -> dict[str, bytes]:
    """The sample index's files, made once per process (every test's stack loads the same ones)."""
    odd_folder = "with space" if ascii_keys else "with space ü"
    return {
        "T2D/part-00000.json": gwas_lines(300_000, seed),
        "T2D/part-00001.json": gwas_lines(65_280 * 3 + 1, seed + 1),
        "BMI/part-00000.json": gwas_lines(120_000, seed + 2),
        "BMI/part-00001.json": gwas_lines(40_000, seed + 3),
        f"LDL/{odd_folder}/part-00000.json": gwas_lines(80_000, seed + 4),
    }


def upload_tree(s3, bucket: str, root: Path, prefix: str) -> dict[str, bytes]:
    """Upload every file under root to s3://bucket/prefix/...; returns key -> content."""
    content = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            key = prefix + path.relative_to(root).as_posix()
            data = path.read_bytes()
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            content[key] = data
    return content


def index_uploaded(s3, bucket: str, db, name: str, schema: str, content: dict[str, bytes]) -> int:
    """Index the uploaded .json objects of `content` (key -> bytes) in the bioindex's tables, with the
    ETags S3 gives them, as the bioindex CLI `index` does; returns the index rows written."""
    keys = sorted(k for k in content if k.endswith(".json"))
    objects = [(k, s3.head_object(Bucket=bucket, Key=k)["ETag"].strip('"'), content[k]) for k in keys]
    return db.build(name, schema.count(",") + 1, objects)


def load_index(s3, bucket: str, db, name: str, prefix: str, schema: str, root: Path, key_prefix: str = "") -> dict:
    """An index (name, prefix) in the bioindex's tables, built from the files under `root` uploaded to
    s3://bucket/key_prefix (the prefix itself, unless the bioindex reads under a subdir); returns
    key -> content of what was uploaded. What the demo and the tests' stacks load indexes with."""
    db.add_index(name, prefix, schema)
    content = upload_tree(s3, bucket, root, key_prefix or prefix)
    index_uploaded(s3, bucket, db, name, schema, content)
    return content
