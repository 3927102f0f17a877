"""Fresh Python processes without the import cost, for the offline stack's jobs and Lambda invokes.

Every job and every invoke runs in a new process, as on AWS, and most of starting one is importing
boto3, Powertools, pydantic and the X-Ray SDK (about 0.5 s of a 1 s invoke). A zygote imports those
libraries once, then forks a child for each run: the child gets the run's environment, working
folder, argv and standard streams, and runs the script as `python SCRIPT ARGS` would. The zygote
imports libraries only, never project code, so nothing a child runs was set up by another run. What
a child cannot change is the interpreter's own start-up: its hash seed, -X options and PYTHON*
variables other than PYTHONPATH are the zygote's.

    zygote = Zygote()                       # starts `python offline/warm_start.py SOCKET`
    exit = zygote.run(script, args, env, cwd, stdin=PATH, stdout=PATH, stderr=PATH)

It also parses botocore's data files once (models, endpoints), which every new session would parse again.

The runner connects once per run and sends the request as one JSON line; the zygote forks, and when
the child has exited (atexit run, standard streams flushed) writes its exit status and peak memory back as
one line.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import runpy
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

# Imported once by the zygote: the libraries the jobs and handlers use. They read no setting a run
# gives at import, but for the X-Ray SDK's (the offline stack turns tracing off for every function).
PRELOAD = (
    "boto3",
    "botocore.session",
    "s3transfer.manager",
    "pydantic",
    "aws_lambda_powertools",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.parser",
    "aws_xray_sdk.core",
    "pymysql",
    "requests",
    "moto.iam.access_control",  # the offline stack's IAM, which decides each call (offline/recorder.py)
)
# The services whose botocore models the zygote parses once for every child (share_botocore_data).
SERVICES = ("s3", "stepfunctions", "batch", "secretsmanager", "lambda", "ecs", "sns", "sts")
REAP_SECONDS = 0.02  # how often the zygote looks for children that have exited


@dataclass(frozen=True)
class Exit:
    code: int  # negative: killed by that signal
    max_rss: int  # bytes, the child's peak resident memory (what Lambda reports as Max Memory Used)


class Zygote:
    """The runner's side: one zygote process, shared by the runner's threads."""

    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="bgzip-zygote-"))
        self.socket_path = str(self._folder / "socket")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a child's path is its own run's
        self._process = subprocess.Popen(
            [sys.executable, __file__, self.socket_path],
            env=env,
            stdin=subprocess.PIPE,  # never written: its end (this process gone) ends the zygote
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the offline runtime's zygote did not start (exit {self._process.wait()})")

    def run(
        self, script: Path, args: list[str], env: dict[str, str], cwd: Path, stdin: str, stdout: str, stderr: str
    ) -> Exit:
        """Run `python script *args` in a fresh child, and say how it exited. `stdin`, `stdout` and
        `stderr` are file paths; the same path for both outputs makes one log."""
        request = {
            "script": str(script),
            "args": args,
            "env": env,
            "cwd": str(cwd),
            "stdin": stdin,
            "stdout": stdout,
            "stderr": stderr,
        }
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.socket_path)
            conn.sendall(json.dumps(request).encode() + b"\n")
            status = conn.makefile().readline()
        if not status:
            raise RuntimeError("the offline runtime's zygote died")
        code, max_rss_kib = status.split()
        return Exit(int(code), int(max_rss_kib) * 1024)

    def close(self) -> None:
        self._process.terminate()
        self._process.wait()
        self._process.stdin.close()
        self._process.stdout.close()
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)
            self._folder.rmdir()


# ---- the zygote's side -----------------------------------------------------------------------


def _redirect(request: dict) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    for fd, path, mode in ((0, request["stdin"], os.O_RDONLY), (1, request["stdout"], flags)):
        opened = os.open(path, mode, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    if request["stderr"] == request["stdout"]:
        os.dup2(1, 2)
    else:
        opened = os.open(request["stderr"], flags, 0o644)
        os.dup2(opened, 2)
        os.close(opened)


def _child(request: dict, site_path: list[str]) -> None:
    """Become `python SCRIPT ARGS` with the request's environment; exits as that process would."""
    code: int | str | None = 1
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        _redirect(request)
        script = request["script"]
        pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [os.path.dirname(script), *pythonpath, *site_path]
        sys.argv = [script, *request["args"]]
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is not None and not isinstance(code, int):  # sys.exit("message"), as Python reports it
        print(code, file=sys.stderr)
        code = 1
    # What the interpreter's exit does that a run can see - wait for non-daemon threads (and the
    # executors' exit hooks), run atexit, flush the standard streams - without tearing down every
    # module the zygote imported, which costs more than the fork. Both calls are CPython's own exit
    # steps (Py_FinalizeEx), private names, hence the pinned interpreter of the venv.
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code or 0)


def share_botocore_data() -> None:
    """botocore parses its JSON models again in every new session: most of making a client, and a
    quarter of a Lambda invoke here. After this, a process parses each file once, and the zygote's
    children inherit what it parsed. botocore treats loaded data as shared already (a session caches
    it for all its clients, and deep-copies what it changes); a child's changes never reach the zygote
    or a sibling. The tests' own process (moto's server, `bgz`) calls it too.

    Each new session also lists botocore's data folder again (some 400 services, a stat of each
    version's file) to learn which services exist, and each service's folder for its versions: a
    quarter of a job's or a Lambda invoke's CPU here. Those listings are kept per search path too;
    the folders do not change while a process runs."""
    from botocore import loaders

    if getattr(loaders.JSONFileLoader.load_file, "shared", False):
        return
    parsed: dict[str, object] = {}
    load_file = loaders.JSONFileLoader.load_file

    def load_file_once(self, file_path):
        if file_path not in parsed:
            parsed[file_path] = load_file(self, file_path)
        return parsed[file_path]

    listed: dict[tuple, list[str]] = {}
    list_services, list_versions = loaders.Loader.list_available_services, loaders.Loader.list_api_versions

    def list_available_services_once(self, type_name):
        key = (tuple(self.search_paths), type_name)
        if key not in listed:
            listed[key] = list_services(self, type_name)
        return list(listed[key])

    def list_api_versions_once(self, service_name, type_name):
        key = (tuple(self.search_paths), type_name, service_name)
        if key not in listed:
            listed[key] = list_versions(self, service_name, type_name)
        return list(listed[key])

    load_file_once.shared = True
    loaders.JSONFileLoader.load_file = load_file_once
    loaders.Loader.list_available_services = list_available_services_once
    loaders.Loader.list_api_versions = list_api_versions_once


def freeze_imported() -> None:
    """Leave what this process has made so far out of every later garbage collection, its children's
    included (gc.freeze, which Python's gc documentation advises before fork). Else each collection
    in a child walks the hundreds of thousands of objects the libraries made, writing to every page
    they are on: a fork's shared pages copied, and a child's CPU time doubled."""
    gc.freeze()


def _parse_botocore_data() -> None:
    """The zygote's children find the models of every service the stack uses parsed already, and
    botocore's data folder listed as a boto3 session lists it (boto3 adds a folder of its own)."""
    import boto3.session

    share_botocore_data()
    session = boto3.session.Session(aws_access_key_id="zygote", aws_secret_access_key="zygote")
    for service in SERVICES:
        client = session.client(service, "us-east-1")
        client.can_paginate(next(iter(client.meta.method_to_api_mapping)))  # the paginators' model too
        _ = client.waiter_names  # and the waiters'


def serve(socket_path: str) -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    _parse_botocore_data()
    freeze_imported()
    if threading.active_count() != 1:  # a fork copies only the forking thread: nothing may run beside it
        raise RuntimeError(f"a preloaded library started a thread: {threading.enumerate()}")
    site_path = sys.path[1:]  # without this script's folder, which a child replaces with its own
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin, selectors.EVENT_READ)  # readable at its end: the runner has gone
    waiting: dict[int, socket.socket] = {}  # child pid -> the connection its exit status goes to
    print("ready", flush=True)
    while True:
        for key, _ in selector.select(REAP_SECONDS if waiting else None):  # idle: wait for a runner
            if key.fileobj is sys.stdin:  # a zygote never outlives its runner (a killed test or demo)
                with contextlib.suppress(OSError):
                    os.unlink(socket_path)
                    os.rmdir(os.path.dirname(socket_path))
                return
            conn, _ = listener.accept()
            request = json.loads(conn.makefile().readline())
            pid = os.fork()
            if pid == 0:
                selector.close()
                for inherited in (listener, conn, *waiting.values()):  # only the zygote answers runners
                    inherited.close()
                _child(request, site_path)
            waiting[pid] = conn
        while waiting:
            pid, status, usage = os.wait3(os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid)
            with contextlib.suppress(OSError):
                conn.sendall(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}\n".encode())
            conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
