"""The mysql flag backend against a real MariaDB holding the bioindex's tables."""

from __future__ import annotations

import ssl
import uuid

import pymysql
import pytest

from batch_job.bioindex.errors import BioindexUnavailable, CannotSample, FlagChanged, IndexNotBuilt, UnknownIndex
from batch_job.bioindex.mysql import MysqlBackend
from batch_job.records import Flag, PlannedFile
from offline.bioindex_db import BioindexDatabase
from offline.sample_index import gwas_lines

SCHEMA = "phenotype,chromosome:position"


@pytest.fixture
def db(mariadb):
    name = f"bio{uuid.uuid4().hex[:8]}"
    database = BioindexDatabase(mariadb.url(mariadb.create_schema(name)))
    database.create_tables()
    database.schema_name = name
    return database


@pytest.fixture
def backend(db, mariadb):
    return MysqlBackend.from_secret(
        mariadb.secret(), db.schema_name, tls=ssl.create_default_context(cadata=mariadb.ca_pem)
    )


def test_sets_exactly_the_one_row_and_reads_it_back(db, backend):
    ours = db.add_index("genes", "genes/", "gene")
    db.add_index("genes", "genes-by-build/", "gene,build")
    change = backend.set_flag("genes", "genes/", True)
    assert (change.row.id, change.row.compressed, change.before) == (ours, True, False)
    assert change.row.receipt()["arity"] == 1
    assert db.compressed("genes", "genes/") is True
    assert db.compressed("genes", "genes-by-build/") is False
    with pytest.raises(UnknownIndex, match="index 'genes' has prefix 'genes-by-build/', 'genes/'"):
        backend.set_flag("genes", "other/", True)


def test_a_connection_lost_at_commit_changes_nothing(db, backend, monkeypatch):
    db.add_index("genes", "genes/", "gene")
    commit = pymysql.connections.Connection.commit

    def lose_the_connection(conn):
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            (mine,) = cur.fetchone()
        other = db.connect()
        with other.cursor() as cur:
            cur.execute(f"KILL CONNECTION {int(mine)}")
        other.close()
        return commit(conn)

    monkeypatch.setattr(pymysql.connections.Connection, "commit", lose_the_connection)
    with pytest.raises(BioindexUnavailable, match="connection failed"):
        backend.set_flag("genes", "genes/", True)
    monkeypatch.undo()
    assert db.compressed("genes", "genes/") is False, "the update died with its transaction"
    assert backend.set_flag("genes", "genes/", True).row.compressed is True


def test_an_unreachable_database_is_unavailable(mariadb, db):
    secret = {**mariadb.secret(), "port": 1}
    with pytest.raises(BioindexUnavailable, match="cannot connect"):
        MysqlBackend.from_secret(secret, db.schema_name, tls=None, timeout=2).preflight(
            "genes", "genes/", "genes/", False
        )


def test_a_zero_date_means_never_built(db, backend):
    row_id = db.add_index("genes", "genes/", "gene")
    db.run("SET SESSION sql_mode = ''")
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("UPDATE `__Indexes` SET `built` = '0000-00-00 00:00:00' WHERE `id` = %s", (row_id,))
    conn.commit()
    conn.close()
    with pytest.raises(IndexNotBuilt, match="0000-00-00"):
        backend.preflight("genes", "genes/", "genes/", rollback=False)


def test_check_unchanged_reads_the_row_by_id(db, backend):
    db.add_index("genes", "genes/", "gene")
    change = backend.set_flag("genes", "genes/", True)
    flag = Flag("genes", "genes/", True, "", backend="mysql", row=change.row.receipt())
    backend.check_unchanged(flag)
    db.set_compressed("genes", "genes/", False)
    with pytest.raises(FlagChanged, match="now says 'genes' 'genes/' compressed=false"):
        backend.check_unchanged(flag)


def test_samples_come_from_the_smallest_file_with_rows(db, backend):
    db.add_index("associations", "associations/", SCHEMA)
    big, small = gwas_lines(60_000, 1, "T2D"), gwas_lines(9_000, 2, "BMI")
    db.build("associations", 2, [("associations/a.json", "e1", big), ("associations/b.json", "e2", small)])
    files = [
        PlannedFile("associations/a.json", len(big), "e1", 0),
        PlannedFile("associations/b.json", len(small), "e2", 0),
        PlannedFile("associations/unindexed.json", 10, "e3", 0),
    ]
    row = backend.preflight("associations", "associations/", "associations/", rollback=False)
    canary, queries, tied = backend.sample_queries(row, files, 3)
    assert canary.key == "associations/b.json" and tied
    assert len(queries) == 3 and all(q[0] == "BMI" and q[1].count(":") == 1 for q in queries)
    with pytest.raises(CannotSample, match="not built from these files"):
        backend.sample_queries(row, files[2:], 3)
