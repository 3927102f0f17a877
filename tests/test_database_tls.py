"""TLS to the bioindex database, and its login from either secret format, against the test MariaDB,
which accepts TCP clients only over TLS (require_secure_transport=ON, as RDS MySQL 9.7 by default)
with a certificate for 127.0.0.1 from a CA the tests make."""

from __future__ import annotations

import json
import ssl
import uuid

import boto3
import pymysql
import pytest

from batch_job.bioindex import connect
from batch_job.bioindex.errors import BioindexRejected, DatabaseNeedsTls, DatabaseNotConfigured
from batch_job.bioindex.mysql import MysqlBackend
from offline.bioindex_db import BioindexDatabase
from tests.mariadb import _pem, make_ca
from tests.stacks import INDEX, PREFIX, Deployment, upload_ca_bundle


@pytest.fixture
def schema(mariadb) -> str:
    name = f"tls{uuid.uuid4().hex[:8]}"
    db = BioindexDatabase(mariadb.url(mariadb.create_schema(name)))
    db.create_tables()
    db.add_index("genes", "genes/", "gene")
    return name


def test_verified_tls_reaches_the_database(mariadb, schema):
    tls = ssl.create_default_context(cadata=mariadb.ca_pem)
    assert [r.name for r in MysqlBackend.from_secret(mariadb.secret(), schema, tls=tls).indexes()] == ["genes"]


def test_plain_tcp_is_refused_by_the_database_in_one_line_that_says_what_to_deploy(mariadb, schema):
    """MariaDB refuses it as a login ("Access denied"), final and with the hint; MySQL (RDS) with its
    own error, 3159, mapped as the next test shows."""
    with pytest.raises(BioindexRejected, match=r"refused the login .* requires TLS: then deploy with Bioindex"):
        MysqlBackend.from_secret(mariadb.secret(), schema, tls=None).indexes()


def test_mysqls_own_refusal_of_plain_tcp_says_what_to_deploy():
    def rds_mysql_9_7():  # what PyMySQL raises for MySQL's ER_SECURE_TRANSPORT_REQUIRED
        message = "Connections using insecure transport are prohibited while --require_secure_transport=ON."
        raise pymysql.err.OperationalError(3159, message)

    with pytest.raises(DatabaseNeedsTls, match=r"requires TLS \(Connections using insecure transport .*verify-full"):
        MysqlBackend(rds_mysql_9_7, plain=True).indexes()


def test_a_certificate_from_another_ca_is_refused(mariadb, schema):
    other, _ = make_ca("not the database's CA")
    tls = ssl.create_default_context(cadata=_pem(other).decode())
    with pytest.raises(DatabaseNeedsTls, match="does not verify against BioindexDatabaseCaBundle"):
        MysqlBackend.from_secret(mariadb.secret(), schema, tls=tls).indexes()


def test_a_host_name_the_certificate_does_not_name_is_refused(mariadb, schema):
    tls = ssl.create_default_context(cadata=mariadb.ca_pem)
    with pytest.raises(DatabaseNeedsTls, match="or not for this host name"):
        MysqlBackend.from_secret({**mariadb.secret(), "host": "localhost"}, schema, tls=tls).indexes()


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("not json", "the database secret is not a JSON object"),
        ('["a list"]', "the database secret is not a JSON object"),
        ('{"password": "pw-42", "host": "h"}', "the database secret has no username"),
        (
            '{"username": "u", "password": "pw-42"}',
            "has no host (an RDS-managed secret holds only username and password)",
        ),
        ('{"username": "u", "password": "pw-42", "host": "h", "port": "x"}', "port 'x' is not a number"),
    ],
)
def test_a_secret_that_cannot_make_a_login_is_one_line(monkeypatch, secret, message):
    monkeypatch.delenv("BIOINDEX_DB_HOST", raising=False)
    monkeypatch.delenv("BIOINDEX_DB_PORT", raising=False)
    with pytest.raises(DatabaseNotConfigured, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        connect.database_login(secret)
    assert "\n" not in str(caught.value) and "pw-42" not in str(caught.value), "one line, never the password"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "needs BioindexDatabaseCaBundle: upload the RDS CA bundle (https://truststore.pki.rds.amazonaws.com/"),
        ({"BIOINDEX_DB_CA_BUNDLE": "bucket/key"}, "must be s3://BUCKET/KEY"),
        ({"BIOINDEX_DB_TLS": "on"}, "BioindexDatabaseTls must be one of"),
    ],
)
def test_tls_settings_that_cannot_verify_are_refused(monkeypatch, variables, message):
    monkeypatch.delenv("BIOINDEX_DB_TLS", raising=False)
    monkeypatch.delenv("BIOINDEX_DB_CA_BUNDLE", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DatabaseNotConfigured, match=message.replace("(", r"\(").replace(".", r"\.")):
        connect.database_tls()


def test_a_ca_bundle_object_that_is_missing_or_not_pem_is_refused(offline_aws, monkeypatch):
    s3 = boto3.client("s3")
    uri = upload_ca_bundle(s3, f"ca-{uuid.uuid4().hex[:8]}", "not a certificate")
    monkeypatch.setenv("BIOINDEX_DB_CA_BUNDLE", uri)
    with pytest.raises(DatabaseNotConfigured, match="holds no PEM certificate"):
        connect.database_tls()
    monkeypatch.setenv("BIOINDEX_DB_CA_BUNDLE", uri + ".missing")
    with pytest.raises(DatabaseNotConfigured, match=r"cannot read BioindexDatabaseCaBundle .*NoSuchKey"):
        connect.database_tls()
    monkeypatch.setenv("BIOINDEX_DB_TLS", "off")
    assert connect.database_tls() is None


def test_an_rds_managed_secret_with_the_host_parameters_reaches_the_database(offline_aws, mariadb, schema, monkeypatch):
    """An RDS-managed master user secret holds username and password only; BioindexDatabaseHost and
    BioindexDatabasePort give the rest."""
    managed = {k: mariadb.secret()[k] for k in ("username", "password")}
    for name, value in {
        "BIOINDEX_FLAG_BACKEND": "mysql",
        "BIOINDEX_DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1",
        "BIOINDEX_DB_SCHEMA": schema,
        "BIOINDEX_DB_HOST": "127.0.0.1",
        "BIOINDEX_DB_PORT": str(mariadb.port),
        "BIOINDEX_DB_TLS": "verify-full",
        "BIOINDEX_DB_CA_BUNDLE": upload_ca_bundle(boto3.client("s3"), f"{schema}-config", mariadb.ca_pem),
    }.items():
        monkeypatch.setenv(name, value)
    backend = connect.backend(lambda arn: json.dumps(managed), None, None)
    assert [r.name for r in backend.indexes()] == ["genes"]


def test_plan_refuses_tls_without_a_bundle_before_anything_is_written(offline_aws, tmp_path, mariadb):
    """The template's Rule refuses such a stack; a function configured so anyway (here its
    environment changed after the deploy) refuses at Plan, in one line."""
    d = Deployment(offline_aws, tmp_path, mariadb)
    try:
        lam = d.aws.client("lambda")
        name = d.stack.refs["PlanFunction"]
        variables = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        lam.update_function_configuration(
            FunctionName=name, Environment={"Variables": {**variables, "BIOINDEX_DB_CA_BUNDLE": ""}}
        )
        result = d.run()
        assert result["status"] == "FAILED" and result["error"] == "PlanFailed", result.get("cause")
        assert (
            "DatabaseNotConfigured: BioindexDatabaseTls=verify-full needs BioindexDatabaseCaBundle" in result["cause"]
        )
        assert not d.locks() and d.originals_intact() and d.flag() is False
        assert not any(k.endswith(".gz") for k in d.data_keys())
    finally:
        d.close()


def test_a_whole_run_with_an_rds_managed_secret(offline_aws, tmp_path, mariadb):
    """Lambdas and jobs alike reach the database over verified TLS with the managed secret's login."""
    d = Deployment(offline_aws, tmp_path, mariadb, managed_secret=True)
    try:
        result = d.run()
        assert result["status"] == "SUCCEEDED", result.get("cause")
        assert d.flag(INDEX, PREFIX) is True and not any(k.endswith(".json") for k in d.data_keys())
    finally:
        d.close()
