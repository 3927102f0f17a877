"""Checks what `sam build` made (`make sam-build` runs it on .aws-sam/build), as Lambda would load it:

- every function's package holds its handler, EngineLayer the whole engine (batch_job), so the
  run folder's formats are the jobs' own, and WorkflowLayer the whole boundary (workflow);
- the engine layer's compiled wheels are for the runtime (CPython 3.12, x86_64), and no boto3 or botocore
  is bundled (the runtime's are used: a second botocore is 30 MB);
- every handler imports with nothing but its package, the layers and what the runtime provides. The
  engine layer is built once more for this machine's Python for that (same Makefile target, same lock),
  since a CPython 3.12 extension does not load in another Python.

    python tests/check_build.py .aws-sam/build
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parent.parent
# What the python3.12 runtime brings: boto3 and what it needs.
RUNTIME = ("boto3", "botocore", "s3transfer", "dateutil", "six", "urllib3")


def fail(message: str) -> None:
    sys.exit(f"check_build: {message}")


def functions(build: Path) -> dict[str, str]:
    """Function logical id -> Handler, from the built template (read as cfn-lint reads templates)."""
    template, errors = decode_str((build / "template.yaml").read_text())
    if errors:
        fail(f"the built template does not parse: {errors}")
    return {
        name: res["Properties"]["Handler"]
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


def check_contents(build: Path, handlers: dict[str, str]) -> None:
    layer = build / "EngineLayer" / "python"
    for name, package in (("EngineLayer", "batch_job"), ("WorkflowLayer", "workflow")):
        source = {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")}
        shipped = {p.relative_to(build / name / "python").as_posix() for p in (build / name / "python").rglob("*.py")}
        if name == "EngineLayer":  # beside the engine: the dependencies' wheels
            shipped = {p for p in shipped if p.startswith(f"{package}/")}
        if source != shipped:
            missing, extra = sorted(source - shipped), sorted(shipped - source)
            fail(f"{name} differs from {package}/: missing {missing}, extra {extra}")
    for name, handler in handlers.items():
        module = build / name / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")
        if not module.is_file():
            fail(f"{name}'s package has no {module.relative_to(build / name)}")
    for folder in [layer, *(build / name for name in handlers)]:
        bundled = {p.name for p in folder.iterdir()} & {"boto3", "botocore", "s3transfer"}
        if bundled:
            fail(f"{folder.relative_to(build)} bundles {sorted(bundled)}: the runtime provides them")
    extensions = list((layer / "pydantic_core").glob("*.so"))
    if not extensions or not all("cpython-312-x86_64-linux-gnu" in p.name for p in extensions):
        fail(f"pydantic_core is not built for CPython 3.12 x86_64: {[p.name for p in extensions]}")


def check_imports(build: Path, handlers: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        local_layer = Path(scratch) / "layer"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        subprocess.run(
            ["make", "-s", "build-EngineLayer", f"ARTIFACTS_DIR={local_layer}", f"LAMBDA_PYTHON={version}"],
            cwd=ROOT / "batch_job",
            check=True,
        )
        runtime = Path(scratch) / "runtime"
        runtime.mkdir()
        for name in RUNTIME:
            spec = __import__(name).__file__
            source = Path(spec).parent if spec.endswith("__init__.py") else Path(spec)
            (runtime / source.name).symlink_to(source)
        for name, handler in handlers.items():
            module = handler.rsplit(".", 1)[0]
            layers = [str(local_layer / "python"), str(build / "WorkflowLayer" / "python")]
            path = [str(build / name), *layers, str(runtime)]
            code = f"import sys; sys.path[:0] = {path!r}; import {module}"
            env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "RUN_BUCKET": "runs"}
            # -I -S: no site-packages, no user paths, no PYTHONPATH: only what Lambda would have.
            result = subprocess.run([sys.executable, "-I", "-S", "-c", code], env=env, capture_output=True, text=True)
            if result.returncode:
                fail(f"{name} ({module}) does not import from its package:\n{result.stderr}")


def main() -> None:
    build = Path(sys.argv[1] if len(sys.argv) > 1 else ".aws-sam/build")
    if not (build / "template.yaml").is_file():
        fail(f"{build} holds no built template: run sam build first")
    handlers = functions(build)
    if not handlers:
        fail("the built template has no functions")
    check_contents(build, handlers)
    check_imports(build, handlers)
    print(f"check_build: {len(handlers)} functions and their two layers hold and import what they need")


if __name__ == "__main__":
    main()
