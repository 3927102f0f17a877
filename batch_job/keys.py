"""How the data's keys are named: X.json, its BGZF X.json.gz, and the .gz's block index X.json.gz.gzi.

"index" in this project is the bioindex's index (a name in `__Indexes`); the BGZF block index is
always the "gzi".
"""

from __future__ import annotations

from batch_job.errors import BadInput

ORIGINAL_SUFFIX = ".json"
COMPRESSED_SUFFIX = ".json.gz"
GZI_SUFFIX = ".json.gz.gzi"


def compressed_key(original: str) -> str:
    return original + ".gz"


def gzi_key(original: str) -> str:
    return original + ".gz.gzi"


def original_key(compressed: str) -> str:
    if not compressed.endswith(COMPRESSED_SUFFIX):
        raise BadInput(f"{compressed} is not a .json.gz key")
    return compressed[: -len(".gz")]


def s3_prefix(subdir: str, prefix: str) -> str:
    """The S3 key prefix of a bioindex prefix: `<subdir>/<prefix>` as the bioindex's
    BIOINDEX_S3_SUBDIR setting makes it (no subdir: the prefix itself)."""
    subdir = subdir.strip("/")
    return f"{subdir}/{prefix}" if subdir else prefix
