"""`bgz stop`: stop an execution and its Batch jobs, free its prefix, and say what state it left.

Stopping is safe at any moment: every step is idempotent and the delete steps re-check everything,
so a new run finishes the work, or a rollback undoes it. What it cannot do is make the prefix whole
by itself: the report says what is where, and which run finishes it.
"""

from __future__ import annotations

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


def stop(stack: Stack, description: dict, reason: str) -> list[str]:
    """Stop one execution - first the execution, so that no further state or index run starts, then
    its jobs (a bulk run: its index runs) - free its prefix, and say where it left it. Run again on a
    stopped execution it finishes what is left: unfinished jobs, a held lock."""
    sfn, batch = stack.client("stepfunctions"), stack.client("batch")
    name = description["name"]
    if description["status"] == "RUNNING":
        sfn.stop_execution(executionArn=description["executionArn"], error="StoppedByOperator", cause=reason)
        lines = [f"stopped {name}"]
    else:
        lines = [f"{name} had already ended ({description['status']})"]
    if is_bulk(description):
        for child in runs.children(stack, name):
            if child["status"] in ("RUNNING", "ABORTED"):
                lines += stop(stack, sfn.describe_execution(executionArn=child["executionArn"]), reason)
        return lines
    terminated = 0
    for job_id in runs.batch_job_ids(stack, description["executionArn"]):
        jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
        if jobs and jobs[0]["status"] not in FINISHED_JOBS:
            batch.terminate_job(jobId=job_id, reason=reason)  # SIGTERM: each worker stops at its next chunk
            terminated += 1
    if terminated:
        lines.append(f"terminated {terminated} Batch jobs of {name}")
    run = stack.run_folder(name)
    if run.has_plan():
        plan = run.read_plan()
        if Locks(stack.location(plan.target)).release(run.uri):
            lines.append(f"released the lock of {plan.target}")
    lines.append(left_in(run))
    return lines
