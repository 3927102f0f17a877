"""Summarize: a run that SUCCEEDED, as a RunSummary read from the heads of its plan and manifests."""

from __future__ import annotations

from report.event import ReportEvent, run_folder

from batch_job.boundary import RunSummary
from batch_job.records import CanaryStatus, ReadersCheck, Step, Totals
from batch_job.runfolder import RunFolder


def _totals(run: RunFolder, step: Step, shards: int) -> Totals:
    return sum((head.totals for head in run.read_manifest_heads(step, shards).values()), Totals())


def summary(event: ReportEvent) -> dict:
    """The run's RunSummary, from the heads of the plan and the manifests alone: memory by shards,
    not by files."""
    run = run_folder(event)
    plan = run.read_plan_head()
    verified = _totals(run, Step.VERIFY, plan.shards)
    compressed, original = verified.compressed_bytes, verified.original_bytes
    removed = _totals(run, plan.destructive_step, plan.shards).deleted
    check = run.read_readers_check() or ReadersCheck("")
    if check.canary_status == CanaryStatus.RELEASED:
        removed += len(check.canary.objects)
    return RunSummary(
        mode=plan.mode,
        index=plan.index,
        prefix=plan.prefix,
        run=run.uri,
        files=plan.file_count,
        bytes_uncompressed=original,
        bytes_compressed=compressed,
        objects_deleted=removed,
        readers_proven=bool(check.proven),
    ).to_json()
