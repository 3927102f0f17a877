"""Build the job image and push it to the stack's ECR repository: the four docker commands of the
old tooling as one. The registry password goes to `docker login` on stdin, never on a command line."""

from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from bgz.errors import OperatorError
from bgz.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "batch_job" / "Dockerfile"


def _run(command: list[str], stdin: str | None = None) -> None:
    print("$ " + " ".join(command), flush=True)
    result = subprocess.run(command, input=stdin, text=True)
    if result.returncode != 0:
        raise OperatorError(f"`{' '.join(command[:2])}` failed with exit status {result.returncode}")


def publish(stack: Stack, tag: str | None, platform: str = "linux/amd64") -> str:
    if not DOCKERFILE.is_file():
        raise OperatorError(f"no {DOCKERFILE}", "run bgz publish-image from a bgzip-workflow checkout")
    if shutil.which("docker") is None:
        raise OperatorError("docker is not installed", "install Docker (or Podman with its docker alias)")
    repository = stack.outputs()["JobRepositoryUri"]
    image = f"{repository}:{tag or datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    registry = repository.split("/", 1)[0]
    auth = stack.client("ecr").get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(auth["authorizationToken"]).decode().partition(":")
    _run(["docker", "build", "--platform", platform, "-f", str(DOCKERFILE), "-t", image, str(ROOT)])
    _run(["docker", "login", "--username", user, "--password-stdin", registry], stdin=password)
    _run(["docker", "push", image])
    return image
