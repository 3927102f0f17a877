"""`bgz selftest`: what a new deploy must show before any run touches bioindex data. Each check runs
where the workflow does that thing, as the role that does it, and says one line.

The Plan Lambda (its role, its network) checks the prefix lock's primitives in the data bucket, reaches
the bioindex, and reports the runtime's botocore. A Batch job of the compress job definition (its role,
the image, the jobs' subnets) compresses, verifies, restores and verifies again a generated file in a
scratch folder of the run bucket, and reaches the bioindex too. Nothing here reads or writes bioindex
data. The lock probe is deleted again; the scratch files expire with the run bucket's RunRetentionDays.
The Lambdas import this module, so the codec stays out of it (the job's round trip is
batch_job/steps/selftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import botocore
from botocore.exceptions import ClientError

from batch_job.bioindex import connect
from batch_job.bioindex.backend import FlagBackend
from batch_job.bioindex.server import BioindexServer
from batch_job.errors import NotDeleted
from batch_job.locks import LOCK_FOLDER
from batch_job.stores import S3Store, check_botocore

RESULT = "selftest.json"  # what the job writes in its scratch folder, for bgz to read
WRONG_ETAG = "0" * 32


class CheckFailed(Exception):
    """A check's own finding: its message is the line."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"

    @classmethod
    def from_json(cls, data: dict) -> Check:
        return cls(str(data["name"]), bool(data["ok"]), str(data["detail"]))


def checked(name: str, probe: Callable[[], str]) -> Check:
    """Run one probe: what it returns is the passing line, anything it raises the failing one."""
    try:
        return Check(name, True, probe())
    except CheckFailed as exc:
        return Check(name, False, str(exc))
    except Exception as exc:  # a failure is a line that says what failed, never a traceback
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def to_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]


def botocore_check(where: str) -> Check:
    def probe() -> str:
        check_botocore(botocore.__version__)
        return f"botocore {botocore.__version__} (conditional writes and deletes need 1.36 or later)"

    return checked(f"{where} SDK", probe)


# ---- the prefix lock's primitives, in the data bucket's lock folder --------------------------------


def lock_checks(bucket: str, name: str) -> list[Check]:
    """A probe object beside the prefix locks (not named *.lock, so no run reads it as one): created with
    If-None-Match, then deleted with a wrong ETag (S3 keeps it), with none (the role refuses it) and
    with its own (deleted). Each is what taking, keeping and releasing a prefix lock relies on."""
    store = S3Store(bucket)
    key = f"{LOCK_FOLDER}{name}.probe"
    uri = store.uri(key)
    etag = ""

    def create() -> str:
        nonlocal etag
        made = store.create(key, b"bgz selftest probe\n")
        if made is None:
            raise CheckFailed(f"{uri} exists already: run the self test again (it names a new probe)")
        etag = made.etag
        if store.create(key, b"a second writer\n") is not None:
            raise CheckFailed(f"a second create of {uri} replaced it: S3 did not honour If-None-Match")
        return f"created {uri}; a second create was refused (If-None-Match)"

    def refused(etag_sent: str | None, expected: str) -> str:
        try:
            if etag_sent is None:
                store.client.delete_object(Bucket=bucket, Key=key)
            else:
                store.delete([(key, etag_sent)])
        except NotDeleted as exc:
            code = exc.kept.get(key, "")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
        else:
            code = ""
        if store.head(key) is None:
            why = "the role may delete a lock without naming its ETag" if etag_sent is None else "S3 ignored the ETag"
            raise CheckFailed(f"{uri} was deleted; it must be kept ({expected} expected): {why}")
        if code != expected:
            raise CheckFailed(f"kept, but S3 answered {code or 'success'}, not {expected}")
        return f"kept ({code})"

    def delete() -> str:
        store.delete([(key, etag)])
        if store.head(key) is not None:
            raise CheckFailed(f"{uri} is still there after a delete with its own ETag")
        return "deleted"

    first = checked("lock create", create)
    if not first.ok:
        return [first]
    return [
        first,
        checked("lock delete, wrong ETag", lambda: refused(WRONG_ETAG, "PreconditionFailed")),
        checked("lock delete, no ETag", lambda: refused(None, "AccessDenied")),
        checked("lock delete, its ETag", delete),
    ]


# ---- the bioindex, from where the check runs ------------------------------------------------------


def _indexes(count: int) -> str:
    return f"{count} index" if count == 1 else f"{count} indexes"


def bioindex_checks(where: str, backend: Callable[[], FlagBackend], server: BioindexServer | None) -> list[Check]:
    """The flag backend answers (mysql: a login over TLS and `__Indexes` read; http: the server, whose
    index list holds the flag) and BioindexUrl lists its indexes. `backend` builds the backend, so a
    wrong setting is this check's failing line."""

    def flag() -> str:
        found = backend()
        if found.name != "mysql":
            return f"FlagBackend={found.name}: the flag is read from BioindexUrl's index list"
        how = "plain TCP (BioindexDatabaseTls=off)" if found.plain else "TLS, certificate verified"
        return f"__Indexes read over {how}: {_indexes(len(found.indexes()))}"

    def url() -> str:
        return f"{server.base_url} lists {_indexes(len(server.listing()))}"

    checks = [checked(f"{where} bioindex flag", flag)]
    if server is not None:
        checks.append(checked(f"{where} BioindexUrl", url))
    return checks


def configured_bioindex_checks(where: str, secret: connect.SecretReader) -> list[Check]:
    """bioindex_checks with the settings the stack gives its Lambdas and job definitions."""
    if not connect.configured():
        return [Check(f"{where} bioindex flag", False, f"no bioindex configured ({connect.BACKEND_VARIABLE})")]
    try:
        server = connect.server(secret)
    except Exception as exc:  # e.g. an http:// BioindexUrl without InsecureBioindexUrl
        return [Check(f"{where} BioindexUrl", False, f"{type(exc).__name__}: {exc}")]
    return bioindex_checks(where, lambda: connect.backend(secret, server, None), server)
