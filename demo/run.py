"""`make demo`: the whole workflow offline - the self test of a new deploy, a compress run, then its
rollback, on a sample index, then a bulk compress of two sample indexes in one execution.

The real state machines run in moto, their Batch jobs run the real bgzip-job, their Lambdas the real
handlers. The bioindex is the stand-in: three server processes over its tables in an SQLite file
(the tests use a real MariaDB), reading the data through bgzip. The demo uses FlagBackend=http, the
stand-in's copy of the historic set-compressed endpoint, so it needs no database server and no root.
No AWS account is used.

The stack keeps its default ReaderRefresh=confirm: after setting the flag each run waits until the
operator has restarted the bioindex and typed `bgz confirm`. The demo plays the operator: it prints
what the run asks, restarts the stand-in, and confirms with bgz's own code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from batch_job.htslib import INSTALL
from bgz import runs
from bgz.confirm import confirm, confirm_bulk, waiting
from bgz.selftest import selftest
from bgz.stack import Stack
from offline.aws import OfflineAWS
from offline.bioindex_db import BioindexDatabase
from offline.bioindex_standin import BioindexStandin
from offline.sample_index import make_sample_index, upload_tree

INDEX, PREFIX, BUCKET = "associations", "associations/", "bioindex-data"
SECOND_INDEX, SECOND_PREFIX = "genes", "genes/"
SCHEMA = "phenotype,chromosome"
STACK = "bgzip-workflow"


class Operator:
    """What an operator does when a run asks for a bioindex restart: restart it, then `bgz confirm`."""

    def __init__(self, aws: OfflineAWS, bioindex: BioindexStandin) -> None:
        self.aws, self.bioindex, self.stack = aws, bioindex, Stack(STACK, "us-east-1")

    def _waiting(self, name: str) -> dict | None:
        sfn = self.aws.client("stepfunctions")
        for machine in sfn.list_state_machines()["stateMachines"]:
            for e in sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")[
                "executions"
            ]:
                if e["name"] == name:
                    description = sfn.describe_execution(executionArn=e["executionArn"])
                    return description if waiting(self.stack, description) else None
        return None

    def answer(self, name: str, state: str) -> None:
        """Called as each state is entered: the confirmation state asks the operator."""
        if not state.endswith(" confirmation"):
            return
        description = None
        for _ in range(600):
            description = self._waiting(name)
            if description is not None:
                break
            time.sleep(0.1)
        refresh = waiting(self.stack, description)[0]
        print(f"     the run asks: {refresh.asked}")
        print("     $ <restart every bioindex process>   (the demo restarts the stand-in's processes)")
        self.bioindex.restart()
        print(f"     $ bgz confirm {name}")
        print(f"     {confirm(self.stack, description)}")

    def answer_bulk(self, bulk_name: str, done: threading.Event) -> None:
        """A bulk run's index runs wait one by one; one restart and `bgz confirm --bulk` serve those waiting."""
        while not done.wait(0.5):
            if not self._any_child_waiting(bulk_name):
                continue
            print("     $ <restart every bioindex process>   (the demo restarts the stand-in's processes)")
            restarted_at = datetime.now(UTC).replace(microsecond=0)
            self.bioindex.restart()
            print(f"     $ bgz confirm --bulk {bulk_name} --restarted-at {restarted_at:%Y-%m-%dT%H:%M:%SZ}")
            print("\n".join(f"     {line}" for line in confirm_bulk(self.stack, bulk_name, restarted_at)), flush=True)

    def _any_child_waiting(self, bulk_name: str) -> bool:
        return any(
            child["status"] == "RUNNING" and self._waiting(child["name"])
            for child in runs.children(self.stack, bulk_name)
        )


def show_objects(aws: OfflineAWS, prefix: str = PREFIX) -> None:
    for obj in aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        print(f"    {obj['Size']:>9}  s3://{BUCKET}/{obj['Key']}")


def load_index(aws: OfflineAWS, db: BioindexDatabase, root: Path, name: str, prefix: str, seed: int) -> dict:
    """A sample index's files in the data bucket, indexed in the bioindex's tables."""
    s3 = aws.client("s3")
    db.add_index(name, prefix, SCHEMA)
    make_sample_index(root, seed=seed, ascii_keys=True)
    content = upload_tree(s3, BUCKET, root, prefix)
    originals = sorted(k for k in content if k.endswith(".json"))
    rows = db.build(
        name, 2, [(k, s3.head_object(Bucket=BUCKET, Key=k)["ETag"].strip('"'), content[k]) for k in originals]
    )
    print(f"sample index {name!r} ({rows} index rows) at s3://{BUCKET}/{prefix}")
    return {k: content[k] for k in originals}


def bulk(aws: OfflineAWS, machine_arn: str, operator: Operator) -> bool:
    """Both sample indexes in one execution of the bulk machine, one child execution each."""
    started = time.monotonic()
    pairs = [(INDEX, PREFIX), (SECOND_INDEX, SECOND_PREFIX)]
    execution_input = {"mode": "compress", "indexes": [{"index": i, "prefix": p} for i, p in pairs]}
    print(f"\n$ start-execution bulk --name bulk-compress --input '{json.dumps(execution_input)}'")
    done = threading.Event()
    answering = threading.Thread(target=operator.answer_bulk, args=("bulk-compress", done), daemon=True)
    answering.start()
    try:
        result = aws.run(
            machine_arn, execution_input, "bulk-compress", on_state=lambda s: print(f"  -> {s}", flush=True)
        )
    finally:
        done.set()
        answering.join()
    print(f"  {result['status']} in {time.monotonic() - started:.1f} s")
    table = json.loads(result["output"])["table"] if result["status"] == "SUCCEEDED" else result.get("cause", "")
    print("\n".join(f"  {line}" for line in table.splitlines()))
    return result["status"] == "SUCCEEDED"


def run(aws: OfflineAWS, machine_arn: str, name: str, operator: Operator) -> bool:
    started = time.monotonic()
    execution_input = {"index": INDEX, "prefix": PREFIX, "shards": 2}
    print(f"\n$ start-execution {machine_arn.rsplit(':', 1)[-1]} --name {name} --input '{json.dumps(execution_input)}'")

    def on_state(state: str) -> None:
        print(f"  -> {state}", flush=True)
        operator.answer(name, state)

    result = aws.run(machine_arn, execution_input, name, on_state=on_state)
    print(f"  {result['status']} in {time.monotonic() - started:.1f} s")
    if result["status"] != "SUCCEEDED":
        print(f"  {result.get('error')}: {result.get('cause')}")
        return False
    print("  summary: " + json.dumps(json.loads(result["output"]), indent=None))
    return True


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
    aws = OfflineAWS().start()
    with tempfile.TemporaryDirectory(prefix="bgzip-demo-") as tmp:
        db = BioindexDatabase(f"sqlite:///{tmp}/bioindex.sqlite")
        db.create_tables()
        bioindex = BioindexStandin(db, BUCKET, set_endpoint=True, env=aws.env)
        try:
            parameters = {"FlagBackend": "http", "InsecureBioindexUrl": bioindex.url}
            stack = aws.deploy(STACK, BUCKET, parameters)
            operator = Operator(aws, bioindex)
            s3 = aws.client("s3")
            content = load_index(aws, db, Path(tmp) / "index", INDEX, PREFIX, seed=7)
            second = load_index(aws, db, Path(tmp) / "second", SECOND_INDEX, SECOND_PREFIX, seed=11)
            bioindex.start()
            print(f"bioindex stand-in: {bioindex.workers} processes at {bioindex.url}, tables in SQLite")
            print(f"offline AWS: moto on {aws.endpoint}")
            print("\n$ bgz selftest   (once after a deploy: the roles, the image, the bioindex, the vCPU quota)")
            if not selftest(Stack(STACK, "us-east-1"), say=lambda text: print(f"  {text}"), poll_seconds=0.2):
                return 1
            show_objects(aws)
            if not run(aws, stack.compress_arn, "associations-compress", operator):
                return 1
            print(f"  bioindex flag compressed={db.compressed(INDEX, PREFIX)}; objects now:")
            show_objects(aws)
            if not run(aws, stack.rollback_arn, "associations-rollback", operator):
                return 1
            print(f"  bioindex flag compressed={db.compressed(INDEX, PREFIX)}; objects now:")
            show_objects(aws)
            restored = all(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() == v for k, v in content.items())
            print(f"  every original restored byte for byte: {restored}")
            if not restored or not bulk(aws, stack.bulk_arn, operator):
                return 1
            flags = {
                name: db.compressed(name, prefix) for name, prefix in ((INDEX, PREFIX), (SECOND_INDEX, SECOND_PREFIX))
            }
            print(f"  bioindex flags: {flags}; objects of {SECOND_INDEX!r} now:")
            show_objects(aws, SECOND_PREFIX)
            return 0 if all(flags.values()) and second else 1
        finally:
            bioindex.close()
            aws.stop()


if __name__ == "__main__":
    sys.exit(main())
