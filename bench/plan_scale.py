"""How the Plan step scales with the number of files: a 250,000-file prefix, planned through the S3
API (a moto server on loopback), by `bgzip-job plan` in a process of its own.

    python bench/plan_scale.py [--files 250000]

Prints the plan's wall time, its process's peak RSS and the size of plan.json, next to the Plan
Lambda's limits (900 s, its memory). The objects are created inside moto directly, not uploaded:
only the listing and the plan are measured. Not part of the test suite: timings belong here.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAMBDA_TIMEOUT_S = 900
LAMBDA_MEMORY_MB = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=250_000)
    args = parser.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        s3 = boto3.client("s3")
        for bucket in ("bench-data", "bench-runs"):
            s3.create_bucket(Bucket=bucket)
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        started = time.perf_counter()
        for n in range(args.files):
            key = f"associations/phenotype={n % 400:03d}/ancestry=Mixed/part-{n:06d}-c000.json"
            backend.put_object("bench-data", key, b'{"a": 1}\n')
        print(f"created {args.files:,} objects in moto in {time.perf_counter() - started:.0f} s")

        # The plan's own peak memory is read in the plan process (VmHWM): a forked child's ru_maxrss
        # would also count this parent's pages, which hold every object moto keeps.
        probe = (
            "import sys; from batch_job.cli import main; rc = main(sys.argv[1:]);"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1];"
            "print(int(hwm) // 1024, file=sys.stderr); sys.exit(rc)"
        )
        command = [sys.executable, "-c", probe, "plan", "s3://bench-data/associations/", "--index", "a"]
        command += ["--run-folder", "s3://bench-runs/runs/bench/", "--shards", "64"]
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(f"plan failed: {proc.stderr[-2000:]}")
        rss = int(proc.stderr.strip().splitlines()[-1])
        size = s3.head_object(Bucket="bench-runs", Key="runs/bench/plan.json")["ContentLength"]
        print(
            f"plan of {args.files:,} files: {seconds:.1f} s (Lambda limit {LAMBDA_TIMEOUT_S} s), "
            f"peak RSS {rss} MB (Lambda memory {LAMBDA_MEMORY_MB} MB), plan.json {size / 1e6:.1f} MB"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
