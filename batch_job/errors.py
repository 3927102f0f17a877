"""Every error the engine raises on purpose, each with the exit status `bgzip-job` gives it.

AWS Batch acts on the exit status (the job definitions' retry strategy): 1 and 3 are retried, 2 is
final. An error outside this module is a bug: it escapes with its traceback.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of the engine's errors; `exit_code` is what `bgzip-job` exits with."""

    exit_code = 2


class BadInput(EngineError, ValueError):
    """The user's input or a run-folder file is wrong; the message says how. Nothing was changed.

    A ValueError too, so that the Lambdas' pydantic validators report it as a validation error."""


class PrefixLocked(BadInput):
    """Another run holds this prefix, or one containing or inside it: nothing was done."""


class Refused(EngineError):
    """A step's precondition does not hold; the step changed nothing."""


class PlanMismatch(Refused):
    """A state was asked for another index, prefix or direction than its run's plan (SetCompressed,
    ProveReaders): a wiring error, never retried."""


class FileFailed(EngineError):
    """This file cannot be done as planned (changed source, bad output); retrying the file will not help.
    The step records it and goes on with the other files."""

    exit_code = 1


class FilesFailed(EngineError):
    """Some files of the step failed; they are named in the manifest and the error record. A retry of
    the job redoes only those."""

    exit_code = 1

    def __init__(self, summary: str, failed: list[str]) -> None:
        super().__init__(summary)
        self.failed = failed


class BGZFError(EngineError, ValueError):
    """The bytes are not valid BGZF (bad header, bad size, CRC or length mismatch): that file's failure."""

    exit_code = 1


class StoreError(EngineError, RuntimeError):
    """An object could not be read or written; the message names it. Transient: retried."""

    exit_code = 3


class LeaseExpired(StoreError):
    """The run's lease on its prefix lock would not cover a delete request, so it was not sent (the
    lock was taken away, or renewing it failed for too long). Retried: the retry's first check
    refuses at once if another run holds the prefix now."""


class AccessDenied(StoreError):
    """The job's role may not do this (S3 said AccessDenied): final, and never retried per file."""

    exit_code = 2


class NoSuchBucket(StoreError):
    """The bucket does not exist: final (exit 2), not a storage hiccup to retry."""

    exit_code = 2


class NotDeleted(StoreError):
    """A delete call kept some of its objects (each changed since it was checked, or gone already
    counts as deleted); every other object of the call is gone."""

    def __init__(self, message: str, kept: dict[str, str]) -> None:
        super().__init__(message)
        self.kept = kept  # key -> why it was kept (S3's error code)


class DeletesRefused(NotDeleted, AccessDenied):
    """S3 refused some keys of a delete call (a bucket policy, object ownership): final."""

    exit_code = 2


class ObjectChanged(StoreError):
    """The object is not the version the caller expected (ETag differs or it is gone): final."""

    exit_code = 2


class FlagMoved(Refused):
    """The bioindex flag is no longer what this run set: the delete step stopped, and what this run
    had deleted was put back. Final: someone must decide what the flag should be."""


class BioindexUnreachable(EngineError):
    """The job could not read the bioindex flag (its database or server did not answer): nothing
    more is deleted until it can. Retried."""

    exit_code = 3
