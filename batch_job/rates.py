"""How fast the engine's steps run, and so how long each Batch step of a run may take.

The rates are the benchmark's (bench/run.py, docs/benchmark.md), per 2-vCPU job, scaling with a
job's vCPUs. `bgz plan` estimates with them; the Plan Lambda turns them into each `.sync` task's
TimeoutSeconds, so a job that hangs (or never starts) fails its run in hours, not in a year.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from batch_job.records import Mode, Plan, Step

# MB/s of one 2-vCPU job: compress and verify of uncompressed bytes, decompress of restored bytes.
MB_PER_S = {"compress": 136.0, "verify": 445.0, "decompress": 837.0}
BENCH_VCPUS = 2
# A rollback's plan counts compressed bytes; JSON lines rarely compress more than 10 to 1.
MOST_EXPANSION = 10
# Every step's requests per file (HEADs, the run folder, the .gzi; about 70 a file in a compress run):
# a generous time per file, on top of the bytes. The delete steps have nothing else.
SECONDS_PER_FILE = 0.5
SAFETY = 4  # S3 slower than the benchmark, Spot interruptions: the bound is far above the estimate
FLOOR_SECONDS = 900  # start-up, listing, run-folder I/O: no step is bounded tighter than this


def rate_seconds(rate: str, uncompressed_bytes: float, vcpus: float) -> float:
    """Seconds one job of `vcpus` takes for `uncompressed_bytes` at the benchmark's `rate`."""
    return uncompressed_bytes / 1e6 / (MB_PER_S[rate] * vcpus / BENCH_VCPUS)


@dataclass(frozen=True)
class JobLimits:
    """What the stack gives the jobs (its parameters): the bound of a step covers them all."""

    job_vcpus: float = 2
    max_vcpus: int = 64
    attempts: int = 3  # the job definitions' RetryStrategy
    attempt_seconds: int = 43200  # their Timeout.AttemptDurationSeconds
    runnable_seconds: int = 3600  # the queue cancels a job waiting to start longer (RunnableTimeoutSeconds)
    floor_seconds: int = FLOOR_SECONDS

    def shared_by(self, runs: int) -> JobLimits:
        """What each of `runs` runs at once gets (a bulk run's index runs share one job queue): its
        steps are timed as if it had MaxvCpus / runs, at least one job's vCPUs."""
        return dataclasses.replace(self, max_vcpus=max(math.ceil(self.job_vcpus), self.max_vcpus // max(runs, 1)))


def _work_seconds(step: Step, plan: Plan, shard_bytes: int, shard_files: int, vcpus: float) -> float:
    """One shard's expected time for `step` at the benchmark's rate."""
    requests = shard_files * SECONDS_PER_FILE
    if step in (Step.DELETE, Step.REMOVE_COMPRESSED):
        return requests
    uncompressed = shard_bytes * (MOST_EXPANSION if plan.mode == Mode.ROLLBACK else 1)
    if step == Step.VERIFY:
        uncompressed *= 2  # it reads both sides
    return rate_seconds("verify" if step == Step.VERIFY else step.value, uncompressed, vcpus) + requests


def timeout_key(step: Step) -> str:
    """The step's key in Plan's `timeouts` (a JSONPath name: no hyphen)."""
    return step.value.replace("-", "_")


def step_timeouts(plan: Plan, limits: JobLimits) -> dict[str, int]:
    """Seconds each Batch step of this run may take, waiting and retries included: the slowest
    shard's time at the benchmark's rate (its bytes and its files), SAFETY times over, for every
    wave of shards the stack's MaxvCpus runs one after another, and every attempt; never less than
    the floor per attempt, never more than Batch would allow anyway."""
    by_shard: dict[int, tuple[int, int]] = {}
    for f in plan.files:
        size, count = by_shard.get(f.shard, (0, 0))
        by_shard[f.shard] = (size + f.size, count + 1)
    parallel = max(1, int(limits.max_vcpus // limits.job_vcpus))
    waves = math.ceil(max(plan.shards, 1) / parallel)
    steps = (
        (Step.COMPRESS, Step.VERIFY, Step.DELETE)
        if plan.mode == Mode.COMPRESS
        else (Step.DECOMPRESS, Step.VERIFY, Step.REMOVE_COMPRESSED)
    )
    timeouts = {}
    for step in steps:
        slowest = max((_work_seconds(step, plan, *shard, limits.job_vcpus) for shard in by_shard.values()), default=0)
        per_attempt = max(limits.floor_seconds, SAFETY * slowest)
        per_attempt = min(per_attempt, limits.attempt_seconds)
        timeouts[timeout_key(step)] = int(limits.runnable_seconds + waves * limits.attempts * per_attempt)
    return timeouts
