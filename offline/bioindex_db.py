"""The bioindex's tables, for the stand-in: the real `__Indexes` and `__Keys` definitions and index
tables, in MariaDB (the tests) or SQLite (`make demo`), and a small indexer that fills them the
way the bioindex CLI `index` does - one row per run of records with the same key, holding the
uncompressed byte offsets of that run in its S3 object.

Written from the bioindex's behaviour as read and measured (its table definitions, its CLI's
`index` and `update-compressed-status`), not copied from its code.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import pymysql

DEFAULT_STEP = 20_000

MARIADB_TABLES = [
    """CREATE TABLE IF NOT EXISTS `__Indexes` (
        `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        `name` VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin,
        `table` VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin,
        `prefix` VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin,
        `schema` VARCHAR(200) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin,
        `built` DATETIME NULL,
        `compressed` BOOLEAN NOT NULL DEFAULT 0,
        `arity` INT AS (LENGTH(`schema`) - LENGTH(REPLACE(`schema`, ',', '')) + 1) VIRTUAL,
        INDEX `ix___Indexes_name` (`name`),
        UNIQUE INDEX `name_arity_idx` (`name`, `arity`)
    )""",
    """CREATE TABLE IF NOT EXISTS `__Keys` (
        `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        `index` VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        `key` VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        `version` VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        `built` DATETIME NULL,
        UNIQUE INDEX `key_idx` (`index`, `key`)
    )""",
]

SQLITE_TABLES = [
    """CREATE TABLE IF NOT EXISTS `__Indexes` (
        `id` INTEGER PRIMARY KEY AUTOINCREMENT, `name` TEXT, `table` TEXT, `prefix` TEXT, `schema` TEXT,
        `built` TEXT NULL, `compressed` INTEGER NOT NULL DEFAULT 0,
        `arity` INTEGER AS (LENGTH(`schema`) - LENGTH(REPLACE(`schema`, ',', '')) + 1),
        UNIQUE (`name`, `arity`)
    )""",
    """CREATE TABLE IF NOT EXISTS `__Keys` (
        `id` INTEGER PRIMARY KEY AUTOINCREMENT, `index` TEXT NOT NULL, `key` TEXT NOT NULL,
        `version` TEXT NOT NULL, `built` TEXT NULL, UNIQUE (`index`, `key`)
    )""",
]


@dataclass(frozen=True)
class Schema:
    """A bioindex schema of plain key columns, optionally ending in a `chromosome:position` locus."""

    text: str

    @property
    def columns(self) -> list[str]:
        return [c.strip() for c in self.text.split(";")[0].split(",")]

    @property
    def keys(self) -> list[str]:
        return [c for c in self.columns if ":" not in c]

    @property
    def locus(self) -> tuple[str, str] | None:
        last = self.columns[-1]
        return tuple(last.split(":", 1)) if ":" in last else None

    @property
    def step(self) -> int:
        return int(self.text.split(";locus_step=")[1]) if ";locus_step=" in self.text else DEFAULT_STEP

    @property
    def arity(self) -> int:
        return len(self.columns)

    def row_key(self, record: dict) -> tuple:
        """The index-table values of a record: its key columns, then chromosome and bucketed position."""
        values = tuple(str(record[k]) for k in self.keys)
        if self.locus:
            chromosome, position = self.locus
            values += (str(record[chromosome]), int(record[position]) // self.step * self.step)
        return values

    @property
    def table_columns(self) -> list[str]:
        return self.keys + (["chromosome", "position"] if self.locus else [])


class BioindexDatabase:
    """`mysql://user:password@host:port/schema[?ssl_ca=CA.pem]` (PyMySQL; with ssl_ca over TLS,
    verifying the server against that CA) or `sqlite:///path`.

    `keep_connection`: one connection for every statement, as a server process keeps its pool's
    (the stand-in's workers; one thread each); otherwise a connection per statement."""

    def __init__(self, url: str, *, keep_connection: bool = False) -> None:
        self.url = url
        parts = urlsplit(url)
        self.sqlite = parts.scheme == "sqlite"
        if not self.sqlite and parts.scheme != "mysql":
            raise ValueError(f"unsupported database URL {url!r}")
        self._parts = parts
        self._keep = keep_connection
        self._kept = None

    def connect(self):
        if self.sqlite:
            return sqlite3.connect(self._parts.path, timeout=30)
        p = self._parts
        ca = parse_qs(p.query).get("ssl_ca")
        return pymysql.connect(
            host=p.hostname,
            port=p.port or 3306,
            user=unquote(p.username or ""),
            password=unquote(p.password or ""),
            database=p.path.lstrip("/"),
            ssl=ssl.create_default_context(cafile=ca[0]) if ca else None,
            autocommit=False,
        )

    def run(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        """One statement in its own transaction; `%s` placeholders in both dialects."""
        if self.sqlite:
            sql = sql.replace("%s", "?")
        with self._connection() as conn:
            cur = conn.cursor()
            cur.execute(sql, tuple(params))
            rows = list(cur.fetchall()) if cur.description else []
            conn.commit()
            return rows

    @contextlib.contextmanager
    def _connection(self) -> Iterator:
        if not self._keep:
            conn = self.connect()
            try:
                yield conn
            finally:
                conn.close()
            return
        if self._kept is None:
            self._kept = self.connect()
        elif not self.sqlite:
            self._kept.ping(reconnect=True)  # a server that restarted, or a connection it timed out
        try:
            yield self._kept
        except BaseException:
            self._kept.close()
            self._kept = None
            raise

    def create_tables(self) -> None:
        for ddl in SQLITE_TABLES if self.sqlite else MARIADB_TABLES:
            self.run(ddl)

    def add_index(self, name: str, prefix: str, schema: str, *, built: bool = True, compressed: bool = False) -> int:
        table = f"{name.replace('-', '_')}_{Schema(schema).arity}"
        self.run(
            "INSERT INTO `__Indexes` (`name`, `table`, `prefix`, `schema`, `built`, `compressed`) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (name, table, prefix, schema, "2026-11-01 00:00:00" if built else None, int(compressed)),
        )
        return self.row_id(name, prefix)

    def row_id(self, name: str, prefix: str) -> int:
        """The `__Indexes` row of (name, prefix); the last added where a test added it twice."""
        query = "SELECT `id` FROM `__Indexes` WHERE `name` = %s AND `prefix` = %s ORDER BY `id`"
        return self.run(query, (name, prefix))[-1][0]

    def index_row(self, name: str, arity: int) -> dict | None:
        rows = self.run(
            "SELECT `id`, `name`, `table`, `prefix`, `schema`, `built`, `compressed` FROM `__Indexes` "
            "WHERE `name` = %s AND `arity` = %s",
            (name, arity),
        )
        if not rows:
            return None
        keys = ("id", "name", "table", "prefix", "schema", "built", "compressed")
        return dict(zip(keys, rows[0], strict=True))

    def indexes(self) -> list[dict]:
        keys = ("id", "name", "table", "prefix", "schema", "built", "compressed")
        rows = self.run("SELECT `id`, `name`, `table`, `prefix`, `schema`, `built`, `compressed` FROM `__Indexes`")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def compressed(self, name: str, prefix: str) -> bool | None:
        rows = self.run("SELECT `compressed` FROM `__Indexes` WHERE `name` = %s AND `prefix` = %s", (name, prefix))
        return None if not rows else bool(rows[0][0])

    def set_compressed(self, name: str, prefix: str, compressed: bool) -> None:
        """What the bioindex CLI `update-compressed-status` runs."""
        self.run(
            "UPDATE `__Indexes` SET `compressed` = %s WHERE `name` = %s AND `prefix` = %s",
            (int(compressed), name, prefix),
        )

    def build(self, name: str, arity: int, objects: list[tuple[str, str, bytes]]) -> int:
        """Index (key, etag, content) objects for (name, arity) as the bioindex CLI does; returns rows."""
        row = self.index_row(name, arity)
        schema = Schema(row["schema"])
        table = row["table"]
        ident = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.sqlite else "INT NOT NULL AUTO_INCREMENT PRIMARY KEY"
        columns = "".join(f", `{c}` {'INTEGER' if c == 'position' else 'VARCHAR(200)'}" for c in schema.table_columns)
        self.run(f"DROP TABLE IF EXISTS `{table}`")
        self.run(
            f"CREATE TABLE `{table}` (`id` {ident}, `key` INTEGER NOT NULL, "
            f"`start_offset` BIGINT NOT NULL, `end_offset` BIGINT NOT NULL{columns})"
        )
        self.run("DELETE FROM `__Keys` WHERE `index` = %s", (name,))
        count = 0
        conn = self.connect()
        mark = "?" if self.sqlite else "%s"
        insert = (
            f"INSERT INTO `{table}` (`key`, `start_offset`, `end_offset`, "
            + ", ".join(f"`{c}`" for c in schema.table_columns)
            + ") VALUES ("
            + ", ".join([mark] * (3 + len(schema.table_columns)))
            + ")"
        )
        try:
            cur = conn.cursor()
            for key, etag, content in objects:
                values = ", ".join([mark] * 4)
                cur.execute(
                    f"INSERT INTO `__Keys` (`index`, `key`, `version`, `built`) VALUES ({values})",
                    (name, key, etag[:32], "2026-11-01 00:00:00"),
                )
                key_id = cur.lastrowid
                for values, start, end in runs(schema, content):
                    cur.execute(insert, (key_id, start, end, *values))
                    count += 1
            cur.execute(
                f"UPDATE `__Indexes` SET `built` = {mark} WHERE `name` = {mark} AND `arity` = {mark}",
                ("2026-11-01 00:00:00", name, arity),
            )
            conn.commit()
        finally:
            conn.close()
        return count


def runs(schema: Schema, content: bytes) -> Iterator[tuple[tuple, int, int]]:
    """(row values, start offset, end offset) of each run of consecutive records with equal values."""
    current, start, offset = None, 0, 0
    for line in content.splitlines(keepends=True):
        values = schema.row_key(json.loads(line))
        if values != current:
            if current is not None:
                yield current, start, offset
            current, start = values, offset
        offset += len(line)
    if current is not None:
        yield current, start, offset
