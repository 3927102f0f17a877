"""`make demo`: the operator's day, offline - `bgz selftest` of a new deploy, then `bgz plan`,
`bgz start --wait`, `bgz status`, `bgz logs`, `bgz rollback --wait`, `bgz stop` and a bulk
`bgz start` of two indexes, on sample indexes.

The real state machines run in moto, their Batch jobs run the real bgzip-job, their Lambdas the real
handlers; the commands are bgz's own, run against that stack. The bioindex is the stand-in: three
server processes over its tables in an SQLite file (the tests use a real MariaDB), reading the data
through bgzip. The demo uses FlagBackend=http, the stand-in's copy of the historic set-compressed
endpoint, so it needs no database server and no root. No AWS account is used.

The stack keeps its default ReaderRefresh=confirm: after setting the flag each run waits until the
operator has restarted the bioindex and typed `bgz confirm`. The demo plays the operator beside
the commands: it prints what the run asks, restarts the stand-in, and confirms with bgz's own code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from batch_job.htslib import INSTALL
from bgz import cli as bgz_cli
from bgz import runs
from bgz.confirm import confirm, waiting
from bgz.selftest import selftest
from bgz.stack import Stack
from bgz.watch import snapshot
from offline.aws import OfflineAWS
from offline.bioindex_db import BioindexDatabase
from offline.bioindex_standin import BioindexStandin
from offline.sample_index import make_sample_index
from offline.sample_stack import SampleStack

INDEX, PREFIX, BUCKET = "associations", "associations/", "bioindex-data"
SECOND_INDEX, SECOND_PREFIX = "genes", "genes/"
SCHEMA = "phenotype,chromosome"
STACK = "bgzip-workflow"


class Operator:
    """What an operator does when a run asks for a bioindex restart: restart it, then `bgz confirm`."""

    def __init__(self, aws: OfflineAWS, bioindex: BioindexStandin) -> None:
        self.aws, self.bioindex, self.stack = aws, bioindex, Stack(STACK, "us-east-1")

    def serve(self, done: threading.Event) -> None:
        """Until `done`: each run that waits for a bioindex restart gets one, then `bgz confirm`."""
        while not done.wait(0.5):
            try:
                self._answer_waiting()
            except Exception as exc:  # say it, and go on: a dead operator would leave a --wait hanging
                print(f"     [operator] could not answer: {exc}", flush=True)

    def _answer_waiting(self) -> None:
        sfn = self.aws.client("stepfunctions")
        for machine in sfn.list_state_machines()["stateMachines"]:
            found = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
            for execution in found["executions"]:
                description = sfn.describe_execution(executionArn=execution["executionArn"])
                asked = waiting(self.stack, description)
                if asked is None:
                    continue
                print(f"     [operator] {description['name']} asks: {asked[0].asked}")
                print("     [operator] $ <restart every bioindex process>   (the demo restarts the stand-in)")
                self.bioindex.restart()
                print(f"     [operator] $ bgz confirm {description['name']}")
                print(f"     [operator] {confirm(self.stack, description)}", flush=True)


def show_objects(aws: OfflineAWS, prefix: str = PREFIX) -> None:
    for obj in aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        print(f"    {obj['Size']:>9}  s3://{BUCKET}/{obj['Key']}")


def sample_index(stack: SampleStack, root: Path, name: str, prefix: str, seed: int) -> None:
    """A sample index's files in the data bucket, indexed in the bioindex's tables."""
    make_sample_index(root, seed=seed, ascii_keys=True)
    stack.add_index(name, prefix, SCHEMA, root)
    print(f"sample index {name!r} at s3://{BUCKET}/{prefix}")


def bgz(*args: str) -> int:
    """One bgz command against the offline stack, shown as the operator types it."""
    print(f"\n$ bgz {' '.join(args)}", flush=True)
    code = bgz_cli.main([*args, "--stack", STACK, "--region", "us-east-1"])
    if code:
        print(f"  (exit {code})")
    return code


@contextlib.contextmanager
def demo_stack(port: int = 0, restart_hook: bool = False) -> Iterator[SampleStack]:
    """The offline stack (offline/sample_stack.py) with two sample indexes, their originals in
    `.indexes`; everything stopped after. `restart_hook`: ReaderRefresh=hook, the stand-in restarted
    by the stack itself (the sandbox); else the template's default, confirm, which the demo's
    operator answers."""
    aws = OfflineAWS(port=port).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bgzip-demo-") as tmp:
            db = BioindexDatabase(f"sqlite:///{tmp}/bioindex.sqlite")
            db.create_tables()
            refresh = "hook" if restart_hook else "confirm"
            with SampleStack(aws, db, STACK, BUCKET, backend="http", refresh=refresh) as demo:
                sample_index(demo, Path(tmp) / "index", INDEX, PREFIX, seed=7)
                sample_index(demo, Path(tmp) / "second", SECOND_INDEX, SECOND_PREFIX, seed=11)
                demo.start()
                yield demo
    finally:
        aws.stop()


def originals(demo: SampleStack, index: str) -> dict[str, bytes]:
    """What the index's X.json files held when the demo loaded them."""
    return {k: v for k, v in demo.indexes[index].items() if k.endswith(".json")}


def operators_day(aws: OfflineAWS, db: BioindexDatabase, content: dict, second: dict) -> int:
    """The README's commands, in the order an operator meets them; 0 if every one did its job."""
    s3, stack = aws.client("s3"), Stack(STACK, "us-east-1")
    show_objects(aws)
    steps = [
        ("plan", INDEX, PREFIX),
        ("start", INDEX, PREFIX, "--shards", "2", "--yes", "--wait", "--interval", "1"),
        ("status", INDEX, PREFIX),
    ]
    if any(bgz(*step) for step in steps):
        return 1
    print(f"  bioindex flag compressed={db.compressed(INDEX, PREFIX)}; objects now:")
    show_objects(aws)
    compressed = next(r for r in runs.recent(stack, INDEX, 1))["name"]
    if bgz("logs", compressed, "--state", "Verify"):
        return 1
    if bgz("rollback", INDEX, PREFIX, "--yes", "--wait", "--interval", "1"):
        return 1
    restored = all(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() == v for k, v in content.items())
    print(f"  bioindex flag compressed={db.compressed(INDEX, PREFIX)}; every original restored: {restored}")
    print("\n  A run started by mistake is stopped at once; it frees its prefix and says what it did:")
    if not restored or bgz("start", SECOND_INDEX, SECOND_PREFIX, "--yes"):
        return 1
    stopped = next(r for r in runs.recent(stack, SECOND_INDEX, 1))
    while (found := runs.find(stack, stopped["name"]))["status"] == "RUNNING" and snapshot(stack, found).state in (
        "starting",
        "Plan",
    ):
        time.sleep(0.2)  # stopped once it planned and holds its prefix
    if bgz("stop", stopped["name"], "--reason", "started by mistake") or bgz("locks"):
        return 1
    print("\n  Then both indexes in one bulk execution, one index run each, followed with bgz watch:")
    pairs = (INDEX, PREFIX, SECOND_INDEX, SECOND_PREFIX)
    if bgz("start", *pairs, "--yes"):
        return 1
    bulk = stack.client("stepfunctions").list_executions(stateMachineArn=stack.machine_arn("bulk"), maxResults=1)
    if bgz("watch", bulk["executions"][0]["name"], "--interval", "1") or bgz("list"):
        return 1
    flags = {name: db.compressed(name, prefix) for name, prefix in ((INDEX, PREFIX), (SECOND_INDEX, SECOND_PREFIX))}
    print(f"  bioindex flags: {flags}; objects of {SECOND_INDEX!r} now:")
    show_objects(aws, SECOND_PREFIX)
    return 0 if all(flags.values()) and second else 1


def have_bgzip() -> bool:
    """htslib's bgzip, which the stand-in reads through (as the bioindex does) and verify reads every
    .gz with. Installed from Debian's tabix when the demo runs as root where apt-get is; else one
    line says how, and nothing starts."""
    if shutil.which("bgzip"):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing htslib's bgzip: apt-get install tabix", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        update = ["apt-get", "update", "-qq"]
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "tabix"]
        for command in (update, install):
            if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
                break
        if shutil.which("bgzip"):
            return True
    print(f"make demo needs htslib's bgzip: {INSTALL}", file=sys.stderr)
    return False


def main() -> int:
    if not have_bgzip():
        return 2
    with demo_stack() as demo:
        print(f"bioindex stand-in: {demo.bioindex.workers} processes at {demo.bioindex.url}, tables in SQLite")
        print(f"offline AWS: moto on {demo.aws.endpoint}")
        print("\n$ bgz selftest   (once after a deploy: the roles, the image, the bioindex, the vCPU quota)")
        if not selftest(Stack(STACK, "us-east-1"), say=lambda text: print(f"  {text}"), poll_seconds=0.2):
            return 1
        done = threading.Event()
        threading.Thread(target=Operator(demo.aws, demo.bioindex).serve, args=(done,), daemon=True).start()
        try:
            return operators_day(demo.aws, demo.db, originals(demo, INDEX), originals(demo, SECOND_INDEX))
        finally:
            done.set()


if __name__ == "__main__":
    sys.exit(main())
