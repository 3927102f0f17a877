"""The interface both flag backends offer the Lambdas: pre-flight, set-and-prove, re-check, sample queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from batch_job.bioindex.rows import IndexRow
from batch_job.records import Flag, Plan, PlanHead, PlannedFile

SAMPLE_CANDIDATES = 50  # smallest planned files tried as the canary: bounded work at Plan


@dataclass(frozen=True)
class FlagChange:
    """The row after the change, and the flag before it (None where the backend cannot see it)."""

    row: IndexRow
    before: bool | None


class FlagBackend(Protocol):
    name: str

    def indexes(self) -> list[IndexRow]:
        """Every index the bioindex has, with its prefix and flag; else raise CannotList."""

    def preflight(self, index: str, prefix: str, key_prefix: str, rollback: bool) -> IndexRow:
        """The one row of (index, prefix) if a run may start on it; else raise a `BioindexRefused`."""

    def set_flag(self, index: str, prefix: str, compressed: bool) -> FlagChange:
        """Set the flag of exactly (index, prefix) and prove it; else raise (nothing is recorded)."""

    def check_unchanged(self, flag: Flag) -> None:
        """Raise FlagChanged unless the flag still is what flag.json recorded."""

    def sample_queries(
        self, row: IndexRow, files: list[PlannedFile], count: int
    ) -> tuple[PlannedFile, list[list[str]], bool]:
        """The canary file, up to `count` sample queries, and whether their records lie in the canary."""


def set_and_read_back(
    backend: FlagBackend, plan: Plan | PlanHead, compressed: bool, bioindex_url: str, execution: str = ""
) -> Flag:
    """Set the flag of exactly the plan's (index, prefix) through the backend, which reads it back; the
    flag.json record of what was read (SetCompressed, ProveReaders, and `bgzip-job flag` by hand)."""
    change = backend.set_flag(plan.index, plan.prefix, compressed)
    return Flag(
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
