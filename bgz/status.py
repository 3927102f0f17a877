"""`bgz status`: what state one index's prefix is in - its files, the flag as the last run of this
stack set it, the last run, the lock - read from S3 and Step Functions; nothing is changed."""

from __future__ import annotations

from dataclasses import asdict

from batch_job.keys import COMPRESSED_SUFFIX, GZI_SUFFIX, ORIGINAL_SUFFIX, key_prefix_of
from batch_job.locks import Locks
from batch_job.runfolder import Receipts, receipts_uri
from batch_job.sizes import human_bytes
from bgz import runs
from bgz.stack import Stack


def _files(stack: Stack, uri: str) -> tuple[dict[str, tuple[int, int]], str]:
    """(count, bytes) of each kind of file under the prefix, and what they say of its state."""
    location = stack.location(uri)
    found = {suffix: [0, 0] for suffix in (ORIGINAL_SUFFIX, COMPRESSED_SUFFIX, GZI_SUFFIX)}
    for info in location.store.list_objects(location.prefix):
        for suffix in (GZI_SUFFIX, COMPRESSED_SUFFIX, ORIGINAL_SUFFIX):  # the longest suffix first
            if info.key.endswith(suffix):
                found[suffix][0] += 1
                found[suffix][1] += info.size
                break
    originals, compressed, gzis = (found[s][0] for s in (ORIGINAL_SUFFIX, COMPRESSED_SUFFIX, GZI_SUFFIX))
    if not (originals or compressed):
        state = "no .json or .json.gz here"
    elif compressed == gzis and not originals:
        state = "compressed"
    elif originals and not (compressed or gzis):
        state = "not compressed"
    else:
        state = "both sides present: a run is going on, or ended before deleting (see the last run)"
    return {suffix: (count, size) for suffix, (count, size) in found.items()}, state


RUN_FIELDS = ("name", "mode", "status", "startDate", "stopDate", "executionArn")


def found(stack: Stack, index: str, prefix: str) -> dict:
    """The prefix's state as a record (what `--json` prints; `lines` says it in words)."""
    outputs = stack.outputs()
    key_prefix = key_prefix_of(stack.parameters().get("BioindexS3Subdir", ""), prefix)
    uri = f"s3://{outputs['DataBucketName']}/{key_prefix}"
    files, state = _files(stack, uri)
    flag = Receipts(stack.location(receipts_uri(outputs["RunBucketName"]))).read(index, prefix)
    last = [row for row in runs.recent(stack, index, 20) if row["prefix"] == prefix]
    blocking = Locks(stack.location(uri)).blocking()
    return {
        "index": index,
        "prefix": prefix,
        "target": uri,
        "files": {suffix: {"count": count, "bytes": size} for suffix, (count, size) in files.items()},
        "state": state,
        "flag": asdict(flag) if flag else None,
        "lastRun": {k: last[0].get(k) for k in RUN_FIELDS} if last else None,
        "lock": {"target": blocking.target, "holder": blocking.holder()} if blocking else None,
    }


def lines(record: dict) -> list[str]:
    files = record["files"]
    counted = ", ".join(f"{f['count']} {suffix} ({human_bytes(f['bytes'])})" for suffix, f in files.items())
    out = [f"{record['index']} {record['prefix']} at {record['target']}", f"  files: {counted}: {record['state']}"]
    flag = record["flag"]
    if flag is None:
        out.append("  flag: never set by a run of this stack")
    else:
        by = f"execution {flag['execution'].rsplit(':', 1)[-1]}" if flag["execution"] else "a run"
        out.append(
            f"  flag: compressed={str(flag['compressed']).lower()}, set by {by} at {flag['read_back_at']} "
            f"({flag['backend']})"
        )
    run = record["lastRun"]
    if run is None:
        out.append("  last run: none of the 20 latest runs of each machine")
    else:
        out.append(
            f"  last run: {run['name']} ({run['mode']}) {run['status']}, started {run['startDate']:%Y-%m-%d %H:%M} UTC"
        )
    lock = record["lock"]
    out.append(f"  lock: {lock['target']} is locked by {lock['holder']}" if lock else "  lock: free")
    return out
