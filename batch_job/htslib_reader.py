"""Decompress BGZF through htslib's own read path (pysam) and say its size and SHA-256.

Verification reads every .gz with the code the bioindex server uses, not with our writer's codec.
It runs in child processes: pysam holds the GIL while it reads, and a separate process lets it
inflate on one core while the parent streams and hashes the original on another. Each child is
long-lived and reads one file after another (a process per file made prefixes of many small files
slow): the parent writes a FIFO's path on a line of the child's stdin, then the .gz into the FIFO;
the child answers with one JSON line, {"size", "sha256"} or {"error"}.

    python -m batch_job.htslib_reader      (requests on stdin, answers on stdout)
"""

from __future__ import annotations

import hashlib
import json
import sys

import pysam


def read(path: str) -> dict:
    digest = hashlib.sha256()
    size = 0
    try:
        with pysam.BGZFile(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        return {"error": f"htslib could not read the BGZF stream after {size} bytes: {exc}"}
    return {"size": size, "sha256": digest.hexdigest()}


def main() -> int:
    for line in sys.stdin:
        print(json.dumps(read(line.rstrip("\n"))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
