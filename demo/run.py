"""`make demo`: convert a small sample index in a temporary folder, offline, and print what happened."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from batch_job import cli
from demo.sample_index import make_sample_index


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bgzip-demo-") as tmp:
        data, run = Path(tmp) / "associations", Path(tmp) / "run"
        make_sample_index(data)
        print(f"sample index: {data}")
        for args in (
            ["plan", str(data), "--index", "associations", "--run", str(run), "--shards", "2"],
            ["compress", "--run", str(run)],
            ["verify", "--run", str(run)],
        ):
            print(f"\n$ bgzip-job {' '.join(args)}", flush=True)
            if cli.main(args) != 0:
                return 1
        print("\nfiles now:")
        for path in sorted(data.rglob("*")):
            if path.is_file():
                print(f"  {path.stat().st_size:>9}  {path.relative_to(data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
