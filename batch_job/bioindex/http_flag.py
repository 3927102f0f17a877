"""The `http` flag backend: a bioindex that exposes the historic set-compressed endpoint.

What it cannot prove: the endpoint answers 200 even for an (index, prefix) it does not know, and
the listing it reads back has no prefix. So a change counts as read back only when the listing shows
more arities of the index with the wanted flag than before; an unchanged listing never does, except
on a re-run backed by a receipt that an earlier execution of this workflow set the flag for this same
(index, prefix). The `mysql` backend proves the exact row instead.
"""

from __future__ import annotations

from batch_job.bioindex.backend import FlagChange
from batch_job.bioindex.errors import (
    CannotList,
    CannotSample,
    FlagAlreadySet,
    FlagChanged,
    FlagNotReadBack,
    IndexNotBuilt,
    NoSetEndpoint,
    UnknownIndex,
)
from batch_job.bioindex.rows import IndexRow, is_built, query_columns
from batch_job.bioindex.server import BioindexServer
from batch_job.records import Flag, PlannedFile
from batch_job.runfolder import Receipts


def _word(value: bool) -> str:
    return str(value).lower()


class HttpBackend:
    name = "http"

    def __init__(self, server: BioindexServer, receipts: Receipts | None) -> None:
        self.server = server
        self.receipts = receipts

    def _entries(self, index: str) -> list[dict]:
        entries = [e for e in self.server.listing() if e.get("index") == index]
        if not entries:
            raise UnknownIndex(f"the bioindex at {self.server.base_url} lists no index named {index!r}")
        return entries

    def _has_receipt(self, index: str, prefix: str, compressed: bool) -> bool:
        receipt = self.receipts.read(index, prefix) if self.receipts is not None else None
        return receipt is not None and receipt.compressed is compressed

    def indexes(self) -> list[IndexRow]:
        raise CannotList(
            f"the bioindex at {self.server.base_url} lists its indexes without their prefixes: give them explicitly "
            '({"indexes": [{"index": NAME, "prefix": PREFIX/}, ...]}), or deploy with FlagBackend=mysql'
        )

    def preflight(self, index: str, prefix: str, key_prefix: str, rollback: bool) -> IndexRow:
        entries = self._entries(index)
        if not self.server.has_set_route(index, prefix):
            raise NoSetEndpoint(
                f"the bioindex at {self.server.base_url} has no set-compressed route "
                f"({self.server.set_path.split('?')[0]} answers 404; today's bioindex has none): deploy with "
                "FlagBackend=mysql, which sets the flag as its CLI update-compressed-status does"
            )
        unbuilt = [e for e in entries if not is_built(e.get("built"))]
        if unbuilt:
            raise IndexNotBuilt(f"index {index!r} (schema {unbuilt[0].get('schema')!r}) is not built; build it first")
        wanted = not rollback
        if all(bool(e.get("compressed")) is wanted for e in entries) and not self._has_receipt(index, prefix, wanted):
            raise FlagAlreadySet(
                f"the bioindex already shows index {index!r} compressed={_word(wanted)} and no earlier run of this "
                f"workflow set it for prefix {prefix!r}; its listing has no prefixes, so {prefix!r} may be another "
                "index's prefix and the flag could never be proven. Check the prefix in __Indexes, or deploy with "
                "FlagBackend=mysql"
            )
        first = entries[0]
        return IndexRow(None, index, prefix, str(first.get("schema", "")), "", str(first.get("built")), not wanted)

    def set_flag(self, index: str, prefix: str, compressed: bool) -> FlagChange:
        before = self.server.flags(index)
        self.server.set_compressed(index, prefix, compressed)
        entries = self._entries(index)
        after = [bool(e.get("compressed")) for e in entries]
        grew = after.count(compressed) > before.count(compressed)
        rerun = all(a is compressed for a in after) and self._has_receipt(index, prefix, compressed)
        if not (grew or rerun):
            raise FlagNotReadBack(
                f"after setting compressed={_word(compressed)} for {index!r} {prefix!r}, the bioindex shows "
                f"{after.count(compressed)} of {len(after)} arities with it, as before: the endpoint answers 200 even "
                "for an (index, prefix) it does not know, so an unchanged listing proves nothing. Check the prefix, "
                "or deploy with FlagBackend=mysql"
            )
        first = entries[0]
        row = IndexRow(None, index, prefix, str(first.get("schema", "")), "", str(first.get("built")), compressed)
        return FlagChange(row, None)

    def check_unchanged(self, flag: Flag) -> None:
        flags = self.server.flags(flag.index)
        if flag.compressed not in flags:
            raise FlagChanged(
                f"the bioindex no longer shows index {flag.index!r} compressed={_word(flag.compressed)} on any arity, "
                "but flag.json recorded it: someone changed it since (the bioindex does not record who)"
            )

    def sample_queries(
        self, row: IndexRow, files: list[PlannedFile], count: int
    ) -> tuple[PlannedFile, list[list[str]], bool]:
        columns = query_columns(row.schema)
        if columns.locus:
            raise CannotSample(
                f"index {row.name!r} has a locus in its schema {row.schema!r}; over HTTP sample queries come from "
                "/api/bio/keys, which lists no loci. Deploy with FlagBackend=mysql, or ReaderCheckSamples=0"
            )
        keys = [k for k in self.server.keys(row.name, row.arity) if len(k) == row.arity][:count]
        if not keys:
            raise CannotSample(f"/api/bio/keys lists no keys of index {row.name!r} arity {row.arity}")
        canary = min(files, key=lambda f: (f.size, f.key))
        return canary, keys, False
