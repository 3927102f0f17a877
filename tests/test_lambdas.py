"""The Lambdas' own pieces: the bioindex client against the stand-in over real HTTP, the read-back
rule, and the code folder as `sam build` packages it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from lambdas.set_compressed.bioindex import (
    BioindexClient,
    BioindexRejected,
    BioindexUnavailable,
    FlagNotConfirmed,
    IndexNotFound,
    InsecureBioindexUrl,
    confirm,
)

from demo.bioindex_standin import BioindexStandin

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bioindex():
    standin = BioindexStandin(token="s3cret").start()
    standin.add_index("genes", "genes/")
    yield standin
    standin.stop()


def client(standin: BioindexStandin, **kwargs) -> BioindexClient:
    return BioindexClient(standin.url, token="s3cret", allow_insecure=True, backoff_seconds=0.01, **kwargs)


def test_sets_and_reads_back_the_flag(bioindex):
    c = client(bioindex)
    assert c.compressed_flags("genes") == [False]
    c.set_compressed("genes", "genes/", True)
    assert c.compressed_flags("genes") == [True]
    assert bioindex.compressed("genes", "genes/") is True
    assert bioindex.requests[1] == "POST /api/bio/bgcompress/set-compressed/genes/true?prefix=genes%2F"
    assert set(bioindex.authorization) == {"Bearer s3cret"}


def test_retries_transient_errors(bioindex):
    bioindex.failures = [500, 429, 503]
    client(bioindex).set_compressed("genes", "genes/", True)
    assert bioindex.compressed("genes", "genes/") is True
    assert len(bioindex.requests) == 4


def test_gives_up_on_a_persistent_outage(bioindex):
    bioindex.failures = [502] * 10
    with pytest.raises(BioindexUnavailable, match="502"):
        client(bioindex, attempts=3).set_compressed("genes", "genes/", True)
    assert len(bioindex.requests) == 3


def test_4xx_is_final_and_the_token_stays_out_of_the_error(bioindex):
    bioindex.token = "other"
    with pytest.raises(BioindexRejected, match="401") as info:
        client(bioindex).set_compressed("genes", "genes/", True)
    assert "s3cret" not in str(info.value)
    assert len(bioindex.requests) == 1


def test_connection_refused_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = BioindexClient(f"http://127.0.0.1:{port}", allow_insecure=True, attempts=2, backoff_seconds=0.01)
    with pytest.raises(BioindexUnavailable):
        c.compressed_flags("genes")


def test_plain_http_needs_explicit_permission():
    with pytest.raises(InsecureBioindexUrl, match="AllowInsecureBioindex"):
        BioindexClient("http://bioindex.example.org")
    with pytest.raises(InsecureBioindexUrl):
        BioindexClient("ftp://bioindex.example.org", allow_insecure=True)
    assert BioindexClient("https://bioindex.example.org/").base_url == "https://bioindex.example.org"


@pytest.mark.parametrize(
    ("before", "after", "ok"),
    [
        ([False], [True], True),
        ([True], [True], True),  # a re-run after the flag was already set
        ([False, False], [True, False], True),  # two arities: ours changed
        ([True, False], [True, False], False),  # two arities: nothing changed
        ([False], [False], False),
    ],
)
def test_read_back_rule(before, after, ok):
    if ok:
        confirm("genes", True, before, after)
    else:
        with pytest.raises(FlagNotConfirmed):
            confirm("genes", True, before, after)


def test_read_back_of_an_unknown_index():
    with pytest.raises(IndexNotFound):
        confirm("nope", True, [], [])


def test_the_code_folder_carries_the_engine_and_no_codec(tmp_path):
    """`sam build` copies lambdas/ following the symlink; the handlers import from that copy only."""
    code = tmp_path / "code"
    shutil.copytree(ROOT / "lambdas", code, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
    assert (code / "batch_job" / "runfolder.py").is_file()
    probe = (
        "import sys, plan.app, set_compressed.app, report.app, batch_job;"
        "print(batch_job.__file__);"
        "print(sorted(m for m in ('deflate', 'pysam') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=code,
        env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin", "POWERTOOLS_TRACE_DISABLED": "true"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(code)), "the handlers use the packaged engine"
    assert out[1] == "[]", "the Lambdas never load the codec"
