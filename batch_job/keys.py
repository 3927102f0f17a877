"""How the data's keys are named: X.json, its BGZF X.json.gz, and the .gz's block index X.json.gz.gzi.

"index" in this project is the bioindex's index (a name in `__Indexes`); the BGZF block index is
always the "gzi".
"""

from __future__ import annotations

import re

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


EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def execution_name(*parts: str) -> str:
    """An execution name from `parts` joined by '-', in the characters Batch job names allow (the
    execution names the jobs and the run folder), at most 80 long. The last part is kept whole (it
    makes the name unique: a timestamp, a bulk execution's name) and the others are cut to fit."""
    safe = [re.sub(r"[^A-Za-z0-9_-]", "-", part) for part in parts]
    last = safe[-1][:80]
    room = 80 - len(last) - 1
    head = "-".join(safe[:-1])[:room] if len(safe) > 1 and room > 0 else ""
    return f"{head}-{last}" if head else last
