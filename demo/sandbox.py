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
import threading

from demo.run import INDEX, PREFIX, STACK, demo_stack, have_bgzip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="the offline AWS endpoint's port (default: any free one)")
    args = parser.parse_args(argv)
    if not have_bgzip():
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with demo_stack(port=args.port, restart_hook=True) as sandbox:
        aws, bioindex = sandbox.aws, sandbox.bioindex
        exports = " ".join(f"{k}={v}" for k, v in aws.env.items() if k != "MOTO_PORT")
        print(f"\nThe sandbox is up: stack {STACK} in moto at {aws.endpoint}, bioindex stand-in at {bioindex.url}.")
        print("In another shell, from this folder (Ctrl-C here stops the sandbox):\n")
        print(f"  export {exports}")
        print(f"  .venv/bin/bgz plan {INDEX} {PREFIX}\n", flush=True)
        stop.wait()
    print("sandbox stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
