"""The bioindex connection as the stack configures it, from the Lambdas' environment.

Secrets (the database's RDS-format secret, the HTTP bearer token) are read from Secrets Manager
through Powertools' cache and never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from aws_lambda_powertools.utilities import parameters

from batch_job.locations import parse_location
from batch_job.records import RefreshMode
from batch_job.runfolder import Receipts

from .backend import FlagBackend
from .http_flag import HttpBackend
from .mysql import MysqlBackend
from .server import BioindexServer

BACKENDS = ("mysql", "http")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def s3_subdir() -> str:
    """The bioindex's BIOINDEX_S3_SUBDIR: its prefixes are keys under it in the data bucket."""
    return _env("BIOINDEX_S3_SUBDIR").strip("/")


def server() -> BioindexServer | None:
    """The bioindex server's HTTP client, or None when no BioindexUrl is configured."""
    url = _env("BIOINDEX_URL")
    if not url:
        return None
    secret_arn = _env("BIOINDEX_TOKEN_SECRET_ARN")
    return BioindexServer(
        url,
        token=parameters.get_secret(secret_arn, max_age=300) if secret_arn else None,
        set_path=_env("BIOINDEX_SET_PATH") or BioindexServer.set_path,
        allow_insecure=_env("ALLOW_INSECURE_BIOINDEX", "false").lower() == "true",
        backoff_seconds=float(_env("BIOINDEX_RETRY_BASE_SECONDS", "1")),
    )


def receipts() -> Receipts:
    return Receipts(parse_location(f"s3://{_env('RUN_BUCKET')}/receipts/"))


def backend(bioindex: BioindexServer | None) -> FlagBackend:
    kind = _env("BIOINDEX_FLAG_BACKEND", "mysql")
    if kind == "mysql":
        secret_arn = _env("BIOINDEX_DB_SECRET_ARN")
        if not secret_arn:
            raise ValueError("FlagBackend=mysql needs BioindexDatabaseSecretArn (the bioindex's RDS secret)")
        secret = parameters.get_secret(secret_arn, transform="json", max_age=300)
        return MysqlBackend.from_secret(secret, _env("BIOINDEX_DB_SCHEMA", "bio"))
    if kind == "http":
        if bioindex is None:
            raise ValueError("FlagBackend=http needs BioindexUrl")
        return HttpBackend(bioindex, receipts())
    raise ValueError(f"BIOINDEX_FLAG_BACKEND must be one of {BACKENDS}, got {kind!r}")


@dataclass(frozen=True)
class ReaderCheck:
    """How hard ProveReaders looks: sample queries, refreshes, and requests per sample after the canary."""

    samples: int
    refresh_requests: int
    check_requests: int


def reader_check() -> ReaderCheck:
    return ReaderCheck(
        samples=int(_env("READER_CHECK_SAMPLES", "4")),
        refresh_requests=int(_env("READER_REFRESH_REQUESTS", "64")),
        check_requests=int(_env("READER_CHECK_REQUESTS", "16")),
    )


@dataclass(frozen=True)
class ReaderRefresh:
    """How the bioindex processes are made to load a changed flag (the stack's ReaderRefresh), and
    the bounds of the wait: ECS deployments polled every `poll_seconds` until `timeout_seconds`,
    an operator's confirmation awaited at most `confirm_timeout_seconds`."""

    mode: RefreshMode
    ecs_cluster: str = ""
    ecs_services: tuple[str, ...] = ()
    poll_seconds: int = 30
    timeout_seconds: int = 3600
    confirm_timeout_seconds: int = 86400
    burst: int = 8  # requests mode: GETs in flight at once

    def state(self) -> dict:
        """What the state machine's refresh states read from Plan's result."""
        return {
            "mode": self.mode.value,
            "pollSeconds": self.poll_seconds,
            "confirmTimeoutSeconds": self.confirm_timeout_seconds,
        }


def reader_refresh() -> ReaderRefresh:
    mode = _env("READER_REFRESH", RefreshMode.CONFIRM.value)
    try:
        refresh_mode = RefreshMode(mode)
    except ValueError:
        raise ValueError(f"READER_REFRESH must be one of {[m.value for m in RefreshMode]}, got {mode!r}") from None
    return ReaderRefresh(
        mode=refresh_mode,
        ecs_cluster=_env("BIOINDEX_ECS_CLUSTER"),
        ecs_services=tuple(s.strip() for s in _env("BIOINDEX_ECS_SERVICES").split(",") if s.strip()),
        poll_seconds=int(_env("READER_REFRESH_POLL_SECONDS", "30")),
        timeout_seconds=int(_env("READER_REFRESH_TIMEOUT_SECONDS", "3600")),
        confirm_timeout_seconds=int(_env("READER_CONFIRM_TIMEOUT_SECONDS", "86400")),
    )


def notify_topic() -> str:
    """The SNS topic run notifications go to, if the stack has one."""
    return _env("NOTIFY_TOPIC_ARN")
