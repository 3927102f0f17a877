"""A bioindex stand-in on loopback: several server processes over the bioindex's tables and S3.

Each process (offline/bioindex_worker.py) caches the index flags as the real server does, so a test
can see what a running bioindex serves while a run flips its flag. The processes share one port
(SO_REUSEPORT): each new connection goes to one of them, as behind the real server's balancer.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offline.bioindex_db import BioindexDatabase

ROOT = Path(__file__).resolve().parent.parent


class BioindexStandin:
    def __init__(
        self,
        db: BioindexDatabase,
        bucket: str,
        *,
        workers: int = 3,
        token: str | None = None,
        set_endpoint: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.db = db
        self.bucket = bucket
        self.workers = workers
        self.token = token
        self.set_endpoint = set_endpoint
        self.env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
        self.control = Path(tempfile.mkdtemp(prefix="bioindex-standin-"))
        self._reserve = socket.socket()
        self._reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._reserve.bind(("127.0.0.1", 0))
        self.port = self._reserve.getsockname()[1]
        self._procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, frozen: int = 0) -> BioindexStandin:
        """Start the processes; the first `frozen` of them never reload their cached flags."""
        for ready in self.control.glob("ready-*"):
            ready.unlink()
        for n in range(self.workers):
            command = [sys.executable, "-m", "offline.bioindex_worker", "--port", str(self.port), "--db", self.db.url]
            command += ["--bucket", self.bucket, "--control", str(self.control)]
            if self.token:
                command += ["--token", self.token]
            if self.set_endpoint:
                command.append("--set-endpoint")
            if n < frozen:
                command.append("--frozen")
            self._procs.append(subprocess.Popen(command, env=self.env, cwd=ROOT))
        deadline = time.monotonic() + 30
        while len(list(self.control.glob("ready-*"))) < self.workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self._procs):
                self.stop()
                raise RuntimeError("the bioindex stand-in's processes did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            proc.wait(timeout=10)
        self._procs = []

    def restart(self) -> None:
        """What an operator does after a stale-reader failure: every process reloads its flags."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._reserve.close()

    # ---- test controls ---------------------------------------------------------------------------

    def inject_failures(self, statuses: list[int]) -> None:
        (self.control / "failures.json").write_text(json.dumps(statuses))

    def ignore_updates(self, ignore: bool = True) -> None:
        marker = self.control / "ignore-updates"
        marker.touch() if ignore else marker.unlink(missing_ok=True)

    def _log(self) -> list[dict]:
        path = self.control / "requests.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    @property
    def requests(self) -> list[str]:
        return [entry["request"] for entry in self._log()]

    @property
    def authorization(self) -> list[str | None]:
        return [entry["auth"] for entry in self._log()]

    def pids_answering(self, path_prefix: str) -> set[int]:
        return {entry["pid"] for entry in self._log() if entry["request"].split(" ", 1)[1].startswith(path_prefix)}
