"""The `mysql` flag backend: the bioindex's own `__Indexes` table, as today's bioindex sets it.

The flag is changed in one transaction that locks the one row of (name, prefix), updates it by id
and reads it back by id, so exactly that row flipped or nothing did. The connection uses the
bioindex's login (connect.database_login) and schema name, over TLS that verifies the server's
certificate and host name unless the stack says BioindexDatabaseTls=off.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator

import pymysql

from batch_job.bioindex.backend import SAMPLE_CANDIDATES, FlagChange
from batch_job.bioindex.errors import (
    AmbiguousIndex,
    BioindexRejected,
    BioindexUnavailable,
    CannotSample,
    DatabaseNeedsTls,
    FlagChanged,
    FlagNotReadBack,
    IndexNotBuilt,
    NestedPrefix,
    RebuiltFromCompressed,
    UnknownIndex,
)
from batch_job.bioindex.rows import IndexRow, query_columns
from batch_job.records import Flag, PlannedFile

ER_ACCESS_DENIED = 1045
ER_SECURE_TRANSPORT_REQUIRED = 3159  # MySQL (RDS) with require_secure_transport=ON; MariaDB says 1045
COLUMNS = "`id`, `name`, `prefix`, `schema`, `table`, `built`, `compressed`"
_TABLE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _row(values: tuple) -> IndexRow:
    id_, name, prefix, schema, table, built, compressed = values
    return IndexRow(id_, name, prefix, schema, table, None if built is None else str(built), bool(compressed))


def _overlap(a: str, b: str) -> str:
    if a == b:
        return "is the same prefix as"
    return "lies inside" if a.startswith(b) else "contains"


class MysqlBackend:
    name = "mysql"

    def __init__(self, connect: Callable[[], pymysql.connections.Connection], plain: bool = False) -> None:
        self._connect = connect
        self.plain = plain  # BioindexDatabaseTls=off

    @classmethod
    def from_secret(cls, secret: dict, schema: str, tls: ssl.SSLContext | None, timeout: int = 10) -> MysqlBackend:
        """`secret`: username, password, host, port (connect.database_login). `tls`: the verifying
        context, or None for plain TCP - not PyMySQL's default of unverified TLS when offered."""

        def connect() -> pymysql.connections.Connection:
            return pymysql.connect(
                host=secret["host"],
                port=int(secret.get("port") or 3306),
                user=secret["username"],
                password=secret["password"],
                database=schema,
                ssl=tls,
                ssl_disabled=tls is None,
                connect_timeout=timeout,
                read_timeout=60,
                write_timeout=60,
                autocommit=False,
                charset="utf8mb4",
            )

        return cls(connect, plain=tls is None)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[pymysql.cursors.Cursor]:
        """One transaction: committed when the block ends, rolled back on any error. A lost or
        refused connection is BioindexUnavailable (the state retries), an SQL error is final."""
        try:
            conn = self._connect()
        except pymysql.err.MySQLError as exc:
            code, reason = exc.args[0] if exc.args else None, str(exc.args[-1]) if exc.args else str(exc)
            if code == ER_SECURE_TRANSPORT_REQUIRED:
                raise DatabaseNeedsTls(
                    f"the bioindex database requires TLS ({reason}): deploy with BioindexDatabaseTls=verify-full "
                    "and BioindexDatabaseCaBundle"
                ) from exc
            if "CERTIFICATE_VERIFY_FAILED" in reason:
                raise DatabaseNeedsTls(
                    f"the bioindex database's certificate does not verify against BioindexDatabaseCaBundle, or not "
                    f"for this host name ({reason}): give the bundle of the CA that signed it (for RDS, the global "
                    "bundle), and the host name the certificate names"
                ) from exc
            if code == ER_ACCESS_DENIED:
                plain = (
                    "; with BioindexDatabaseTls=off this is also how MariaDB refuses a plain connection when it "
                    "requires TLS: then deploy with BioindexDatabaseTls=verify-full"
                    if self.plain
                    else ""
                )
                raise BioindexRejected(
                    f"the bioindex database refused the login ({reason}): check BioindexDatabaseSecretArn{plain}"
                ) from exc
            raise BioindexUnavailable(f"cannot connect to the bioindex database: {reason}") from exc
        try:
            with conn.cursor() as cursor:
                yield cursor
            conn.commit()
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise BioindexUnavailable(f"the bioindex database connection failed: {exc.args[-1]}") from exc
        except pymysql.err.MySQLError as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise BioindexRejected(f"the bioindex database refused a statement: {exc.args[-1]}") from exc
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    @staticmethod
    def _every(cur: pymysql.cursors.Cursor) -> list[IndexRow]:
        cur.execute(f"SELECT {COLUMNS} FROM `__Indexes`")
        return [_row(r) for r in cur.fetchall()]

    def _the_row(self, cur: pymysql.cursors.Cursor, rows: list[IndexRow], index: str, prefix: str) -> IndexRow:
        """The one row of (index, prefix) among `rows`; else a refusal that says what there is."""
        if len(rows) > 1:
            found = ", ".join(f"id {r.id} (arity {r.arity}, schema {r.schema!r})" for r in rows)
            raise AmbiguousIndex(
                f"__Indexes has {len(rows)} rows for index {index!r} prefix {prefix!r}: {found}; "
                "the bioindex sets the flag of all of them at once, so refusing: give each its own prefix"
            )
        if rows:
            return rows[0]
        every = self._every(cur)
        same_name = sorted({r.prefix for r in every if r.name == index})
        owners = sorted({r.name for r in every if r.prefix == prefix})
        if same_name:
            hint = f"index {index!r} has prefix {', '.join(map(repr, same_name))}"
        elif owners:
            hint = f"no index is named {index!r}"
        else:
            hint = f"no index is named {index!r} and no index has that prefix"
        if owners:
            hint += f"; prefix {prefix!r} belongs to index {', '.join(map(repr, owners))}"
        raise UnknownIndex(f"the bioindex has no index {index!r} with prefix {prefix!r}: {hint}")

    def indexes(self) -> list[IndexRow]:
        with self._transaction() as cur:
            return self._every(cur)

    def preflight(self, index: str, prefix: str, key_prefix: str, rollback: bool) -> IndexRow:
        with self._transaction() as cur:
            every = self._every(cur)
            row = self._the_row(cur, [r for r in every if (r.name, r.prefix) == (index, prefix)], index, prefix)
            if not row.is_built:
                raise IndexNotBuilt(
                    f"index {index!r} prefix {prefix!r} (__Indexes id {row.id}) is not built (built={row.built}); "
                    "build it with the bioindex CLI first, so that it serves the answers a run must keep"
                )
            overlapping = [
                r for r in every if r.id != row.id and (r.prefix.startswith(prefix) or prefix.startswith(r.prefix))
            ]
            if overlapping:
                found = "; ".join(
                    f"index {r.name!r} prefix {r.prefix!r} {_overlap(r.prefix, prefix)} it" for r in overlapping
                )
                raise NestedPrefix(
                    f"prefix {prefix!r} of index {index!r} overlaps other indexes: {found}; converting it would change "
                    "files those indexes read while their flags stay as they are, so refusing"
                )
            if rollback:
                cur.execute("SELECT `key` FROM `__Keys` WHERE `index` = %s AND `key` LIKE %s", (index, "%.json.gz"))
                compressed_keys = [k for (k,) in cur.fetchall() if k.startswith(key_prefix)]
                if compressed_keys:
                    raise RebuiltFromCompressed(
                        f"index {index!r} was built from {len(compressed_keys)} .json.gz objects "
                        f"(__Keys, e.g. {compressed_keys[0]!r}): its offsets point into the compressed files, so after "
                        "a rollback every query would fail until it is re-indexed. Keep it compressed; or take it "
                        "out of service, roll back, and re-index it from the restored .json files"
                    )
        return row

    def set_flag(self, index: str, prefix: str, compressed: bool) -> FlagChange:
        with self._transaction() as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM `__Indexes` WHERE `name` = %s AND `prefix` = %s FOR UPDATE", (index, prefix)
            )
            before = self._the_row(cur, [_row(r) for r in cur.fetchall()], index, prefix)
            cur.execute("UPDATE `__Indexes` SET `compressed` = %s WHERE `id` = %s", (int(compressed), before.id))
            cur.execute(f"SELECT {COLUMNS} FROM `__Indexes` WHERE `id` = %s", (before.id,))
            found = cur.fetchone()
            after = _row(found) if found else None
            if after is None or (after.name, after.prefix, after.compressed) != (index, prefix, compressed):
                raise FlagNotReadBack(
                    f"__Indexes id {before.id} does not read back as {index!r} {prefix!r} "
                    f"compressed={str(compressed).lower()} after the update; rolled back"
                )
        return FlagChange(after, before.compressed)

    def check_unchanged(self, flag: Flag) -> None:
        row_id = (flag.row or {}).get("id")
        with self._transaction() as cur:
            cur.execute(f"SELECT {COLUMNS} FROM `__Indexes` WHERE `id` = %s", (row_id,))
            found = cur.fetchone()
        now = _row(found) if found else None
        if now is None or (now.name, now.prefix, now.compressed) != (flag.index, flag.prefix, flag.compressed):
            seen = (
                "is gone"
                if now is None
                else f"now says {now.name!r} {now.prefix!r} compressed={str(now.compressed).lower()}"
            )
            raise FlagChanged(
                f"__Indexes id {row_id} {seen}, but flag.json recorded {flag.index!r} {flag.prefix!r} "
                f"compressed={str(flag.compressed).lower()}: someone changed it since "
                "(the bioindex does not record who)"
            )

    def sample_queries(
        self, row: IndexRow, files: list[PlannedFile], count: int
    ) -> tuple[PlannedFile, list[list[str]], bool]:
        columns = query_columns(row.schema)
        if not row.table or set(row.table) - _TABLE_CHARS:
            raise CannotSample(f"index table name {row.table!r} of {row.name!r} is not a plain table name")
        selected = ", ".join(f"t.`{c}`" for c in columns.table_columns)
        sql = (
            f"SELECT DISTINCT {selected} FROM `{row.table}` t JOIN `__Keys` k ON k.`id` = t.`key` "
            "WHERE k.`index` = %s AND k.`key` = %s LIMIT %s"
        )
        candidates = sorted(files, key=lambda f: (f.size, f.key))[:SAMPLE_CANDIDATES]
        with self._transaction() as cur:
            for planned in candidates:
                cur.execute(sql, (row.name, planned.original, count))
                found = cur.fetchall()
                if found:
                    return planned, [columns.query(values) for values in found], True
        raise CannotSample(
            f"none of the {len(candidates)} smallest planned files has rows in index table {row.table!r}: the index "
            "was not built from these files. Re-index it, or deploy with ReaderCheckSamples=0 (no reader proof)"
        )
