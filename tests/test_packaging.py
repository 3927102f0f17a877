"""The job image and the code style: lint the Dockerfile, and check that what its ENTRYPOINT runs works."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "batch_job" / "Dockerfile"


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_entrypoint_is_the_job_command_and_runs():
    text = DOCKERFILE.read_text()
    assert re.search(r'^ENTRYPOINT \["bgzip-job"\]$', text, re.M)
    assert text.count("FROM ") == 2, "multi-stage: no build tools in the final image"
    assert re.search(r"^USER \d+$", text, re.M), "the job does not run as root"
    job = Path(sys.executable).parent / "bgzip-job"
    out = subprocess.run([str(job), "--help"], capture_output=True, text=True, check=True).stdout
    for step in ("plan", "compress", "verify", "delete", "decompress", "remove-compressed"):
        assert step in out


def test_image_installs_what_the_job_imports():
    """The Dockerfile installs deflate, pysam and boto3: the job's imports must need nothing more."""
    code = "import batch_job.cli, batch_job.steps.verify, batch_job.steps.decompress, batch_job.htslib_reader"
    subprocess.run([sys.executable, "-c", code], check=True)
    text = DOCKERFILE.read_text()
    for package in ("deflate", "pysam", "boto3"):
        assert f'"{package}>=' in text


def test_ruff_is_clean():
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
