"""One process of the bioindex stand-in: serves the bioindex's read API over its tables and S3.

    python -m offline.bioindex_worker --fd N --db URL --bucket B --control DIR [--token T]
        [--set-endpoint] [--frozen]
    python -m offline.bioindex_worker --zygote FD     # forks such processes (bioindex_standin.py's)

Like one process of the real server it caches every index row (with its `compressed` flag) when it
starts, and reloads that cache only when it serves `GET /api/bio/indexes` (or a query names an
(index, arity) it does not know). It reads a range of `X.json` from S3 when the cached flag is false,
and `bgzip -b START -s LENGTH X.json.gz` through `X.json.gz.gzi` when it is true (Debian's bgzip
has no S3 support, so the pair is fetched first). A missing `X.json` gives fewer records with HTTP
200, as the real server does; a failed bgzip read gives HTTP 500. `--frozen` makes a process that
never reloads its cache: one that refresh requests never reach.

It accepts from the listening socket it inherits as file descriptor N, shared with the other
processes, and serves one request at a time (the real server's handlers block their event loop
while they read): while it is busy, new connections go to the others.

Every request is appended to DIR/requests.jsonl; DIR/failures.json holds HTTP statuses to answer
with, one per request, before working again; DIR/ignore-updates makes the set endpoint change nothing;
DIR/bgzip-fails makes every `.json.gz` read fail. `GET /_standin/hold` keeps the process that takes it
busy (DIR/held-PID) until DIR/release exists, as a long query would; `GET /_standin/sleep?ms=N` takes
N ms, as a query reading S3 does.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
from botocore.exceptions import ClientError

from offline.bioindex_db import BioindexDatabase, Schema
from offline.warm_start import freeze_imported, share_botocore_data

SET_PREFIX = "/api/bio/bgcompress/set-compressed/"
HOLD_PATH = "/_standin/hold"
SLEEP_PATH = "/_standin/sleep"
STOPPING = threading.Event()


class Failed(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _locked_pop(path: Path) -> int | None:
    """Pop the first status of a JSON list file, with other processes kept out."""
    if not path.exists():
        return None
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        statuses = json.loads(f.read() or "[]")
        if not statuses:
            return None
        f.seek(0)
        f.truncate()
        f.write(json.dumps(statuses[1:]))
        return statuses[0]


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db = BioindexDatabase(args.db, keep_connection=True)
        self.control = Path(args.control)
        self.s3 = boto3.client("s3")
        self.cache: dict[tuple[str, int], dict] = {}
        self.reload(force=True)

    def reload(self, force: bool = False) -> None:
        if self.args.frozen and not force:
            return
        self.cache = {(r["name"], Schema(r["schema"]).arity): r for r in self.db.indexes()}

    # ---- endpoints ------------------------------------------------------------------------------

    def indexes(self) -> dict:
        self.reload()
        data = [
            {
                "index": r["name"],
                "built": r["built"] and str(r["built"]),
                "schema": r["schema"],
                "compressed": bool(r["compressed"]),
                "query": {"keys": Schema(r["schema"]).keys, "locus": Schema(r["schema"]).locus is not None},
            }
            for r in sorted(self.cache.values(), key=lambda r: r["name"])
        ]
        return {"count": len(data), "data": data, "nonce": uuid.uuid4().hex}

    def _row(self, index: str, arity: int) -> dict:
        if (index, arity) not in self.cache:
            self.reload(force=True)
        row = self.cache.get((index, arity))
        if row is None:
            raise Failed(400, f"Invalid index: {index}")
        if not row["built"] or str(row["built"]).startswith("0000"):
            raise Failed(400, f'Index "{index}" is not built')
        return row

    def keys(self, index: str, arity: int) -> dict:
        row = self._row(index, arity)
        columns = ", ".join(f"`{c}`" for c in Schema(row["schema"]).keys)
        rows = self.db.run(f"SELECT DISTINCT {columns} FROM `{row['table']}`")
        return {"index": index, "keys": [list(r) for r in rows], "nonce": uuid.uuid4().hex}

    def query(self, index: str, q: str) -> dict:
        qs = q.split(",")
        row = self._row(index, len(qs))
        schema = Schema(row["schema"])
        tests = [f"t.`{k}` = %s" for k in schema.keys]
        params: list = list(qs[: len(schema.keys)])
        region = None
        if schema.locus:
            chromosome, _, span = qs[-1].partition(":")
            start, _, stop = span.partition("-")
            region = (chromosome, int(start), int(stop or start))
            tests += ["t.`chromosome` = %s", "t.`position` BETWEEN %s AND %s"]
            params += [chromosome, region[1] // schema.step * schema.step, region[2] // schema.step * schema.step]
        sources = self.db.run(
            f"SELECT k.`key`, MIN(t.`start_offset`), MAX(t.`end_offset`) FROM `{row['table']}` t "
            f"JOIN `__Keys` k ON k.`id` = t.`key` WHERE {' AND '.join(tests)} GROUP BY k.`key` ORDER BY k.`key`",
            params,
        )
        records = []
        for key, start, end in sources:
            data = self._read_compressed(key, start, end) if row["compressed"] else self._read(key, start, end)
            for line in data.splitlines():
                record = json.loads(line)
                if region is None or _in_region(record, schema, region):
                    records.append(record)
        return {"index": index, "q": qs, "count": len(records), "data": records, "continuation": None}

    def _read(self, key: str, start: int, end: int) -> bytes:
        try:
            resp = self.s3.get_object(Bucket=self.args.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return b""  # the real server logs "some records missing" and answers what it has
            raise
        return resp["Body"].read()

    def _read_compressed(self, key: str, start: int, end: int) -> bytes:
        gz = key if key.endswith(".gz") else key + ".gz"
        if (self.control / "bgzip-fails").exists():
            raise Failed(500, f"bgzip failed on s3://{self.args.bucket}/{gz}: [E::hts_open_format] fail to open file")
        with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
            local = Path(tmp) / "object.json.gz"
            try:
                for key, path in ((gz, local), (gz + ".gzi", Path(f"{local}.gzi"))):
                    with open(path, "wb") as out:
                        shutil.copyfileobj(self.s3.get_object(Bucket=self.args.bucket, Key=key)["Body"], out)
            except ClientError as exc:
                raise Failed(500, f"bgzip failed on s3://{self.args.bucket}/{gz}: {exc}") from exc
            proc = subprocess.run(
                ["bgzip", "-b", str(start), "-s", str(end - start), str(local)], capture_output=True, check=False
            )
        if proc.returncode:
            raise Failed(500, f"bgzip failed on s3://{self.args.bucket}/{gz}: {proc.stderr.decode()[:200]}")
        return proc.stdout

    def set_compressed(self, path: str, query: str) -> dict:
        index, _, value = unquote(path[len(SET_PREFIX) :]).rpartition("/")
        prefix = parse_qs(query).get("prefix", [""])[0]
        if value not in ("true", "false") or not index:
            raise Failed(422, "bad request")
        if not (self.control / "ignore-updates").exists():
            self.db.set_compressed(index, prefix, value == "true")
        return {}

    def hold(self) -> tuple[int, dict]:
        held = self.control / f"held-{os.getpid()}"
        held.touch()
        while not (self.control / "release").exists() and not STOPPING.is_set():
            time.sleep(0.02)
        held.unlink(missing_ok=True)
        return 200, {}

    # ---- HTTP -----------------------------------------------------------------------------------

    def answer(self, method: str, target: str, authorization: str | None) -> tuple[int, dict | None]:
        with open(self.control / "requests.jsonl", "a") as log:
            log.write(json.dumps({"pid": os.getpid(), "request": f"{method} {target}", "auth": authorization}) + "\n")
        if target == HOLD_PATH:
            return self.hold()
        if target.startswith(SLEEP_PATH):  # a query that takes this long (bench/reader_reach.py's load)
            time.sleep(int(parse_qs(urlsplit(target).query).get("ms", ["50"])[0]) / 1000)
            return 200, {}
        injected = _locked_pop(self.control / "failures.json")
        if injected is not None:
            return injected, {"detail": "injected failure"}
        if self.args.token and authorization != f"Bearer {self.args.token}":
            return 401, {"detail": "Not authenticated"}
        url = urlsplit(target)
        path = url.path
        try:
            if method == "POST" and self.args.set_endpoint and path.startswith(SET_PREFIX):
                return 200, self.set_compressed(path, url.query)
            if method == "GET" and path == "/api/bio/indexes":
                return 200, self.indexes()
            if method == "GET" and path.startswith("/api/bio/query/"):
                return 200, self.query(unquote(path.rsplit("/", 1)[1]), parse_qs(url.query)["q"][0])
            if method == "GET" and path.startswith("/api/bio/keys/"):
                _, index, arity = path.rsplit("/", 2)
                return 200, self.keys(unquote(index), int(arity))
            if self.args.set_endpoint and path.startswith(SET_PREFIX):
                return 405, {"detail": "Method Not Allowed"}  # as FastAPI answers a route of another method
        except Failed as exc:
            return exc.status, {"detail": str(exc)}
        return 404, {"detail": "Not Found"}


def _in_region(record: dict, schema: Schema, region: tuple[str, int, int]) -> bool:
    chromosome, position = schema.locus
    return str(record[chromosome]) == region[0] and region[1] <= int(record[position]) <= region[2]


def serve(args: argparse.Namespace) -> None:
    worker = Worker(args)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _handle(self) -> None:
            status, body = worker.answer(self.command, self.path, self.headers.get("Authorization"))
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _handle

    # The listening socket is inherited, shared by every process: each process that is idle waits
    # for it to be readable, and whichever wins the accept serves the connection.
    listener = socket.socket(fileno=args.fd)
    listener.setblocking(False)  # a process that loses the accept race goes back to waiting

    class Server(HTTPServer):
        def handle_error(self, request, client_address) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up: nothing to say
                super().handle_error(request, client_address)

    server = Server(listener.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    # SIGTERM stops it gracefully, as uvicorn's workers stop: no new connection is accepted, the one
    # being served is answered (the other processes take the queued ones).
    signal.signal(signal.SIGTERM, lambda *_: STOPPING.set())
    (Path(args.control) / f"ready-{os.getpid()}").touch()
    owner = os.getppid()  # the zygote; once it has gone, so has every stand-in it served: stop too
    with contextlib.suppress(KeyboardInterrupt), selectors.PollSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        while not STOPPING.is_set() and os.getppid() == owner:
            if selector.select(0.1):  # (handle_request would spin: a non-blocking socket's timeout is 0)
                server._handle_request_noblock()  # accepts, or returns if another process won the race


def zygote(requests: socket.socket) -> None:
    """Start server processes on request, for every stand-in of the process that started this one.
    Each request is a line: one server process's arguments and environment, with its listening
    socket passed along (SCM_RIGHTS); the answer is the new process's pid, a line. A fork of this
    process, which has imported everything, starts in milliseconds where a new interpreter takes a
    second: the stand-in restarts often, and a test run starts about a hundred stand-ins. Each
    process still loads the flags when it starts, as a new one of the real server does. It ends when
    the process that started it has gone."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # exited server processes are reaped by the kernel
    share_botocore_data()
    boto3.client("s3")  # botocore's models parsed here once, not again in every server process
    freeze_imported()
    parser = _parser()
    while True:
        message, fds = _request(requests)
        if not message:
            return
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            requests.close()
            try:
                os.environ.clear()
                os.environ.update(request["env"])
                boto3.DEFAULT_SESSION = None  # the request's environment makes the client, not this one's
                args = parser.parse_args(request["argv"])
                args.fd = fds[0]
                serve(args)
            finally:
                os._exit(0)
        os.close(fds[0])
        requests.sendall(f"{pid}\n".encode())


def _request(requests: socket.socket) -> tuple[bytes, list[int]]:
    """One request line and the socket passed with it; empty at the end of the stream."""
    message, fds = b"", []
    while not message.endswith(b"\n"):
        data, passed, _, _ = socket.recv_fds(requests, 1 << 16, 1)
        if not data:
            return b"", []
        message, fds = message + data, fds + passed
    return message, fds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, help="the inherited listening socket")
    parser.add_argument("--db")
    parser.add_argument("--bucket")
    parser.add_argument("--control")
    parser.add_argument("--token")
    parser.add_argument("--set-endpoint", action="store_true")
    parser.add_argument("--frozen", action="store_true")
    parser.add_argument("--zygote", type=int, metavar="FD", help="fork server processes on this socket's requests")
    return parser


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    if args.zygote is not None:
        zygote(socket.socket(fileno=args.zygote))
        return
    missing = [name for name in ("fd", "db", "bucket", "control") if getattr(args, name) is None]
    if missing:
        parser.error(f"a server process needs --{', --'.join(missing)}")
    serve(args)


if __name__ == "__main__":
    main()
