"""Decompress BGZF from stdin through htslib's own read path (pysam) and print its size and SHA-256.

Verification reads every .gz with the code the bioindex server uses, not with our writer's codec.
It runs as a child process: pysam holds the GIL while it reads, and a separate process lets it
inflate on one core while the parent streams and hashes the original on another.
"""

from __future__ import annotations

import hashlib
import json
import sys

import pysam


def main() -> int:
    digest = hashlib.sha256()
    size = 0
    try:
        with pysam.BGZFile("/dev/stdin", "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        json.dump({"error": f"htslib could not read the BGZF stream after {size} bytes: {exc}"}, sys.stdout)
        return 1
    json.dump({"size": size, "sha256": digest.hexdigest()}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
