"""A bioindex stand-in on loopback: several server processes over the bioindex's tables and S3.

It takes connections as the real server does (`bioindex serve`, uvicorn with `--workers N`; see
docs/safety.md): N processes accept from **one shared listening socket**, and each handles one request
at a time, blocking while it reads. A new connection goes to whichever process is idle and wins the
accept, not to each in turn, so a series of requests is not a way to reach every process. Each process
caches the index flags as the real server does (offline/bioindex_worker.py), so a test can see what a
running bioindex serves while a run flips its flag.

A restart replaces the processes one at a time (a new one started, then an old one stopped), as a
rolling deployment does; the listening socket stays open in between, so no request is refused. The
offline stack restarts it when the workflow asks: the restart hook, from its own process, through
`request_restart`; the ECS deployment mapping directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from offline.bioindex_db import BioindexDatabase

ROOT = Path(__file__).resolve().parent.parent
HOLD_PATH = "/_standin/hold"  # test control: the process that accepts it serves nothing until released
RESTART_REQUEST = "restart-request-"  # control files: a restart asked for, and its answer
RESTART_DONE = "restart-done-"


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
        # The one listening socket every process accepts from (uvicorn's master opens it the same way).
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self._listener.getsockname()[1]
        self._procs: list[int] = []  # the server processes' pids
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, frozen: bool = False) -> int:
        argv = ["--db", self.db.url, "--bucket", self.bucket, "--control", str(self.control)]
        if self.token:
            argv += ["--token", self.token]
        if self.set_endpoint:
            argv.append("--set-endpoint")
        if frozen:
            argv.append("--frozen")
        return _forker().spawn(argv, self.env, self._listener)

    def _wait_ready(self, pids: list[int]) -> None:
        deadline = time.monotonic() + 30
        while not all((self.control / f"ready-{pid}").exists() for pid in pids):
            if time.monotonic() > deadline or not all(_alive(pid) for pid in pids):
                raise RuntimeError("the bioindex stand-in's processes did not start")
            time.sleep(0.01)

    def start(self, frozen: int = 0) -> BioindexStandin:
        """Start the processes; the first `frozen` of them never reload their cached flags."""
        with self._lock:
            try:
                for n in range(self.workers):
                    self._procs.append(self._spawn(frozen=n < frozen))
                self._wait_ready(self._procs)
            except Exception:  # none left serving: those started are stopped
                self._stop(self._procs)
                self._procs = []
                raise
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._serve_restart_requests, daemon=True)
            self._watcher.start()
        return self

    @staticmethod
    def _stop(pids: list[int]) -> None:
        """SIGTERM (each answers the request it is serving, then exits), SIGKILL after 10 s."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for pid in pids:
            while _alive(pid):
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.01)

    def stop(self) -> None:
        with self._lock:
            self._stop(self._procs)
            self._procs = []

    def restart(self, pause: float = 0.0) -> None:
        """Replace every process, one at a time: every process serving afterwards started now, and
        loaded the flags as they are now. `pause` seconds pass between two replacements."""
        if (self.control / "restart-fails").exists():
            raise RuntimeError("the new bioindex processes did not start (a test made them fail)")
        with self._lock:
            for n, old in enumerate(list(self._procs)):
                if n and pause:
                    time.sleep(pause)
                new = self._spawn()
                self._wait_ready([new])
                self._procs.append(new)
                self._stop([old])
                self._procs.remove(old)
            self.restarts += 1

    def pids(self) -> set[int]:
        return set(self._procs)

    def close(self) -> None:
        """Every process stopped; the control folder removed once the restart watcher has ended."""
        self._closing.set()
        self.stop()
        self._listener.close()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
        if self._watcher is None or not self._watcher.is_alive():
            shutil.rmtree(self.control, ignore_errors=True)  # every stand-in had left one in /tmp

    # ---- restarts asked for by the workflow's refresh (a hook Lambda, an ECS deployment) ----------

    def _serve_restart_requests(self) -> None:
        while not self._closing.is_set():
            for request in sorted(self.control.glob(f"{RESTART_REQUEST}*")):
                token = request.name.removeprefix(RESTART_REQUEST)
                request.unlink()
                try:
                    self.restart()
                    answer = "ok"
                except Exception as exc:  # told to the asker, who fails its step
                    answer = f"restart failed: {exc}"
                # Written whole, then named: the asker waits for the name and must never read it half-written.
                partial = self.control / f".{RESTART_DONE}{token}"
                partial.write_text(answer)
                partial.rename(self.control / f"{RESTART_DONE}{token}")
            time.sleep(0.05)

    # ---- test controls ---------------------------------------------------------------------------

    def inject_failures(self, statuses: list[int]) -> None:
        (self.control / "failures.json").write_text(json.dumps(statuses))

    def ignore_updates(self, ignore: bool = True) -> None:
        marker = self.control / "ignore-updates"
        marker.touch() if ignore else marker.unlink(missing_ok=True)

    def fail_restarts(self, failing: bool = True) -> None:
        """Every restart fails before replacing any process, as a deployment whose tasks cannot start."""
        marker = self.control / "restart-fails"
        marker.touch() if failing else marker.unlink(missing_ok=True)

    def break_bgzip(self, broken: bool = True) -> None:
        """Every read of a `.json.gz` fails, as on a host whose bgzip cannot open the files."""
        marker = self.control / "bgzip-fails"
        marker.touch() if broken else marker.unlink(missing_ok=True)

    def hold(self) -> int:
        """Keep one process busy (as a long query would) until `release`; returns its pid."""
        (self.control / "release").unlink(missing_ok=True)
        conn = socket.create_connection(("127.0.0.1", self.port))
        conn.sendall(f"GET {HOLD_PATH} HTTP/1.1\r\nHost: standin\r\nConnection: close\r\n\r\n".encode())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            held = list(self.control.glob("held-*"))
            if held:
                conn.close()  # the process stays busy until released, whatever the client does
                return int(held[0].name.removeprefix("held-"))
            time.sleep(0.02)
        conn.close()
        raise RuntimeError("no stand-in process took the hold request")

    def release(self) -> None:
        (self.control / "release").touch()
        deadline = time.monotonic() + 30
        while list(self.control.glob("held-*")) and time.monotonic() < deadline:
            if not any(int(h.name.removeprefix("held-")) in self.pids() for h in self.control.glob("held-*")):
                break  # the held process was replaced by a restart
            time.sleep(0.02)
        for held in self.control.glob("held-*"):
            held.unlink(missing_ok=True)

    def _log(self) -> list[dict]:
        path = self.control / "requests.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    @property
    def requests(self) -> list[str]:
        return [entry["request"] for entry in self._log() if not entry["request"].endswith(HOLD_PATH)]

    @property
    def authorization(self) -> list[str | None]:
        return [entry["auth"] for entry in self._log() if not entry["request"].endswith(HOLD_PATH)]

    def pids_answering(self, path_prefix: str) -> set[int]:
        return {entry["pid"] for entry in self._log() if entry["request"].split(" ", 1)[1].startswith(path_prefix)}


class _Forker:
    """The process that forks every stand-in's server processes (offline/bioindex_worker.py's zygote),
    one for this process: a new interpreter with the libraries imported takes 0.3 s of CPU, and a test
    run starts about a hundred stand-ins. It ends when this process does (its socket closes)."""

    def __init__(self) -> None:
        self._requests, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "offline.bioindex_worker", "--zygote", str(theirs.fileno())],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        self._lock = threading.Lock()

    def alive(self) -> bool:
        return self._process.poll() is None

    def spawn(self, argv: list[str], env: dict[str, str], listener: socket.socket) -> int:
        """A new server process with these arguments and environment, accepting from `listener`."""
        request = json.dumps({"argv": argv, "env": env}).encode() + b"\n"
        with self._lock:
            try:
                sent = socket.send_fds(self._requests, [request], [listener.fileno()])
                self._requests.sendall(request[sent:])
                answer = b""
                while not answer.endswith(b"\n"):
                    data = self._requests.recv(32)
                    if not data:
                        raise RuntimeError(f"the bioindex stand-in's zygote died (exit {self._process.wait()})")
                    answer += data
            except BaseException:  # a request cut short leaves the stream out of step: this zygote is done
                self._requests.close()
                self._process.kill()
                self._process.wait()
                raise
        return int(answer)


_shared: _Forker | None = None
_shared_lock = threading.Lock()


def _forker() -> _Forker:
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive():
            _shared = _Forker()
        return _shared


def _alive(pid: int) -> bool:
    """Running: not gone, and not a zombie (a process whose zygote died is left to an init that may
    never reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # where there is no /proc (macOS), os.kill's answer
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def request_restart(control: Path, timeout: float) -> None:
    """From another process: ask the stand-in whose control folder this is for a restart, and wait
    for its answer; raise if it failed or never came."""
    token = uuid.uuid4().hex
    (control / f"{RESTART_REQUEST}{token}").touch()
    done = control / f"{RESTART_DONE}{token}"
    deadline = time.monotonic() + timeout
    while not done.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the bioindex stand-in did not restart within {timeout} s")
        time.sleep(0.05)
    answer = done.read_text()
    with contextlib.suppress(OSError):
        done.unlink()
    if answer != "ok":
        raise RuntimeError(answer)
