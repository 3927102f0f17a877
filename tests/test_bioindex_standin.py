"""The bioindex stand-in's server processes (offline/bioindex_standin.py): every stand-in of a process
forks them from one zygote, each with its own arguments, and no zygote outlives its process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from offline import bioindex_standin
from offline.bioindex_db import BioindexDatabase
from offline.bioindex_standin import BioindexStandin

ROOT = Path(__file__).resolve().parent.parent


def _standin(tmp_path: Path, name: str, token: str) -> BioindexStandin:
    db = BioindexDatabase(f"sqlite:///{tmp_path / name}.sqlite")
    db.create_tables()
    db.add_index(name, f"{name}/", "gene")
    return BioindexStandin(db, "unused-bucket", workers=2, token=token).start()


def _indexes(standin: BioindexStandin, token: str) -> list[str]:
    request = urllib.request.Request(f"{standin.url}/api/bio/indexes", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return [row["index"] for row in json.load(resp)["data"]]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_two_stand_ins_fork_from_one_zygote_each_with_its_own_arguments(tmp_path):
    genes, variants = _standin(tmp_path, "genes", "one"), _standin(tmp_path, "variants", "two")
    try:
        assert _indexes(genes, "one") == ["genes"] and _indexes(variants, "two") == ["variants"]
        parents = {_parent(pid) for pid in genes.pids() | variants.pids()}
        assert len(genes.pids() | variants.pids()) == 4 and len(parents) == 1
        (zygote,) = parents
        os.kill(zygote, signal.SIGKILL)  # its server processes stop; a new zygote comes at the next start
        deadline = time.monotonic() + 10
        while bioindex_standin._shared.alive() or any(map(bioindex_standin._alive, genes.pids() | variants.pids())):
            assert time.monotonic() < deadline, "server processes outlived their zygote"
            time.sleep(0.01)
        genes.restart()
        assert _indexes(genes, "one") == ["genes"] and _parent(next(iter(genes.pids()))) != zygote
    finally:
        genes.close()
        variants.close()


def test_a_closed_stand_in_leaves_no_control_folder(tmp_path):
    """Its control files (readiness, the request log, restart requests) live in a temporary folder:
    close() removes it, also after a restart asked through it (the watcher has ended first)."""
    standin = _standin(tmp_path, "genes", "one")
    try:
        (standin.control / f"{bioindex_standin.RESTART_REQUEST}t1").touch()
        deadline = time.monotonic() + 30
        while not (standin.control / f"{bioindex_standin.RESTART_DONE}t1").exists():
            assert time.monotonic() < deadline, "the restart asked for was not done"
            time.sleep(0.02)
        assert _indexes(standin, "one") == ["genes"]
    finally:
        standin.close()
    assert not standin.control.exists()


def test_no_zygote_outlives_the_process_that_started_it(tmp_path):
    code = (
        "import sys; from tests.test_bioindex_standin import _standin; from offline import bioindex_standin;"
        f"s = _standin(__import__('pathlib').Path({str(tmp_path)!r}), 'genes', 't');"
        "print(bioindex_standin._shared._process.pid, flush=True); s.close()"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    zygote = int(done.stdout)
    deadline = time.monotonic() + 10
    while bioindex_standin._alive(zygote):
        assert time.monotonic() < deadline, "the zygote outlived its process"
        time.sleep(0.02)


@pytest.mark.parametrize("missing", ["--db", "--control"])
def test_a_server_process_without_its_arguments_is_refused(missing):
    argv = ["--fd", "3", "--db", "sqlite:///x", "--bucket", "b", "--control", "/tmp"]
    argv = [a for k, a in enumerate(argv) if a != missing and (k == 0 or argv[k - 1] != missing)]
    done = subprocess.run(
        [sys.executable, "-m", "offline.bioindex_worker", *argv], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2 and f"needs {missing}" in done.stderr
