"""`make sandbox`: the offline stack kept up, for trying `bgz` by hand before deploying anything.

It deploys the stack as `make demo` does (moto on loopback, the real state machines, jobs and
Lambdas, two sample indexes in a bioindex stand-in), prints the two lines that point `bgz` at it,
and serves until Ctrl-C. The stand-in is restarted by the stack's hook (ReaderRefresh=hook), so runs
go on without `bgz confirm`. No AWS account is used; nothing outlives the sandbox.

    python -m demo.sandbox [--port 5000]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from demo.run import BUCKET, INDEX, PREFIX, SECOND_INDEX, SECOND_PREFIX, STACK, have_bgzip, load_index
from offline.aws import OfflineAWS
from offline.bioindex_db import BioindexDatabase
from offline.bioindex_standin import BioindexStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="the offline AWS endpoint's port (default: any free one)")
    args = parser.parse_args(argv)
    if not have_bgzip():
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    aws = OfflineAWS(port=args.port).start()
    with tempfile.TemporaryDirectory(prefix="bgzip-sandbox-") as tmp:
        db = BioindexDatabase(f"sqlite:///{tmp}/bioindex.sqlite")
        db.create_tables()
        bioindex = BioindexStandin(db, BUCKET, set_endpoint=True, env=aws.env)
        try:
            hook = aws.create_function(
                "bioindex-restart", "offline.standin_hook.handler", {"STANDIN_CONTROL": str(bioindex.control)}
            )
            aws.deploy(
                STACK,
                BUCKET,
                {
                    "FlagBackend": "http",
                    "InsecureBioindexUrl": bioindex.url,
                    "ReaderRefresh": "hook",
                    "ReaderRefreshHookArn": hook["FunctionArn"],
                },
            )
            load_index(aws, db, Path(tmp) / "index", INDEX, PREFIX, seed=7)
            load_index(aws, db, Path(tmp) / "second", SECOND_INDEX, SECOND_PREFIX, seed=11)
            bioindex.start()
            exports = " ".join(f"{k}={v}" for k, v in aws.env.items() if k != "MOTO_PORT")
            print(f"\nThe sandbox is up: stack {STACK} in moto at {aws.endpoint}, bioindex stand-in at {bioindex.url}.")
            print("In another shell, from this folder (Ctrl-C here stops the sandbox):\n")
            print(f"  export {exports}")
            print(f"  .venv/bin/bgz plan {INDEX} {PREFIX}\n", flush=True)
            stop.wait()
        finally:
            bioindex.close()
            aws.stop()
    print("sandbox stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
