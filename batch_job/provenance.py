"""Which source an output was made from, kept in the output's own S3 user metadata.

Every output records the ETag and size of the source it was made from, and a .gzi also the ETag of
the .gz it indexes. The .gzi is written last, so an output pair counts as done only when both
exist and name the current source: a run killed at any point leaves nothing a later step mistakes
for a finished output.
"""

from __future__ import annotations

from batch_job.errors import FileFailed
from batch_job.records import PlannedFile
from batch_job.stores import ObjectInfo, Store

SOURCE_ETAG = "source-etag"
SOURCE_SIZE = "source-size"
GZ_ETAG = "gz-etag"  # on a .gzi: the .gz it indexes


def made_from(source: ObjectInfo) -> dict[str, str]:
    """The metadata of an output made from `source`."""
    return {SOURCE_ETAG: source.etag, SOURCE_SIZE: str(source.size)}


def why_not_current(source: ObjectInfo, gz: ObjectInfo | None, gzi: ObjectInfo | None) -> str | None:
    """Why .gz and .gzi are not a complete output of exactly this version of the source; None if they are.

    The .gz is checked against its .gzi first: a .gz changed or corrupted after it was written is the
    .gz's problem, not the original's."""
    if gz is None or gzi is None:
        return f"the output of {source.key} is incomplete: its .gz or .gzi is missing"
    if gzi.metadata.get(GZ_ETAG) != gz.etag:
        return f"{gz.key} changed after its .gzi was written (modified or corrupted); compress rewrites it"
    if gz.metadata.get(SOURCE_ETAG) != source.etag or gz.metadata.get(SOURCE_SIZE) != str(source.size):
        return f"{gz.key} was made from another version of {source.key}; compress rewrites it"
    if gzi.metadata.get(SOURCE_ETAG) != source.etag:
        return f"{gzi.key} was made from another version of {source.key}; compress rewrites it"
    return None


def output_is_current(source: ObjectInfo, gz: ObjectInfo | None, gzi: ObjectInfo | None) -> bool:
    """Whether .gz and .gzi were completely written from exactly this version of the source."""
    return why_not_current(source, gz, gzi) is None


def current_source(store: Store, planned: PlannedFile) -> ObjectInfo:
    """The planned source, refusing it if it is gone or is not the version the plan saw."""
    source = store.head(planned.key)
    if source is None:
        raise FileFailed(f"{planned.key} is gone since the plan was made")
    if (source.etag, source.size) != (planned.etag, planned.size):
        raise FileFailed(
            f"{planned.key} changed since the plan was made (ETag {source.etag}, size {source.size}; "
            f"planned {planned.etag}, {planned.size})"
        )
    return source
