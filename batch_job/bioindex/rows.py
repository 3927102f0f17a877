"""An `__Indexes` row, and how a row's schema turns index-table values into a query.

The bioindex keys a query by its arity (the number of comma-separated schema columns) and reads
`q` as the key column values, the last of which is a locus region (`chr:start-stop`) when the
schema ends in a locus (`chromosome:position`, `chr:start-stop`). Index tables hold a locus as
`chromosome` and a `position` bucketed by the schema's `locus_step` (default 20000).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from batch_job.bioindex.errors import CannotSample

ZERO_DATETIME = "0000-00-00 00:00:00"  # MySQL's zero date, which the bioindex also reads as "never built"
DEFAULT_LOCUS_STEP = 20_000
_STEP = re.compile(r";locus_step=(\d+)$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def arity_of(schema: str) -> int:
    """As `__Indexes`' unique key computes it: the number of comma-separated columns."""
    return schema.count(",") + 1


def is_built(built: object) -> bool:
    return built is not None and str(built) not in ("", ZERO_DATETIME) and built is not False


@dataclass(frozen=True)
class IndexRow:
    """One `__Indexes` row as the flag backends see it (`id` is None where the API hides it)."""

    id: int | None
    name: str
    prefix: str
    schema: str
    table: str
    built: str | None
    compressed: bool

    @property
    def arity(self) -> int:
        return arity_of(self.schema)

    @property
    def is_built(self) -> bool:
        return is_built(self.built)

    def receipt(self) -> dict:
        """What flag.json records of the row."""
        return {**asdict(self), "arity": self.arity}


@dataclass(frozen=True)
class QueryColumns:
    """The index-table columns a sample query is made of, in query order."""

    keys: list[str]
    locus: bool
    step: int

    @property
    def table_columns(self) -> list[str]:
        return self.keys + (["chromosome", "position"] if self.locus else [])

    def query(self, values: list | tuple) -> list[str]:
        """The `q` values of a query for one index-table row's column values."""
        q = [str(v) for v in values[: len(self.keys)]]
        if self.locus:
            chromosome, position = values[len(self.keys)], int(values[len(self.keys) + 1])
            # One locus bucket; at least two positions, since the bioindex refuses a region whose stop is
            # not after its start ("Stop must be > start", as `;locus_step=1` would otherwise give).
            q.append(f"{chromosome}:{position}-{position + max(self.step, 2) - 1}")
        return q


def query_columns(schema: str) -> QueryColumns:
    """Parse a bioindex schema string into the columns sample queries use.

    Alternative columns (`a|b`) and locus templates (`varId=$chr:$pos`) are not sampled: their
    query values cannot be formed from the index table alone.
    """
    step = DEFAULT_LOCUS_STEP
    found = _STEP.search(schema)
    if found:
        step, schema = int(found.group(1)), schema[: found.start()]
    columns = [c.strip() for c in schema.split(",")]
    keys, locus = [], False
    for n, column in enumerate(columns):
        if "=" in column or "|" in column:
            raise CannotSample(
                f"schema {schema!r} has column {column!r} (a template or alternatives): sample queries cannot be "
                "formed from the index table; deploy with ReaderCheckSamples=0 to convert without the reader proof"
            )
        if ":" in column:
            if n != len(columns) - 1:
                raise CannotSample(f"schema {schema!r}: a locus must be the last column")
            locus = True
            continue
        if not _IDENTIFIER.match(column):
            raise CannotSample(f"schema {schema!r}: column {column!r} is not a plain column name")
        keys.append(column)
    return QueryColumns(keys, locus, step)
