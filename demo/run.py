"""`make demo`: the whole workflow offline - a compress run, then its rollback - on a sample index, then
a bulk compress of two sample indexes in one execution.

The real state machines run in moto, their Batch jobs run the real bgzip-job, their Lambdas the real
handlers. The bioindex is the stand-in: three server processes over its tables in an SQLite file
(the tests use a real MariaDB), reading the data through bgzip. The demo uses FlagBackend=http, the
stand-in's copy of the historic set-compressed endpoint, so it needs no database server and no root.
No AWS account is used.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from offline.aws import OfflineAWS
from offline.bioindex_db import BioindexDatabase
from offline.bioindex_standin import BioindexStandin
from offline.sample_index import make_sample_index, upload_tree

INDEX, PREFIX, BUCKET = "associations", "associations/", "bioindex-data"
SECOND_INDEX, SECOND_PREFIX = "genes", "genes/"
SCHEMA = "phenotype,chromosome"


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


def bulk(aws: OfflineAWS, machine_arn: str) -> bool:
    """Both sample indexes in one execution of the bulk machine, one child execution each."""
    started = time.monotonic()
    pairs = [(INDEX, PREFIX), (SECOND_INDEX, SECOND_PREFIX)]
    execution_input = {"mode": "compress", "indexes": [{"index": i, "prefix": p} for i, p in pairs]}
    print(f"\n$ start-execution bulk --name bulk-compress --input '{json.dumps(execution_input)}'")
    result = aws.run(machine_arn, execution_input, "bulk-compress", on_state=lambda s: print(f"  -> {s}", flush=True))
    print(f"  {result['status']} in {time.monotonic() - started:.1f} s")
    table = json.loads(result["output"])["table"] if result["status"] == "SUCCEEDED" else result.get("cause", "")
    print("\n".join(f"  {line}" for line in table.splitlines()))
    return result["status"] == "SUCCEEDED"


def run(aws: OfflineAWS, machine_arn: str, name: str) -> bool:
    started = time.monotonic()
    execution_input = {"index": INDEX, "prefix": PREFIX, "shards": 2}
    print(f"\n$ start-execution {machine_arn.rsplit(':', 1)[-1]} --name {name} --input '{json.dumps(execution_input)}'")
    result = aws.run(machine_arn, execution_input, name, on_state=lambda state: print(f"  -> {state}", flush=True))
    print(f"  {result['status']} in {time.monotonic() - started:.1f} s")
    if result["status"] != "SUCCEEDED":
        print(f"  {result.get('error')}: {result.get('cause')}")
        return False
    print("  summary: " + json.dumps(json.loads(result["output"]), indent=None))
    return True


def main() -> int:
    aws = OfflineAWS().start()
    with tempfile.TemporaryDirectory(prefix="bgzip-demo-") as tmp:
        db = BioindexDatabase(f"sqlite:///{tmp}/bioindex.sqlite")
        db.create_tables()
        bioindex = BioindexStandin(db, BUCKET, set_endpoint=True, env=aws.env)
        try:
            parameters = {"FlagBackend": "http", "InsecureBioindexUrl": bioindex.url}
            stack = aws.deploy("bgzip-workflow", BUCKET, parameters)
            s3 = aws.client("s3")
            content = load_index(aws, db, Path(tmp) / "index", INDEX, PREFIX, seed=7)
            second = load_index(aws, db, Path(tmp) / "second", SECOND_INDEX, SECOND_PREFIX, seed=11)
            bioindex.start()
            print(f"bioindex stand-in: {bioindex.workers} processes at {bioindex.url}, tables in SQLite")
            print(f"offline AWS: moto on {aws.endpoint}")
            show_objects(aws)
            if not run(aws, stack.compress_arn, "associations-compress"):
                return 1
            print(f"  bioindex flag compressed={db.compressed(INDEX, PREFIX)}; objects now:")
            show_objects(aws)
            if not run(aws, stack.rollback_arn, "associations-rollback"):
                return 1
            print(f"  bioindex flag compressed={db.compressed(INDEX, PREFIX)}; objects now:")
            show_objects(aws)
            restored = all(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() == v for k, v in content.items())
            print(f"  every original restored byte for byte: {restored}")
            if not restored or not bulk(aws, stack.bulk_arn):
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
