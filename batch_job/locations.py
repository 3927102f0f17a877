"""Parse and check the TARGET and RUN arguments: `s3://bucket/prefix/` or a local folder.

A bad location is refused before anything is read or written, with a one-line reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from batch_job.errors import BadInput
from batch_job.stores import LocalStore, S3Store, Store

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Location:
    """A folder in a store: `prefix` is empty (a local root) or ends with `/`."""

    store: Store
    prefix: str
    uri: str

    def key(self, name: str) -> str:
        return self.prefix + name


def check_prefix(prefix: str, what: str = "prefix") -> str:
    """A bioindex-style prefix: non-empty, ends with `/`, no empty, `.` or `..` segments."""
    if not prefix:
        raise BadInput(f"{what} is empty: give the folder, e.g. 'genes/' (the whole bucket is never a target)")
    if not prefix.endswith("/"):
        raise BadInput(f"{what} {prefix!r} must end with '/'")
    if prefix.startswith("/"):
        raise BadInput(f"{what} {prefix!r} must not start with '/'")
    if "://" in prefix:  # s3://bucket/p/ given where the bioindex's prefix goes
        raise BadInput(f"{what} {prefix!r} is a URI: give the prefix as the bioindex has it, e.g. 'genes/'")
    for segment in prefix[:-1].split("/"):
        if segment in ("", ".", ".."):
            raise BadInput(f"{what} {prefix!r} has an empty, '.' or '..' path segment")
    return prefix


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix/` into its checked bucket and prefix."""
    if not uri.startswith("s3://"):
        raise BadInput(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise BadInput(f"{uri!r}: {bucket!r} is not a valid S3 bucket name")
    return bucket, check_prefix(prefix, f"prefix of {uri!r}")


def parse_location(uri: str, must_exist: bool = True) -> Location:
    """A Location for `s3://bucket/prefix/` or a local folder path."""
    if "://" in uri:
        bucket, prefix = parse_s3_uri(uri)
        return Location(S3Store(bucket), prefix, f"s3://{bucket}/{prefix}")
    if not uri:
        raise BadInput("an empty path is not a folder")
    if ".." in Path(uri).parts:
        raise BadInput(f"{uri!r}: '..' is not allowed in a path")
    path = Path(uri)
    if must_exist and not path.is_dir():
        raise BadInput(f"{uri!r} is not an existing folder")
    return Location(LocalStore(path), "", str(path.resolve()) + "/")
