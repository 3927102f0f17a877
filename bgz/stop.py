"""`bgz stop`: stop an execution and its Batch jobs, free its prefix, and say what state it left.

Stopping is safe at any moment: every step is idempotent and the delete steps re-check everything,
so a new run finishes the work, or a rollback undoes it. What it cannot do is make the prefix whole
by itself: the report says what is where, and which run finishes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batch_job.errors import StoreError
from batch_job.locks import Locks
from batch_job.records import CanaryStatus, Mode, Plan, Status, Step
from batch_job.runfolder import RunFolder
from bgz import runs
from bgz.stack import Stack
from bgz.watch import is_bulk

FINISHED_JOBS = ("SUCCEEDED", "FAILED")
DELETED = (Status.DELETED, Status.ALREADY_DELETED)


def _count(run: RunFolder, step: Step, plan: Plan, statuses: tuple[Status, ...] = ()) -> int:
    manifests = run.read_manifests(step, plan.shards).values()
    return sum(1 for m in manifests for r in m.files if r.ok and (not statuses or r.status in statuses))


def left_in(run: RunFolder) -> str:
    """Where the run left its prefix, from its run folder, and what finishes it."""
    if not run.has_plan():
        return "The run had not planned: nothing under the prefix was changed."
    plan = run.read_plan()
    total, flag, check = len(plan.files), run.read_flag(), run.read_readers_check()
    compress = plan.mode == Mode.COMPRESS
    new, old = (".gz/.gzi", "originals") if compress else ("restored .json", ".gz/.gzi")
    if run.finished(plan):  # from the manifests' heads, before counting their records
        return (
            f"{plan.index} {plan.prefix} at {plan.target}: the run had finished: all {total} files have their {new}, "
            f"the {old} are deleted, and the bioindex reads the {new} files. Nothing is left to do."
        )
    made = _count(run, Step.COMPRESS if compress else Step.DECOMPRESS, plan)
    gone = _count(run, plan.destructive_step, plan, DELETED)
    rerun = f"a new {plan.mode} run"
    if check is not None and check.canary_status == CanaryStatus.RELEASED:  # the proof's canary stays deleted
        gone += 1
    said = [f"{plan.index} {plan.prefix} at {plan.target}: {made} of {total} files have their {new} written."]
    if check is not None and check.canary_status in (CanaryStatus.SET_ASIDE, CanaryStatus.DELETED):
        keys = ", ".join(o.key for o in check.canary.objects)
        said.append(f"The canary {keys} is deleted; its copy is in {run.uri}canary/.")
    if flag is None:
        said.append(f"The bioindex flag was not changed by this run and no {old} were deleted.")
    else:
        said.append(f"The bioindex flag is compressed={str(flag.compressed).lower()} (it reads the {new} files).")
        said.append(f"{gone} of {total} {old} deleted.")
    said.append(f"Start {rerun} with the same index and prefix to finish (it skips what is done).")
    return " ".join(said)


@dataclass
class Stopped:
    """What `bgz stop` did to one execution and where it left the prefix (a bulk run: its index runs)."""

    name: str
    status: str  # the execution's status when bgz stop found it
    stopped: bool = False
    terminated_jobs: int = 0
    released_lock: str | None = None  # the target whose lock it released
    lock_error: str | None = None  # why the lock could not be released (the next Plan clears it once stale)
    left: str = ""  # left_in(): where the prefix is and what finishes it
    index_runs: list[Stopped] = field(default_factory=list)

    def lines(self) -> list[str]:
        said = [f"stopped {self.name}" if self.stopped else f"{self.name} had already ended ({self.status})"]
        for child in self.index_runs:
            said += child.lines()
        if self.terminated_jobs:
            said.append(f"terminated {self.terminated_jobs} Batch jobs of {self.name}")
        if self.released_lock:
            said.append(f"released the lock of {self.released_lock}")
        if self.lock_error:
            said.append(f"{self.lock_error}; run bgz stop {self.name} again, or see bgz locks")
        return said + ([self.left] if self.left else [])

    def record(self) -> dict:
        """For scripts (`bgz stop --json`)."""
        return {
            "name": self.name,
            "statusBefore": self.status,
            "stopped": self.stopped,
            "terminatedJobs": self.terminated_jobs,
            "releasedLock": self.released_lock,
            "lockError": self.lock_error,
            "left": self.left or None,
            "indexRuns": [child.record() for child in self.index_runs],
        }


def stop(stack: Stack, description: dict, reason: str) -> Stopped:
    """Stop one execution - first the execution, so that no further state or index run starts, then
    its jobs (a bulk run: its index runs) - free its prefix, and say where it left it. Run again on a
    stopped execution it finishes what is left: unfinished jobs, a held lock."""
    sfn, batch = stack.client("stepfunctions"), stack.client("batch")
    done = Stopped(description["name"], description["status"])
    if description["status"] == "RUNNING":
        sfn.stop_execution(executionArn=description["executionArn"], error="StoppedByOperator", cause=reason)
        done.stopped = True
    if is_bulk(description):
        for child in runs.children(stack, done.name):
            if child["status"] in ("RUNNING", "ABORTED"):
                done.index_runs.append(stop(stack, sfn.describe_execution(executionArn=child["executionArn"]), reason))
        return done
    for job_id in runs.batch_job_ids(stack, description["executionArn"]):
        jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
        if jobs and jobs[0]["status"] not in FINISHED_JOBS:
            batch.terminate_job(jobId=job_id, reason=reason)  # SIGTERM: each worker stops at its next chunk
            done.terminated_jobs += 1
    run = stack.run_folder(done.name)
    if run.has_plan():
        plan = run.read_plan()
        try:
            if Locks(stack.location(plan.target)).release(run.uri):
                done.released_lock = plan.target
        except StoreError as exc:  # the run is stopped all the same: say so, and what is left
            done.lock_error = f"could not release the lock of {plan.target}: {exc}"
    done.left = left_in(run)
    return done
