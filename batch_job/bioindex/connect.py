"""The bioindex connection from the environment the stack gives the Lambdas and the Batch jobs.

One reading of the settings for both, so that the delete jobs re-read the flag exactly where the
Lambdas set it. Secrets (the database's RDS-format secret, the HTTP bearer token) come through
`secret`, the caller's Secrets Manager reader, and are never logged.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
from collections.abc import Callable

import boto3
from botocore.exceptions import ClientError

from batch_job.bioindex.backend import FlagBackend
from batch_job.bioindex.errors import DatabaseNotConfigured
from batch_job.bioindex.http_flag import HttpBackend
from batch_job.bioindex.mysql import MysqlBackend
from batch_job.bioindex.server import BioindexServer
from batch_job.runfolder import Receipts

BACKENDS = ("mysql", "http")
TLS_MODES = ("verify-full", "off")
RDS_CA_BUNDLE = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
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


def database_login(secret_text: str) -> dict:
    """username, password, host and port, from the database secret: the bioindex's own (the RDS
    console's format: username, password, host, port, ...) or an RDS-managed master user secret
    (username and password only) with BioindexDatabaseHost and BioindexDatabasePort, which win."""
    fix = (
        "BioindexDatabaseSecretArn must be the bioindex's RDS secret (username, password, host, port), or an "
        "RDS-managed secret with BioindexDatabaseHost"
    )
    try:
        secret = json.loads(secret_text)
    except ValueError:
        secret = None
    if not isinstance(secret, dict):
        raise DatabaseNotConfigured(f"the database secret is not a JSON object: {fix}")
    missing = [name for name in ("username", "password") if not secret.get(name)]
    if missing:
        raise DatabaseNotConfigured(f"the database secret has no {' or '.join(missing)}: {fix}")
    host = env("BIOINDEX_DB_HOST") or secret.get("host")
    if not host:
        raise DatabaseNotConfigured(
            "the database secret has no host (an RDS-managed secret holds only username and password): "
            "deploy with BioindexDatabaseHost (and BioindexDatabasePort if not 3306)"
        )
    port = env("BIOINDEX_DB_PORT") or secret.get("port") or 3306
    try:
        port = int(port)
    except ValueError:
        raise DatabaseNotConfigured(f"the database port {port!r} is not a number") from None
    return {"username": secret["username"], "password": secret["password"], "host": host, "port": port}


@functools.cache
def _ca_bundle(uri: str) -> str:
    """The CA bundle's text from S3, read once per process."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise DatabaseNotConfigured(f"BioindexDatabaseCaBundle must be s3://BUCKET/KEY, got {uri!r}")
    try:
        text = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except (ClientError, UnicodeDecodeError) as exc:
        raise DatabaseNotConfigured(f"cannot read BioindexDatabaseCaBundle {uri}: {exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise DatabaseNotConfigured(f"BioindexDatabaseCaBundle {uri} holds no PEM certificate")
    return text


def database_tls() -> ssl.SSLContext | None:
    """TLS to the database (BioindexDatabaseTls): verify-full, the default, checks the server's
    certificate against BioindexDatabaseCaBundle and its host name; off is plain TCP."""
    mode = env("BIOINDEX_DB_TLS", "verify-full")
    if mode == "off":
        return None
    if mode != "verify-full":
        raise DatabaseNotConfigured(f"BioindexDatabaseTls must be one of {TLS_MODES}, got {mode!r}")
    uri = env("BIOINDEX_DB_CA_BUNDLE")
    if not uri:
        raise DatabaseNotConfigured(
            "BioindexDatabaseTls=verify-full needs BioindexDatabaseCaBundle: upload the RDS CA bundle "
            f"({RDS_CA_BUNDLE}) to S3 and give its s3:// URI, or deploy with BioindexDatabaseTls=off"
        )
    return ssl.create_default_context(cadata=_ca_bundle(uri))  # that bundle only; the host name checked


def backend(secret: SecretReader, bioindex: BioindexServer | None, receipts: Receipts | None) -> FlagBackend:
    """The flag backend the stack chose (FlagBackend). `receipts` is needed only to set the flag
    over HTTP; a reader of the flag passes None."""
    kind = env(BACKEND_VARIABLE, "mysql")
    if kind == "mysql":
        secret_arn = env("BIOINDEX_DB_SECRET_ARN")
        if not secret_arn:
            raise DatabaseNotConfigured("FlagBackend=mysql needs BioindexDatabaseSecretArn (the bioindex's RDS secret)")
        login = database_login(secret(secret_arn))
        return MysqlBackend.from_secret(login, env("BIOINDEX_DB_SCHEMA", "bio"), tls=database_tls())
    if kind == "http":
        if bioindex is None:
            raise ValueError("FlagBackend=http needs BioindexUrl")
        return HttpBackend(bioindex, receipts)
    raise ValueError(f"{BACKEND_VARIABLE} must be one of {BACKENDS}, got {kind!r}")
