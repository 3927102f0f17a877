"""The baseline: the bioindex's answers to a few sample queries, captured at Plan and compared again
by ProveReaders.

The answers are what the run promises to keep: every record the bioindex returns for each sample
query, counted and hashed. Any difference later - fewer records, other records, an error - means a
process reads a side of the data that is not what its flag should make it read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batch_job.bioindex.backend import FlagBackend
from batch_job.bioindex.errors import BioindexRejected, BioindexUnavailable, CannotSample
from batch_job.bioindex.rows import IndexRow
from batch_job.bioindex.server import BioindexServer
from batch_job.records import Baseline, Plan


def capture(bioindex: BioindexServer, backend: FlagBackend, row: IndexRow, plan: Plan, queries: int) -> Baseline:
    """Choose the canary and the sample queries, and record the bioindex's answers, each asked twice
    (on new connections) so that processes that already disagree are found before anything changes."""
    canary, chosen, tied = backend.sample_queries(row, plan.files, queries)
    answers = []
    for q in chosen:
        first, second = bioindex.answer(row.name, q), bioindex.answer(row.name, q)
        if first != second:
            raise CannotSample(
                f"the bioindex answered query {q} of {row.name!r} differently twice in a row before the run "
                f"({first.count} then {second.count} records): its processes disagree already; fix that first"
            )
        answers.append(first)
    return Baseline(row.name, row.arity, canary.key, answers, tied)


@dataclass
class Differences:
    """The baseline's queries asked again: the answers that differ from it, and those that failed.
    An error is not a stale answer: a process that reads a side it cannot read answers with one."""

    asked: int = 0
    differing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.differing or self.errors)

    def first(self) -> str:
        return (self.errors or self.differing)[0]

    def described(self, shown: int = 3) -> str:
        parts = []
        for what, found in (("errors", self.errors), ("differing answers", self.differing)):
            if found:
                more = f" (and {len(found) - shown} more)" if len(found) > shown else ""
                parts.append(f"{len(found)} {what}: " + "; ".join(found[:shown]) + more)
        return " and ".join(parts)


def ask_again(bioindex: BioindexServer, baseline: Baseline, requests: int) -> Differences:
    """Ask every query `requests` times, one attempt each, and keep each answer that differs or fails."""
    found = Differences()
    for before in baseline.answers:
        for _ in range(requests):
            found.asked += 1
            try:
                now = bioindex.answer(baseline.index, before.q, attempts=1)
            except (BioindexUnavailable, BioindexRejected) as exc:
                found.errors.append(f"query {before.q}: {exc}")
                continue
            if now != before:
                found.differing.append(f"query {before.q}: {now.count} records where there were {before.count}")
    return found
