"""SelectIndexes state of the bulk machine: which indexes to convert, in one list, before anything runs.

The indexes come from the bioindex's `__Indexes` (mysql backend: all, `include`, `exclude`): those
whose flag is already the wanted one, and those not built, are skipped and listed as such, and a
name in `include` or `exclude` the bioindex does not have is refused - a typo must not silently
convert less, or more, than meant. Or they are given explicitly with their prefixes (either
backend): all of those run, each child's own pre-flight refusing what it must.
"""

from __future__ import annotations

import json
import os

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_job.bioindex.errors import UnknownIndex
from batch_job.bioindex.rows import IndexRow
from batch_job.keys import execution_name
from shared import config
from workflow.events import SelectEvent

logger = Logger()
tracer = Tracer()

DEFAULT_CONCURRENCY = 3  # as the bioindex's own bulk tool
STATE_BUDGET = 240_000  # bytes of items and outcomes in one state, under Step Functions' 262,144
STATUS_BYTES = 40  # what an index's outcome holds beyond its item


class BulkTooLarge(Exception):
    """More indexes than one bulk execution's state can carry."""


def _skip_reason(row: IndexRow, compress: bool) -> str | None:
    if not row.is_built:
        return "not built"
    if row.compressed and compress:
        return "already compressed"
    if not row.compressed and not compress:
        return "not compressed"
    return None


def _unknown(names: list[str], rows: list[IndexRow], what: str) -> None:
    known = {r.name for r in rows}
    missing = [n for n in names if n not in known]
    if missing:
        raise UnknownIndex(f"{what} names indexes the bioindex does not have: {', '.join(map(repr, missing))}")


def select(event: SelectEvent) -> tuple[list[tuple[str, str]], list[dict]]:
    """The (index, prefix) pairs to convert, and the skipped ones with why."""
    wanted = event.input
    if wanted.indexes is not None:
        pairs = list(dict.fromkeys((e.index, e.prefix) for e in wanted.indexes if e.index not in wanted.exclude))
        return pairs, []
    rows = config.backend(config.server()).indexes()
    _unknown(wanted.include or [], rows, "include")
    _unknown(wanted.exclude, rows, "exclude")
    chosen = [r for r in rows if (wanted.all or r.name in wanted.include) and r.name not in wanted.exclude]
    pairs, skipped, seen = [], [], set()
    for row in sorted(chosen, key=lambda r: (r.name, r.prefix)):
        if (row.name, row.prefix) in seen:
            continue  # one conversion per (name, prefix), whatever its arities
        seen.add((row.name, row.prefix))
        reason = _skip_reason(row, wanted.mode == "compress")
        if reason:
            skipped.append({"index": row.name, "prefix": row.prefix, "reason": reason})
        else:
            pairs.append((row.name, row.prefix))
    return pairs, skipped


def child_names(indexes: list[str], execution: str) -> list[str]:
    """One execution name per index run, `<index>-<bulk execution>`, unique within the bulk run."""
    names: list[str] = []
    for n, index in enumerate(indexes, 1):
        name = execution_name(index, execution)
        if name in names:  # alike once cut or made safe: a number in the kept part tells them apart
            name = execution_name(index, f"{n}-{execution}")
        names.append(name)
    return names


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=SelectEvent)
def handler(event: SelectEvent, context: LambdaContext) -> dict:
    return selection(event)


def selection(event: SelectEvent) -> dict:
    """The Map's items and the run's settings, checked to fit one state."""
    pairs, skipped = select(event)
    names = child_names([index for index, _ in pairs], event.execution)
    items = [
        {"index": index, "prefix": prefix, "name": name, "level": event.input.level}
        for (index, prefix), name in zip(pairs, names, strict=True)
    ]
    machine = event.machines[event.input.mode]
    concurrency = event.input.concurrency or int(os.environ.get("BULK_CONCURRENCY", DEFAULT_CONCURRENCY))
    logger.info("selected", extra={"convert": len(items), "skipped": len(skipped), "concurrency": concurrency})
    check_state_size(items, skipped)
    # The Map takes `items` and replaces them with each index's outcome; `bulk`, the run's settings, goes through.
    return {
        "items": items,
        "bulk": {"mode": event.input.mode, "machine": machine, "concurrency": concurrency, "skipped": skipped},
    }


def check_state_size(items: list[dict], skipped: list[dict]) -> None:
    """Refuse a selection whose Map would pass Step Functions' 256 KiB limit of one state's data:
    its input holds every item and skipped index, its output every outcome (each about an item's
    size). States.DataLimitExceeded cannot be caught: the run would end with no report."""
    size = len(json.dumps(items)) + len(json.dumps(skipped)) + STATUS_BYTES * len(items)
    if size > STATE_BUDGET:
        most = int(len(items) * STATE_BUDGET / size)
        raise BulkTooLarge(
            f"{len(items)} indexes ({len(skipped)} skipped) are {size:,} bytes of state, over the {STATE_BUDGET:,} one "
            f"bulk run can carry: split it into runs of at most about {most} indexes (include/exclude)"
        )
