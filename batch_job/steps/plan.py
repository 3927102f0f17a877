"""List the target once and write plan.json: the files to convert, their ETags, and shards balanced
by bytes. Every later step works from this plan and re-checks each file against it.
"""

from __future__ import annotations

import heapq
import logging

from batch_job.errors import BadInput
from batch_job.keys import COMPRESSED_SUFFIX, ORIGINAL_SUFFIX
from batch_job.locations import Location, parse_location
from batch_job.locks import Lock, Locks
from batch_job.records import Mode, Plan, PlannedFile
from batch_job.runfolder import RunFolder
from batch_job.stores import LocalStore, ObjectInfo, S3Store

log = logging.getLogger("bgzip-job")

GiB = 1024**3
DEFAULT_SHARD_BYTES = 20 * GiB
MAX_SHARDS = 10_000  # the largest Batch array


def assign_shards(objects: list[ObjectInfo], shards: int) -> list[PlannedFile]:
    """Largest file first onto the shard with the fewest bytes so far (balanced, deterministic)."""
    heap = [(0, k) for k in range(shards)]
    planned = []
    for obj in sorted(objects, key=lambda o: (-o.size, o.key)):
        load, k = heapq.heappop(heap)
        planned.append(PlannedFile(obj.key, obj.size, obj.etag, k))
        heapq.heappush(heap, (load + obj.size, k))
    return sorted(planned, key=lambda f: f.key)


def shard_count(objects: list[ObjectInfo], shards: int | None, shard_bytes: int | None) -> int:
    if shards is not None and shard_bytes is not None:
        raise BadInput("give --shards or --shard-bytes, not both")
    if shards is not None and shards < 1:
        raise BadInput(f"--shards must be at least 1, got {shards}")
    if shard_bytes is not None and shard_bytes < 1:
        raise BadInput(f"--shard-bytes must be at least 1, got {shard_bytes}")
    if shards is None:
        total = sum(o.size for o in objects)
        shards = max(1, -(-total // (shard_bytes or DEFAULT_SHARD_BYTES)))
    return max(1, min(shards, len(objects), MAX_SHARDS))


def _bioindex_prefix(target: Location) -> str:
    """The prefix the bioindex knows the index by: the S3 key prefix (a local folder: its name)."""
    if isinstance(target.store, LocalStore):
        return target.store.root.name + "/"
    return target.prefix


def _select(objects: list[ObjectInfo], mode: Mode) -> list[ObjectInfo]:
    if mode == Mode.COMPRESS:
        return [o for o in objects if o.key.endswith(ORIGINAL_SUFFIX)]
    keys = {o.key for o in objects}
    compressed = [o for o in objects if o.key.endswith(COMPRESSED_SUFFIX)]
    missing = [o.key for o in compressed if o.key + ".gzi" not in keys]
    if missing:
        raise BadInput(
            f"{len(missing)} .json.gz files have no .gzi beside them (e.g. {missing[0]}): a compress run "
            "stopped before finishing them, or they are not this workflow's output. Re-run the compress run "
            "to finish them, or remove them, before rolling back"
        )
    return compressed


def _check_run_outside_target(run: RunFolder, target: Location) -> None:
    """The run folder's manifests are .json files: inside the target they would be planned too."""
    a, b = run.location, target
    if isinstance(a.store, LocalStore) and isinstance(b.store, LocalStore):
        inside = a.store.root.is_relative_to(b.store.root)
    elif isinstance(a.store, S3Store) and isinstance(b.store, S3Store):
        inside = a.store.bucket == b.store.bucket and a.prefix.startswith(b.prefix)
    else:
        inside = False
    if inside:
        raise BadInput(f"the run folder {run.uri} is inside the target {target.uri}; put it elsewhere")


def sources_and_shards(target: Location, rollback: bool, shards: int | None = None) -> tuple[list[ObjectInfo], int]:
    """What a plan of the target would hold - its sources and shard count - without the lock or a run
    folder: the dry run."""
    mode = Mode.ROLLBACK if rollback else Mode.COMPRESS
    listed = list(target.store.list_objects(target.prefix))
    objects = _select(listed, mode)
    if not objects:
        what = "*.json" if mode == Mode.COMPRESS else "*.json.gz with a .gzi"
        other = Mode.COMPRESS if rollback else Mode.ROLLBACK
        if _select(listed, other):  # the other side is there: say which way it converts
            hint = (
                "it is compressed already (its .json.gz and .gzi are there); a rollback converts it back"
                if mode == Mode.COMPRESS
                else "it is not compressed (its *.json are there); a compress run converts it"
            )
            raise BadInput(f"nothing to do: no {what} under {target.uri}: {hint}")
        raise BadInput(f"nothing to do: no {what} under {target.uri}")
    return objects, shard_count(objects, shards, None)


def make_plan(
    target_uri: str,
    index: str,
    run: RunFolder,
    *,
    rollback: bool = False,
    shards: int | None = None,
    shard_bytes: int | None = None,
    bioindex_prefix: str | None = None,
    execution_arn: str = "",
) -> Plan:
    """Take the target's lock for this run, then write the run's plan, or return the plan already
    there if it is for the same work.

    `bioindex_prefix` is the bioindex's name for the target (its `__Indexes.prefix`), which differs
    from the S3 key prefix when the bioindex keeps its data under a subdir; by default it is the key
    prefix. `execution_arn` is the Step Functions execution that owns the run, so that its lock can be found
    stale once it ends. An existing plan is kept (not re-listed) so that re-running the Plan step
    after a failure continues the same run instead of silently changing what it covers.
    """
    if not index or "/" in index:
        raise BadInput(f"index name {index!r} must be non-empty and contain no '/'")
    target = parse_location(target_uri)
    _check_run_outside_target(run, target)
    mode = Mode.ROLLBACK if rollback else Mode.COMPRESS
    bioindex_prefix = bioindex_prefix or _bioindex_prefix(target)
    existing = run.read_plan() if run.has_plan() else None
    if existing is not None and (existing.mode, existing.index, existing.target) != (mode, index, target.uri):
        raise BadInput(
            f"run folder {run.uri} already holds a {existing.mode} plan for index {existing.index!r} at "
            f"{existing.target}; use a new run folder"
        )
    if existing is not None and run.finished(existing):  # its lock is released: never take it again
        log.info("plan: the run in %s is finished; its plan is kept and no lock is taken", run.uri)
        return existing
    locks = Locks(target)
    locks.acquire(Lock(locks.key_prefix, target.uri, run.uri, execution_arn, mode, index, bioindex_prefix))
    if existing is not None:
        log.info("plan: keeping the existing plan in %s (%d files)", run.uri, len(existing.files))
        return existing
    try:
        objects, _ = sources_and_shards(target, rollback)
        count = shard_count(objects, shards, shard_bytes)
        plan = Plan(mode, index, target.uri, bioindex_prefix, count, assign_shards(objects, count))
        run.write_plan(plan)
    except BaseException:
        locks.release(run.uri)
        raise
    log.info("plan: %s holds %s", run.uri, locks.uri)
    return plan
