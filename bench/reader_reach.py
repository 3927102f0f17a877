"""How many bioindex processes do GET /api/bio/indexes refreshes reach? (ReaderRefresh=requests)

    python bench/reader_reach.py [--workers 3 4 8] [--requests 64] [--trials 10]

Runs the bioindex stand-in (N processes accepting from one shared listening socket, one request at a
time each, as `bioindex serve` with uvicorn --workers N does) and sends the refreshes ProveReaders
would send: `--requests` GETs, each on a new connection, one after another (a series) or 8 at a time
(bursts), on an idle server, under query load (two threads of queries taking 20-60 ms each, as the
real server's S3 reads do), and under that load with one process busy with a long query. Counts,
from the stand-in's request log, how many processes saw at least one refresh. Prints, per worker
count, in how many trials every process was reached and the smallest share. Not a test: a measure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from offline.bioindex_db import BioindexDatabase  # noqa: E402
from offline.bioindex_standin import BioindexStandin  # noqa: E402

BURST = 8


def refreshes(url: str, count: int, burst: int) -> None:
    http = urllib3.PoolManager(retries=False, maxsize=burst)
    with ThreadPoolExecutor(max_workers=burst) as pool:
        list(
            pool.map(
                lambda _: http.request("GET", url + "/api/bio/indexes", headers={"Connection": "close"}), range(count)
            )
        )


def load(url: str, stop: threading.Event) -> None:
    """Queries whose answers take 20-60 ms each (the stand-in's sleep path)."""
    http = urllib3.PoolManager(retries=False)
    n = 0
    while not stop.is_set():
        http.request("GET", f"{url}/_standin/sleep?ms={20 + 40 * (n % 2)}", headers={"Connection": "close"})
        n += 1


def trial(standin: BioindexStandin, count: int, burst: int, loaded: bool, busy: bool) -> tuple[int, int]:
    """Processes reached by one refresh, and the smallest count one got."""
    log = standin.control / "requests.jsonl"
    log.unlink(missing_ok=True)
    stop = threading.Event()
    loaders = [threading.Thread(target=load, args=(standin.url, stop)) for _ in range(2 if loaded else 0)]
    held = standin.hold() if busy else None
    for thread in loaders:
        thread.start()
    try:
        refreshes(standin.url, count, burst)
    finally:
        stop.set()
        for thread in loaders:
            thread.join()
        if held is not None:
            standin.release()
    seen = Counter(e["pid"] for e in standin._log() if e["request"].endswith("/api/bio/indexes"))
    return len(seen), min(seen.get(pid, 0) for pid in standin.pids())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[3, 4, 8])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reach-") as tmp:
        db = BioindexDatabase(f"sqlite:///{tmp}/bioindex.sqlite")
        db.create_tables()
        print(f"{args.requests} refreshes per trial, {args.trials} trials; 'all' = trials reaching every process")
        print(f"{'workers':>7}  {'load':<6} {'series: all / min share':<26} {'bursts of 8: all / min share'}")
        for workers in args.workers:
            standin = BioindexStandin(db, "unused", workers=workers, env={"AWS_DEFAULT_REGION": "us-east-1"}).start()
            try:
                for label, loaded, busy in (("idle", False, False), ("loaded", True, False), ("1 busy", True, True)):
                    cells = []
                    for burst in (1, BURST):
                        results = [trial(standin, args.requests, burst, loaded, busy) for _ in range(args.trials)]
                        every = sum(reached == workers for reached, _ in results)
                        cells.append(f"{every:>2}/{args.trials} / {min(low for _, low in results):<3}")
                    print(f"{workers:>7}  {label:<6} {cells[0]:<26} {cells[1]}")
            finally:
                standin.close()
    print("loaded: two threads of 20-60 ms queries; 1 busy: also one process held by a long query all through")
    return 0


if __name__ == "__main__":
    sys.exit(main())
