"""The bioindex flag as it is now, read by the Batch jobs themselves.

flag.json proves the flag was set when SetCompressed ran; someone may change it later (the bioindex
CLI's `update-compressed-status`, a run by hand), and after that the processes would read files
this run is deleting. So the delete steps re-read the flag through the stack's backend right before
each batch of deletions and once after the last, and the conversion steps repeat Plan's pre-flight
at their start: a job that cannot reach the bioindex from its subnets fails there, before any work,
instead of at its first deletion.
"""

from __future__ import annotations

import boto3

from batch_job.bioindex import connect
from batch_job.bioindex.backend import FlagBackend
from batch_job.bioindex.errors import (
    BioindexRefused,
    BioindexRejected,
    BioindexUnavailable,
    FlagChanged,
    InsecureBioindexUrl,
)
from batch_job.errors import BioindexUnreachable, FlagMoved, Refused
from batch_job.locations import parse_location
from batch_job.records import Flag, Mode, Plan
from batch_job.runfolder import Receipts

UNREACHABLE = (
    "the Batch jobs cannot read the bioindex flag ({error}). Their subnets (SubnetIds, SecurityGroupIds) need "
    "a route to the bioindex database (FlagBackend=mysql) or server (http), as the Lambdas have: the delete "
    "step re-reads the flag before every batch and deletes nothing unchecked"
)


def secrets_manager() -> connect.SecretReader:
    """Secrets Manager through the job role, each secret read once per job."""
    client = boto3.client("secretsmanager")
    cache: dict[str, str] = {}

    def read(arn: str) -> str:
        if arn not in cache:
            cache[arn] = client.get_secret_value(SecretId=arn)["SecretString"]
        return cache[arn]

    return read


class LiveFlag:
    def __init__(self, backend: FlagBackend) -> None:
        self.backend = backend

    @classmethod
    def from_environment(cls, receipts: Receipts | None = None) -> LiveFlag | None:
        """The stack's backend, as its job definitions configure it; None outside a stack (a run by
        hand). `receipts` only for the pre-flight over HTTP, which accepts a flag an earlier run set."""
        if not connect.configured():
            return None
        secret = secrets_manager()
        try:
            return cls(connect.backend(secret, connect.server(secret), receipts))
        except (BioindexRefused, InsecureBioindexUrl, ValueError) as exc:  # the settings: no retry helps
            raise Refused(f"this job's bioindex settings: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def for_deleting(cls, flag: Flag) -> LiveFlag | None:
        """The live flag a delete step checks; a workflow run's flag.json (it names its execution)
        is never trusted alone."""
        live = cls.from_environment()
        if live is None and flag.execution:
            raise Refused(
                f"{Flag.NAME} was set by execution {flag.execution}, whose deletions re-read the live bioindex flag, "
                f"but this job has no bioindex configured ({connect.BACKEND_VARIABLE} and its settings, as the "
                "stack's job definitions give them); nothing is deleted"
            )
        return live

    def preflight(self, plan: Plan) -> None:
        """Plan's pre-flight again, from the job's network: the index is there, and reachable."""
        key_prefix = parse_location(plan.target).prefix
        try:
            self.backend.preflight(plan.index, plan.prefix, key_prefix, plan.mode == Mode.ROLLBACK)
        except BioindexUnavailable as exc:
            raise BioindexUnreachable(UNREACHABLE.format(error=exc)) from exc
        except (BioindexRefused, BioindexRejected) as exc:
            what = f"{type(exc).__name__}: {exc}"
            raise Refused(f"the bioindex refuses this run now ({what}); nothing converted") from exc

    def check(self, flag: Flag) -> None:
        """Raise FlagMoved unless the flag still is what flag.json recorded."""
        try:
            self.backend.check_unchanged(flag)
        except FlagChanged as exc:
            raise FlagMoved(str(exc)) from exc
        except BioindexUnavailable as exc:
            raise BioindexUnreachable(UNREACHABLE.format(error=exc)) from exc
        except (BioindexRejected, BioindexRefused) as exc:
            raise Refused(f"the bioindex refused the flag check ({exc}); nothing more is deleted") from exc
