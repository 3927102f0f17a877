"""`bgz plan`: a dry run. The Plan Lambda runs the pre-flight and lists the prefix without taking the
lock or writing anything; bgz then samples a few of the files on the spot and estimates the run."""

from __future__ import annotations

from dataclasses import dataclass

from batch_job import bgzf
from batch_job.sizes import human_bytes
from bgz.errors import OperatorError
from bgz.estimate import Sizing, estimate, sampled_ratio
from bgz.stack import Stack
from workflow.boundary import PlanPreview, RunInput

SAMPLE_BYTES = 4 << 20  # from the start of each sampled file


@dataclass
class Preview:
    index: str
    prefix: str
    lines: list[str]
    source_bytes: int = 0
    expected_bytes: int = 0
    cost: float = 0.0
    refused: str = ""
    locked: str = ""  # the lock a run would meet: "<target> is locked by <holder>", or ""
    files: int = 0
    target: str = ""
    shards: int = 0
    wall_seconds: float = 0.0
    monthly_saving: float = 0.0

    def record(self, mode: str) -> dict:
        """The preview for scripts (`bgz plan --json`)."""
        return {
            "mode": mode,
            "index": self.index,
            "prefix": self.prefix,
            "refused": self.refused or None,
            "target": self.target or None,
            "files": self.files,
            "bytes": self.source_bytes,
            "expectedBytes": self.expected_bytes,
            "shards": self.shards,
            "wallSeconds": round(self.wall_seconds),
            "cost": round(self.cost, 2),
            "monthlySaving": round(self.monthly_saving, 2),
            "locked": self.locked or None,
        }


def sizing(stack: Stack) -> Sizing:
    values = stack.parameters()
    defaults = Sizing()
    return Sizing(
        max_vcpus=int(values.get("MaxvCpus") or defaults.max_vcpus),
        job_vcpus=float(values.get("JobVcpus") or defaults.job_vcpus),
        job_memory_mib=int(values.get("JobMemoryMiB") or defaults.job_memory_mib),
        spot=(values.get("UseSpot") or "false").lower() == "true",
    )


def _ratio(stack: Stack, bucket: str, keys: list[str], rollback: bool) -> float:
    """Output size over input size, from the sampled files."""
    s3 = stack.client("s3")
    if not rollback:
        samples = [
            s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{SAMPLE_BYTES - 1}")["Body"].read() for key in keys
        ]
        return sampled_ratio(samples)
    compressed = restored = 0
    for key in keys:  # a .gzi gives the uncompressed size to within one block
        entries = bgzf.parse_gzi(s3.get_object(Bucket=bucket, Key=key + ".gzi")["Body"].read())
        compressed += s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        restored += (entries[-1][1] if entries else 0) + bgzf.BLOCK_DATA_SIZE // 2
    return restored / compressed if compressed else 1.0


def preview(stack: Stack, mode: str, index: str, prefix: str, shards: int | None, size: Sizing) -> Preview:
    payload = {
        "mode": mode,
        "execution": "dry-run",
        "executionArn": "",
        "dryRun": True,
        "input": RunInput(index=index, prefix=prefix, shards=shards or None).to_json(),
    }
    try:
        answer = stack.invoke("PlanFunctionName", payload)
    except OperatorError as exc:
        return Preview(index, prefix, [f"{index} {prefix}: refused by the pre-flight: {exc}"], refused=str(exc))
    found = PlanPreview.parse(answer)
    if found is None:
        raise OperatorError(
            f"the stack's Plan answered a dry run with {sorted(answer)}, not a preview",
            "deploy this version of the stack, or use the bgz that came with the deployed one",
        )
    bucket = found.target[len("s3://") :].split("/", 1)[0]
    ratio = _ratio(stack, bucket, found.sampled_keys, mode == "rollback")
    source, expected = found.bytes, int(found.bytes * ratio)
    guess = estimate(mode, source, expected, found.shards, size)
    after = "compressed" if mode == "compress" else "restored"
    row = found.row.get("id")
    lines = [
        f"{mode} of index {index} prefix {prefix} at {found.target}",
        "  pre-flight: passed" + (f" (__Indexes row {row})" if row else ""),
        f"  files: {found.files}, {human_bytes(source)}; shards: {found.shards}",
        f"  expected {after} size: {human_bytes(expected)} ({ratio:.1%}, "
        f"from {len(found.sampled_keys)} files sampled now)",
        f"  estimated wall time: {guess.wall_seconds / 60:.0f} min with {guess.parallel_jobs} jobs of "
        f"{size.job_vcpus:g} vCPU at once (MaxvCpus {size.max_vcpus})",
        f"  estimated cost: ${guess.cost:.2f} of Fargate{' Spot' if size.spot else ''}; S3 storage "
        + (
            f"saved: ${guess.monthly_saving:.2f} a month"
            if guess.monthly_saving >= 0
            else f"added: ${-guess.monthly_saving:.2f} a month"
        ),
        f"  lock: {found.locked or 'free'}" + (f" ({found.stale_lock})" if found.stale_lock else ""),
    ]
    return Preview(
        index,
        prefix,
        lines,
        source,
        expected,
        guess.cost,
        locked=found.locked,
        files=found.files,
        target=found.target,
        shards=found.shards,
        wall_seconds=guess.wall_seconds,
        monthly_saving=guess.monthly_saving,
    )


def select(stack: Stack, mode: str, selection: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """A bulk run's indexes as SelectIndexes chooses them (unknown names refused), and the lines
    saying which it skips and why."""
    machines = {"compress": "", "rollback": ""}
    payload = {"execution": "dry-run", "input": {"mode": mode, **selection}, "machines": machines}
    chosen = stack.invoke("SelectIndexesFunctionName", payload)
    pairs = [(item["index"], item["prefix"]) for item in chosen["items"]]
    bulk = chosen["bulk"] if "bulk" in chosen else chosen["run"]  # "run": a stack of the release before
    skipped = [f"{s['index']} {s['prefix']}: skipped ({s['reason']})" for s in bulk["skipped"]]
    return pairs, skipped
