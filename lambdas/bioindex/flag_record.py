"""Setting the flag and keeping the proof: flag.json, the receipt the delete steps require."""

from __future__ import annotations

from batch_job.bioindex.backend import FlagBackend
from batch_job.records import Flag, Plan, PlanHead
from batch_job.runfolder import RunFolder

from . import config


def set_and_record(
    backend: FlagBackend, run: RunFolder, plan: Plan | PlanHead, compressed: bool, bioindex_url: str, execution: str
) -> Flag:
    """Set the flag of exactly the plan's (index, prefix) through the backend, which proves it; then
    write what was proven to the run's flag.json and to the (index, prefix)'s latest receipt."""
    change = backend.set_flag(plan.index, plan.prefix, compressed)
    flag = Flag(
        plan.index,
        plan.prefix,
        compressed,
        bioindex_url,
        backend=backend.name,
        before=change.before,
        row=change.row.receipt(),
        target=plan.target,
        execution=execution,
    )
    run.write_flag(flag)
    config.receipts().write(flag)
    return flag
