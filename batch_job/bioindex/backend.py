"""The interface both flag backends offer the Lambdas: pre-flight, set-and-prove, re-check, samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from batch_job.bioindex.rows import IndexRow
from batch_job.records import Flag, PlannedFile

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

    def preflight(self, index: str, prefix: str, s3_prefix: str, rollback: bool) -> IndexRow:
        """The one row of (index, prefix) if a run may start on it; else raise a `BioindexRefused`."""

    def set_flag(self, index: str, prefix: str, compressed: bool) -> FlagChange:
        """Set the flag of exactly (index, prefix) and prove it; else raise (nothing is recorded)."""

    def check_unchanged(self, flag: Flag) -> None:
        """Raise FlagChanged unless the flag still is what flag.json recorded."""

    def samples(self, row: IndexRow, files: list[PlannedFile], count: int) -> tuple[PlannedFile, list[list[str]], bool]:
        """The canary file, up to `count` sample queries, and whether their records lie in the canary."""
