"""Sample answers: captured at Plan, compared again by ProveReaders.

The answers are what the run promises to keep: every record the bioindex returns for each sample
query, counted and hashed. Any difference later - fewer records, other records, an error - means a
process reads a side of the data that is not what its flag should make it read.
"""

from __future__ import annotations

from batch_job.records import Plan, Readers

from .backend import FlagBackend
from .errors import BioindexRejected, BioindexUnavailable, CannotSample
from .rows import IndexRow
from .server import BioindexServer


def capture(bioindex: BioindexServer, backend: FlagBackend, row: IndexRow, plan: Plan, samples: int) -> Readers:
    """Choose the canary and the sample queries, and record the bioindex's answers, each asked twice
    (on new connections) so that processes that already disagree are found before anything changes."""
    canary, queries, tied = backend.samples(row, plan.files, samples)
    answers = []
    for q in queries:
        first, second = bioindex.answer(row.name, q), bioindex.answer(row.name, q)
        if first != second:
            raise CannotSample(
                f"the bioindex answered query {q} of {row.name!r} differently twice in a row before the run "
                f"({first.count} then {second.count} records): its processes disagree already; fix that first"
            )
        answers.append(first)
    return Readers(row.name, row.arity, canary.key, answers, tied)


def differences(bioindex: BioindexServer, readers: Readers, requests: int) -> list[str]:
    """Ask every sample `requests` times, one attempt each, and describe each answer that differs."""
    found = []
    for sample in readers.samples:
        for _ in range(requests):
            try:
                now = bioindex.answer(readers.index, sample.q, attempts=1)
            except (BioindexUnavailable, BioindexRejected) as exc:
                found.append(f"query {sample.q}: {exc}")
                continue
            if now != sample:
                found.append(f"query {sample.q}: {now.count} records where there were {sample.count}")
    return found
