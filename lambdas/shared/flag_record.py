"""Setting the flag and keeping what was read back: flag.json, the receipt the delete steps require."""

from __future__ import annotations

from batch_job.bioindex.backend import FlagBackend, set_and_read_back
from batch_job.records import Flag, Plan, PlanHead
from batch_job.runfolder import RunFolder

from . import config


def set_and_record(
    backend: FlagBackend, run: RunFolder, plan: Plan | PlanHead, compressed: bool, bioindex_url: str, execution: str
) -> Flag:
    """Set the flag of exactly the plan's (index, prefix) through the backend, which reads it back; then
    write what it read to the run's flag.json and to the (index, prefix)'s latest receipt."""
    flag = set_and_read_back(backend, plan, compressed, bioindex_url, execution)
    run.write_flag(flag)
    config.receipts().write(flag)
    return flag
