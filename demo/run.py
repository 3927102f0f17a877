"""`make demo`: the whole workflow offline - a compress run, then its rollback - on a sample index.

The real state machines run in moto, their Batch jobs run the real bgzip-job, their Lambdas the real
handlers, and a bioindex stand-in answers on loopback. No AWS account is used.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from demo.bioindex_standin import BioindexStandin
from demo.offline_aws import OfflineAWS
from demo.sample_index import make_sample_index, upload_tree

INDEX, PREFIX, BUCKET = "associations", "associations/", "bioindex-data"


def show_objects(aws: OfflineAWS) -> None:
    for obj in aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", []):
        print(f"    {obj['Size']:>9}  s3://{BUCKET}/{obj['Key']}")


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
    bioindex = BioindexStandin().start()
    try:
        bioindex.add_index(INDEX, PREFIX)
        stack = aws.deploy("bgzip-workflow", BUCKET, {"BioindexUrl": bioindex.url, "AllowInsecureBioindex": "true"})
        with tempfile.TemporaryDirectory(prefix="bgzip-demo-") as tmp:
            make_sample_index(Path(tmp))
            upload_tree(aws.client("s3"), BUCKET, Path(tmp), PREFIX)
        print(f"sample index {INDEX!r} at s3://{BUCKET}/{PREFIX} (moto on {aws.endpoint}); bioindex at {bioindex.url}")
        show_objects(aws)
        if not run(aws, stack.compress_arn, "associations-compress"):
            return 1
        print(f"  bioindex flag compressed={bioindex.compressed(INDEX, PREFIX)}; objects now:")
        show_objects(aws)
        if not run(aws, stack.rollback_arn, "associations-rollback"):
            return 1
        print(f"  bioindex flag compressed={bioindex.compressed(INDEX, PREFIX)}; objects now:")
        show_objects(aws)
        return 0
    finally:
        bioindex.stop()
        aws.stop()


if __name__ == "__main__":
    sys.exit(main())
