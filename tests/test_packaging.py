"""The job image and the code style: lint the Dockerfile, and check that what its ENTRYPOINT runs works."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "batch_job" / "Dockerfile"


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
    """The image installs batch_job/requirements/job.txt: the job's imports must need nothing more."""
    code = "import batch_job.cli, batch_job.steps.verify, batch_job.steps.decompress, batch_job.htslib"
    subprocess.run([sys.executable, "-c", code], check=True)
    text = DOCKERFILE.read_text()
    assert "-r batch_job/requirements/job.txt -c batch_job/requirements/lock.txt" in text
    assert {"deflate", "boto3", "pymysql"} <= _names("job.txt")
    # verify reads through htslib's bgzip, Debian 12's (htslib 1.16, as the reference the tests use)
    assert re.search(r"apt-get install .*\btabix=1\.16\+ds-3\b", text), "the image brings htslib's bgzip"


def test_the_engine_imports_nothing_the_image_and_the_engine_layer_do_not_carry():
    """The image and EngineLayer carry batch_job/ alone: no module of it may import the boundary
    (workflow/, WorkflowLayer's), the Lambdas' code, bgz or the offline stack. The offline stack runs
    jobs with the whole repository on their path, so only this reading of the imports can tell."""
    handlers = {p.name for p in (ROOT / "lambdas").iterdir() if p.is_dir() and not p.name.startswith("__")}
    outside = {"workflow", "lambdas", "bgz", "offline", "demo", "tests"} | handlers
    found = []
    for path in sorted((ROOT / "batch_job").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] in outside]
    assert not found, found


def test_base_image_is_pinned_and_the_build_context_holds_only_the_engine():
    images = re.findall(r"^FROM (\S+)", DOCKERFILE.read_text(), re.M)
    assert images and all(re.fullmatch(r"python:3\.12\.\d+-slim-bookworm( AS \w+)?", i) for i in images), images
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :][:3] == ["!pyproject.toml", "!README.md", "!batch_job/"]


def _names(path: str) -> set[str]:
    lines = (ROOT / "batch_job" / "requirements" / path).read_text().splitlines()
    return {line.split("==")[0].strip().lower() for line in lines if line.strip() and not line.startswith("#")}


def _lock() -> dict[str, str]:
    lines = (ROOT / "batch_job" / "requirements" / "lock.txt").read_text().splitlines()
    return dict(line.lower().split("==") for line in lines if line.strip() and not line.startswith("#"))


def test_one_lock_pins_the_layer_the_image_and_the_test_environment():
    """Everything EngineLayer and the image install is pinned in batch_job/requirements/lock.txt, within
    pyproject.toml's ranges, and is what the tests run with (make installs with the lock)."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    lock = _lock()
    for path in ("lambda.txt", "job.txt"):
        assert _names(path) <= set(lock), f"{path} names unpinned packages: {_names(path) - set(lock)}"
    assert "botocore" not in _names("lambda.txt") and "boto3" not in _names("lambda.txt")
    pyproject = (ROOT / "pyproject.toml").read_text()
    for spec in re.findall(r'^\s+"([A-Za-z][^"]*)",?', pyproject, re.M):
        requirement = Requirement(spec)
        name = requirement.name.lower()
        if name in lock:
            assert requirement.specifier.contains(lock[name]), (spec, lock[name])
    for name, pinned in lock.items():
        assert version(name) == pinned, f"{name} {version(name)} installed, {pinned} locked"
