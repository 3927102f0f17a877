"""`bgz stop`: stop an execution and its Batch jobs, free its prefix, and say what state it left.

Stopping is safe at any moment: every step is idempotent and the delete steps re-check everything,
so a new run finishes the work, or a rollback undoes it. What it cannot do is make the prefix whole
by itself: the report says what is where, and which run finishes it.
"""

from __future__ import annotations

import json

from batch_job.locks import Locks
from batch_job.records import CanaryStatus, Mode, Plan, Step
from batch_job.runfolder import RunFolder
from bgz import runs
from bgz.stack import Stack
from bgz.watch import is_bulk

FINISHED_JOBS = ("SUCCEEDED", "FAILED")


def batch_jobs(stack: Stack, execution_arn: str) -> list[str]:
    """The ids of the Batch jobs an execution submitted (an array job's children go with it)."""
    sfn = stack.client("stepfunctions")
    ids = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        for event in page["events"]:
            details = event.get("taskSubmittedEventDetails") or {}
            if event["type"] == "TaskSubmitted" and "batch" in details.get("resourceType", ""):
                job_id = json.loads(details.get("output") or "{}").get("JobId")
                if job_id:
                    ids.append(job_id)
    return ids


def _count(run: RunFolder, step: Step, plan: Plan, statuses: tuple[str, ...] = ()) -> int:
    manifests = run.read_manifests(step, plan.shards).values()
    return sum(1 for m in manifests for r in m.files if r.ok and (not statuses or r.status in statuses))


def left_in(run: RunFolder) -> str:
    """Where the run left its prefix, from its run folder, and what finishes it."""
    if not run.has_plan():
        return "The run had not planned: nothing under the prefix was changed."
    plan = run.read_plan()
    total, flag, check = len(plan.files), run.read_flag(), run.read_readers_check()
    if plan.mode == Mode.COMPRESS:
        made = _count(run, Step.COMPRESS, plan)
        gone = _count(run, Step.DELETE, plan, ("deleted", "already-deleted"))
        new, old, rerun = ".gz/.gzi", "originals", "a new compress run"
    else:
        made = _count(run, Step.DECOMPRESS, plan)
        gone = _count(run, Step.REMOVE_COMPRESSED, plan, ("deleted", "already-deleted"))
        new, old, rerun = "restored .json", ".gz/.gzi", "a new rollback run"
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
    """Stop one execution (a bulk one: its index runs first); the lines to print."""
    sfn, batch = stack.client("stepfunctions"), stack.client("batch")
    lines = []
    if is_bulk(description):
        for child in runs.children(stack, description["name"]):
            if child["status"] == "RUNNING":
                lines += stop(stack, sfn.describe_execution(executionArn=child["executionArn"]), reason)
    name = description["name"]
    if description["status"] == "RUNNING":
        # The execution first, so that no further state starts; then its jobs.
        sfn.stop_execution(executionArn=description["executionArn"], error="StoppedByOperator", cause=reason)
        terminated = 0
        for job_id in batch_jobs(stack, description["executionArn"]):
            jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
            if jobs and jobs[0]["status"] not in FINISHED_JOBS:
                batch.terminate_job(jobId=job_id, reason=reason)  # SIGTERM: each worker stops at its next chunk
                terminated += 1
        lines.append(f"stopped {name}" + (f" and terminated {terminated} Batch jobs" if terminated else ""))
    else:
        lines.append(f"{name} is already {description['status']}; nothing to stop")
    if is_bulk(description):
        return lines
    run = stack.run_folder(name)
    if run.has_plan():
        plan = run.read_plan()
        if Locks(stack.location(plan.target)).release(run.uri):
            lines.append(f"released the lock of {plan.target}")
    lines.append(left_in(run))
    return lines
