"""What a run will take and save, before it starts: the cost model of docs/benchmark.md, in code.

Rates are the benchmark's (batch_job/rates.py, which also sizes each step's timeout), per 2-vCPU
job, scaled linearly with a job's vCPUs; prices are Fargate's and S3 Standard's in us-east-1 (2026).
An estimate, said as one: S3 throughput, Fargate start-up and Spot interruptions move it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from batch_job import bgzf
from batch_job.rates import rate_seconds

STARTUP_S_PER_STEP = 90  # a Fargate task takes about a minute to start; three steps per run
VCPU_HOUR = 0.04048  # Fargate on-demand, us-east-1
GB_HOUR = 0.004445
SPOT_FACTOR = 0.3  # Fargate Spot costs about 70 % less
S3_GB_MONTH = 0.023  # S3 Standard, first 50 TB


@dataclass(frozen=True)
class Sizing:
    """The stack's job size and ceiling (its parameters)."""

    max_vcpus: int = 64
    job_vcpus: float = 2
    job_memory_mib: int = 4096
    spot: bool = False


@dataclass(frozen=True)
class Estimate:
    wall_seconds: float
    parallel_jobs: int
    cost: float
    monthly_saving: float


def sampled_ratio(samples: list[bytes]) -> float:
    """Compressed size over raw size of the samples, compressed on the spot as BGZF blocks (zlib
    level 6 stands in for libdeflate level 7; they differ by a few percent)."""
    raw = sum(len(s) for s in samples)
    if not raw:
        return 1.0
    out = 0
    for data in samples:
        for start in range(0, len(data), bgzf.BLOCK_DATA_SIZE):
            block = data[start : start + bgzf.BLOCK_DATA_SIZE]
            out += len(zlib.compress(block, 6)) - 6 + bgzf.HEADER_SIZE + bgzf.FOOTER_SIZE  # raw deflate + BGZF frame
    return out / raw


def estimate(mode: str, source_bytes: int, expected_bytes: int, shards: int, sizing: Sizing) -> Estimate:
    """Wall time and cost of a run at the stack's MaxvCpus, and the S3 storage it saves each month."""
    steps = ["compress", "verify"] if mode == "compress" else ["decompress", "verify"]
    uncompressed = source_bytes if mode == "compress" else expected_bytes
    parallel = max(1, min(shards, int(sizing.max_vcpus // sizing.job_vcpus)))
    job_seconds = sum(rate_seconds(s, uncompressed, sizing.job_vcpus) for s in steps)
    wall = job_seconds / parallel + STARTUP_S_PER_STEP * (len(steps) + 1)
    hours = job_seconds / 3600
    cost = hours * (sizing.job_vcpus * VCPU_HOUR + sizing.job_memory_mib / 1024 * GB_HOUR)
    if sizing.spot:
        cost *= SPOT_FACTOR
    saving = (source_bytes - expected_bytes) / 1e9 * S3_GB_MONTH
    return Estimate(wall, parallel, cost, saving)
