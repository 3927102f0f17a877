"""A bioindex stand-in on loopback: the two HTTP endpoints the workflow calls, over SQLite.

It keeps the real contract: the `__Indexes` table, an UPDATE by (name, prefix) that answers 200 even
when nothing matched, and a listing without prefixes. Tests can make it fail on purpose.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

SET_PREFIX = "/api/bio/bgcompress/set-compressed/"


class BioindexStandin:
    def __init__(self, token: str | None = None) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute(
            "CREATE TABLE __Indexes (name TEXT, `table` TEXT, prefix TEXT, `schema` TEXT, "
            "built INTEGER, compressed INTEGER, UNIQUE(name, prefix))"
        )
        self.lock = threading.Lock()
        self.token = token
        self.failures: list[int] = []  # statuses to answer with, one per request, before working again
        self.ignore_updates = False  # answer 200 to set-compressed but change nothing
        self.requests: list[str] = []
        self.authorization: list[str | None] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_index(self, name: str, prefix: str, schema: str = "phenotype,varId", compressed: bool = False) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO __Indexes VALUES (?, ?, ?, ?, 1, ?)",
                (name, name.replace("-", "_"), prefix, schema, compressed),
            )

    def compressed(self, name: str, prefix: str) -> bool | None:
        with self.lock:
            row = self.db.execute(
                "SELECT compressed FROM __Indexes WHERE name=? AND prefix=?", (name, prefix)
            ).fetchone()
        return None if row is None else bool(row[0])

    def start(self) -> BioindexStandin:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _start(self) -> bool:
                standin.requests.append(f"{self.command} {self.path}")
                standin.authorization.append(self.headers.get("Authorization"))
                if standin.failures:
                    self._answer(standin.failures.pop(0), b'{"detail": "injected failure"}')
                    return False
                if standin.token and self.headers.get("Authorization") != f"Bearer {standin.token}":
                    self._answer(401, b'{"detail": "Not authenticated"}')
                    return False
                return True

            def do_POST(self) -> None:
                if not self._start():
                    return
                url = urlsplit(self.path)
                if not url.path.startswith(SET_PREFIX):
                    return self._answer(404, b'{"detail": "Not Found"}')
                index, _, value = unquote(url.path[len(SET_PREFIX) :]).rpartition("/")
                prefix = parse_qs(url.query).get("prefix", [""])[0]
                if value not in ("true", "false") or not index:
                    return self._answer(422, b'{"detail": "bad request"}')
                if not standin.ignore_updates:
                    with standin.lock:
                        standin.db.execute(
                            "UPDATE __Indexes SET compressed=? WHERE name=? AND prefix=?",
                            (value == "true", index, prefix),
                        )
                self._answer(200)

            def do_GET(self) -> None:
                if not self._start():
                    return
                if urlsplit(self.path).path != "/api/bio/indexes":
                    return self._answer(404, b'{"detail": "Not Found"}')
                with standin.lock:
                    rows = standin.db.execute("SELECT name, built, `schema`, compressed FROM __Indexes").fetchall()
                data = [
                    {"index": n, "built": bool(b), "schema": s, "compressed": bool(c), "query": {"keys": s.split(",")}}
                    for n, b, s, c in rows
                ]
                self._answer(200, json.dumps({"count": len(data), "data": data, "nonce": "standin"}).encode())

        return Handler
