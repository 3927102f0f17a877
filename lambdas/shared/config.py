"""The Lambdas' settings, from the environment the stack gives them: the bioindex connection
(`batch_job.bioindex.connect`, with secrets through Powertools' cache), the reader check and refresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools.utilities import parameters

from batch_job.bioindex import connect
from batch_job.bioindex.backend import FlagBackend
from batch_job.bioindex.server import BioindexServer
from batch_job.locations import parse_location
from batch_job.records import RefreshMode
from batch_job.runfolder import Receipts, receipts_uri


def _env(name: str, default: str = "") -> str:
    return connect.env(name, default)


def secret(arn: str) -> str:
    """A secret's string, cached for five minutes across invocations (Powertools)."""
    return parameters.get_secret(arn, max_age=300)


def s3_subdir() -> str:
    """The bioindex's BIOINDEX_S3_SUBDIR: its prefixes are keys under it in the data bucket."""
    return _env("BIOINDEX_S3_SUBDIR").strip("/")


def server() -> BioindexServer | None:
    """The bioindex server's HTTP client, or None when no BioindexUrl is configured."""
    return connect.server(secret)


def receipts() -> Receipts:
    return Receipts(parse_location(receipts_uri(_env("RUN_BUCKET"))))


def backend(bioindex: BioindexServer | None) -> FlagBackend:
    return connect.backend(secret, bioindex, receipts())


@dataclass(frozen=True)
class ReaderCheckSettings:
    """How hard ProveReaders looks: how many sample queries, refreshes, and requests per query after the canary."""

    queries: int
    refresh_requests: int
    check_requests: int


def reader_check_settings() -> ReaderCheckSettings:
    return ReaderCheckSettings(
        queries=int(_env("READER_CHECK_SAMPLES", "4")),
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
