"""Each Batch step's TimeoutSeconds, sized by Plan from the run's bytes (batch_job/rates.py)."""

from __future__ import annotations

from batch_job.rates import FLOOR_SECONDS, MB_PER_S, SAFETY, SECONDS_PER_FILE, JobLimits, step_timeouts
from batch_job.records import Mode, Plan, PlannedFile

GB = 10**9


def plan(mode: Mode, sizes: list[int], shards: int) -> Plan:
    files = [PlannedFile(f"p/f{i}.json", size, "e", i % shards) for i, size in enumerate(sizes)]
    return Plan(mode=mode, index="i", target="s3://b/p/", prefix="p/", shards=shards, files=files)


def test_a_small_run_gets_the_floor_per_attempt_plus_the_wait_to_start():
    limits = JobLimits()
    timeouts = step_timeouts(plan(Mode.COMPRESS, [1000] * 10, 1), limits)
    assert set(timeouts) == {"compress", "verify", "delete"}
    assert all(t == limits.runnable_seconds + limits.attempts * FLOOR_SECONDS for t in timeouts.values())


def test_the_bound_follows_the_largest_shard_the_job_size_and_the_waves():
    one_shard = plan(Mode.COMPRESS, [100 * GB], 1)
    compress = SAFETY * (100 * GB / 1e6 / MB_PER_S["compress"] + SECONDS_PER_FILE)  # at 2 vCPUs
    assert step_timeouts(one_shard, JobLimits())["compress"] == int(3600 + 3 * compress)
    at_4 = SAFETY * (100 * GB / 1e6 / MB_PER_S["compress"] / 2 + SECONDS_PER_FILE)
    assert step_timeouts(one_shard, JobLimits(job_vcpus=4))["compress"] == int(3600 + 3 * at_4)
    # 64 shards of 100 GB at MaxvCpus 16 and 2 vCPUs a job: 8 at once, 8 waves of the largest shard.
    many = plan(Mode.COMPRESS, [100 * GB] * 64, 64)
    per_shard = compress
    assert step_timeouts(many, JobLimits(max_vcpus=16))["compress"] == int(3600 + 8 * 3 * per_shard)
    assert step_timeouts(many, JobLimits(max_vcpus=128))["compress"] == int(3600 + 3 * per_shard)


def test_a_rollback_counts_the_restored_bytes_and_nothing_exceeds_what_batch_allows():
    timeouts = step_timeouts(plan(Mode.ROLLBACK, [100 * GB], 1), JobLimits())
    assert set(timeouts) == {"decompress", "verify", "remove_compressed"}
    assert timeouts["decompress"] > SAFETY * 100 * GB / 1e6 / MB_PER_S["decompress"]
    huge = step_timeouts(plan(Mode.COMPRESS, [100_000 * GB], 1), JobLimits())
    assert huge["compress"] == 3600 + 3 * 43200, "capped at the job definitions' attempt duration"


def test_each_step_is_bounded_by_its_own_slowest_shard_files_included():
    """Shards are balanced by bytes, not files: the delete step's bound follows the shard with the
    most files, the compress step's the one with the most work, whichever shard that is."""
    files = [PlannedFile("p/big.json", 50 * GB + 1, "e", 0)]
    files += [PlannedFile(f"p/s{i}.json", 250_000, "e", 1) for i in range(20_000)]
    timeouts = step_timeouts(Plan(Mode.COMPRESS, "i", "s3://b/p/", "p/", 2, files), JobLimits())
    assert timeouts["delete"] == int(3600 + 3 * SAFETY * 20_000 * SECONDS_PER_FILE)
    small_files = 20_000 * 250_000 / 1e6 / MB_PER_S["compress"] + 20_000 * SECONDS_PER_FILE
    assert timeouts["compress"] == int(3600 + 3 * SAFETY * small_files)
