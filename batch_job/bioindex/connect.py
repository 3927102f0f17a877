"""The bioindex connection from the environment the stack gives the Lambdas and the Batch jobs.

One reading of the settings for both, so that the delete jobs re-read the flag exactly where the
Lambdas set it. Secrets (the database's RDS-format secret, the HTTP bearer token) come through
`secret`, the caller's Secrets Manager reader, and are never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from batch_job.bioindex.backend import FlagBackend
from batch_job.bioindex.http_flag import HttpBackend
from batch_job.bioindex.mysql import MysqlBackend
from batch_job.bioindex.server import BioindexServer
from batch_job.runfolder import Receipts

BACKENDS = ("mysql", "http")
BACKEND_VARIABLE = "BIOINDEX_FLAG_BACKEND"

SecretReader = Callable[[str], str]  # secret ARN -> SecretString


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def configured() -> bool:
    """Whether this process was given a bioindex (the stack's functions and job definitions are)."""
    return bool(env(BACKEND_VARIABLE))


def server(secret: SecretReader) -> BioindexServer | None:
    """The bioindex server's HTTP client, or None when no BioindexUrl is configured."""
    url = env("BIOINDEX_URL")
    if not url:
        return None
    secret_arn = env("BIOINDEX_TOKEN_SECRET_ARN")
    return BioindexServer(
        url,
        token=secret(secret_arn) if secret_arn else None,
        set_path=env("BIOINDEX_SET_PATH") or BioindexServer.set_path,
        allow_insecure=env("ALLOW_INSECURE_BIOINDEX", "false").lower() == "true",
        backoff_seconds=float(env("BIOINDEX_RETRY_BASE_SECONDS", "1")),
    )


def backend(secret: SecretReader, bioindex: BioindexServer | None, receipts: Receipts | None) -> FlagBackend:
    """The flag backend the stack chose (FlagBackend). `receipts` is needed only to set the flag
    over HTTP; a reader of the flag passes None."""
    kind = env(BACKEND_VARIABLE, "mysql")
    if kind == "mysql":
        secret_arn = env("BIOINDEX_DB_SECRET_ARN")
        if not secret_arn:
            raise ValueError("FlagBackend=mysql needs BioindexDatabaseSecretArn (the bioindex's RDS secret)")
        return MysqlBackend.from_secret(json.loads(secret(secret_arn)), env("BIOINDEX_DB_SCHEMA", "bio"))
    if kind == "http":
        if bioindex is None:
            raise ValueError("FlagBackend=http needs BioindexUrl")
        return HttpBackend(bioindex, receipts)
    raise ValueError(f"{BACKEND_VARIABLE} must be one of {BACKENDS}, got {kind!r}")
