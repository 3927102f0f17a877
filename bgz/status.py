"""`bgz status`: what state one index's prefix is in - its files, the flag as the last run of this
stack set it, the last run, the lock - read from S3 and Step Functions; nothing is changed."""

from __future__ import annotations

from batch_job.keys import COMPRESSED_SUFFIX, GZI_SUFFIX, ORIGINAL_SUFFIX, s3_prefix
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


def status(stack: Stack, index: str, prefix: str) -> list[str]:
    outputs = stack.outputs()
    key_prefix = s3_prefix(stack.parameters().get("BioindexS3Subdir", ""), prefix)
    uri = f"s3://{outputs['DataBucketName']}/{key_prefix}"
    files, state = _files(stack, uri)
    counted = ", ".join(f"{count} {suffix} ({human_bytes(size)})" for suffix, (count, size) in files.items())
    lines = [f"{index} {prefix} at {uri}", f"  files: {counted}: {state}"]

    flag = Receipts(stack.location(receipts_uri(outputs["RunBucketName"]))).read(index, prefix)
    if flag is None:
        lines.append("  flag: never set by a run of this stack")
    else:
        by = f"execution {flag.execution.rsplit(':', 1)[-1]}" if flag.execution else "a run"
        lines.append(
            f"  flag: compressed={str(flag.compressed).lower()}, set by {by} at {flag.confirmed_at} ({flag.backend})"
        )

    last = [row for row in runs.recent(stack, index, 20) if row["prefix"] == prefix]
    if last:
        row = last[0]
        lines.append(
            f"  last run: {row['name']} ({row['mode']}) {row['status']}, started {row['startDate']:%Y-%m-%d %H:%M} "
            f"UTC, {runs.duration(row)}"
        )
    else:
        lines.append("  last run: none of the 20 latest runs of each machine")

    blocking = Locks(stack.location(uri)).blocking()
    lines.append(f"  lock: {blocking.target} is locked by {blocking.holder()}" if blocking else "  lock: free")
    return lines
