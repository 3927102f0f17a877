"""`bgzip-job` on a terminal (a real pseudo-terminal): the progress line, Ctrl-C, and the summary of a
re-run that has nothing left to do."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

from offline.sample_index import write_gwas_file

BGZIP_JOB = [sys.executable, "-m", "batch_job"]


def _spawn(args: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Run bgzip-job as the foreground process of a new pseudo-terminal; returns (pid, master fd)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        os.chdir(Path(__file__).resolve().parent.parent)
        os.execve(sys.executable, [*BGZIP_JOB, *args], env)
    return pid, fd


def _read_until(fd: int, done, timeout: float = 60) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(out):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    return out


def _finish(pid: int, fd: int) -> tuple[bytes, int]:
    out = _read_until(fd, lambda _: False, timeout=60)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def _plan(tmp_path: Path, env: dict[str, str], size: int) -> tuple[Path, Path]:
    target, run = tmp_path / "genes", tmp_path / "run"
    target.mkdir()
    for name in ("a", "b"):
        with (target / f"{name}.json").open("wb") as out:
            write_gwas_file(out, size, seed=ord(name))
    pid, fd = _spawn(["plan", str(target), "--index", "genes", "--run-folder", str(run)], env)
    out, code = _finish(pid, fd)
    assert code == 0, out
    return target, run


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TERM": "xterm"}


def test_the_progress_line_is_redrawn_whole_and_the_summary_has_its_own_line(tmp_path):
    env = _env(tmp_path)
    _, run = _plan(tmp_path, env, 3_000_000)
    out, code = _finish(*_spawn(["compress", "--run-folder", str(run)], env))
    assert code == 0, out
    text = out.decode()
    draws = text.split("\r")[1:]
    assert draws, "a progress bar is drawn on a terminal"
    # each redraw first clears the line, so a shorter line leaves nothing of the longer one before it
    assert all(d.startswith("\x1b[2K") or d.startswith("\n") for d in draws), draws[:3]
    assert re.search(r"\ncompress: 2 files, [\d.]+ MB in, [\d.]+ kB out, [\d.]+ s, [\d.]+ MB/s, 0 failed", text)


def test_a_rerun_with_nothing_to_do_reports_no_rate(tmp_path):
    env = _env(tmp_path)
    _, run = _plan(tmp_path, env, 300_000)
    assert _finish(*_spawn(["compress", "--run-folder", str(run)], env))[1] == 0
    out, code = _finish(*_spawn(["compress", "--run-folder", str(run)], env))
    assert code == 0, out
    summary = re.search(r"compress: 2 files \(2 already done\), [\d.]+ kB in, [^\r\n]*", out.decode())
    assert summary, out
    assert "MB/s" not in summary.group(0), "no rate for work not done now"


def test_ctrl_c_stops_at_once_with_one_line_and_exit_130_and_loses_nothing(tmp_path):
    env = _env(tmp_path)
    target, run = _plan(tmp_path, env, 40_000_000)
    originals = {p.name: p.read_bytes() for p in target.glob("*.json")}
    pid, fd = _spawn(["compress", "--run-folder", str(run), "--threads", "1", "--level", "9"], env)
    seen = _read_until(fd, lambda out: b"[#" in out or b"[ " in out)
    assert b"compress [" in seen, seen
    started = time.monotonic()
    os.write(fd, b"\x03")  # Ctrl-C, as typed: the terminal sends SIGINT to the foreground process
    out, code = _finish(pid, fd)
    text = (seen + out).decode()
    assert code == 130, text
    assert time.monotonic() - started < 60
    assert "Traceback" not in text
    assert text.count("interrupted") == 1 and "bgzip-job compress: interrupted; run the same command again" in text
    assert not list(target.glob("*.json.gz")), "stopped at the next chunk, not after finishing the files"
    assert not list(target.glob(".*.tmp")), "each worker removed its unfinished output"
    assert {p.name: p.read_bytes() for p in target.glob("*.json")} == originals
    out, code = _finish(*_spawn(["compress", "--run-folder", str(run)], env))
    assert code == 0 and "0 failed" in out.decode(), "the same command finishes the job"
