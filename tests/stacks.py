"""A fresh offline stack per test: the template's resources in moto, sample data, a bioindex stand-in."""

from __future__ import annotations

import uuid
from pathlib import Path

from demo.bioindex_standin import BioindexStandin
from demo.sample_index import make_sample_index, upload_tree

INDEX = "associations"
PREFIX = "associations/"


class Deployment:
    """A fresh stack, data bucket and bioindex for one test."""

    def __init__(self, aws, tmp_path: Path, token: str | None = None, bioindex_env: dict | None = None) -> None:
        self.aws = aws
        self.bioindex = BioindexStandin(token=token).start()
        self.bioindex.add_index(INDEX, PREFIX)
        self.bioindex.add_index("other-index", "other/")
        name = f"bgz{uuid.uuid4().hex[:8]}"
        parameters = {
            "BioindexUrl": self.bioindex.url,
            "AllowInsecureBioindex": "true",
            "SetCompressedFunction.Environment": {"BIOINDEX_RETRY_BASE_SECONDS": "0.02", **(bioindex_env or {})},
        }
        self.s3 = aws.client("s3")
        self.stack = aws.deploy(name, f"{name}-data", parameters)
        root = tmp_path / "index"
        make_sample_index(root)
        self.originals = {k: v for k, v in upload_tree(self.s3, self.stack.data_bucket, root, PREFIX).items()}
        self.json_keys = sorted(k for k in self.originals if k.endswith(".json"))
        self.states: list[str] = []

    def data_keys(self) -> set[str]:
        resp = self.s3.list_objects_v2(Bucket=self.stack.data_bucket, Prefix=PREFIX)
        return {o["Key"] for o in resp.get("Contents", [])}

    def read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.stack.data_bucket, Key=key)["Body"].read()

    def run(self, machine: str = "compress", **extra) -> dict:
        arn = self.stack.compress_arn if machine == "compress" else self.stack.rollback_arn
        execution_input = {"index": INDEX, "prefix": PREFIX, **extra}
        name = f"{machine}-{uuid.uuid4().hex[:8]}"
        return self.aws.run(arn, execution_input, name, on_state=self.states.append)

    def originals_intact(self) -> bool:
        return all(self.read(k) == self.originals[k] for k in self.json_keys)

    def close(self) -> None:
        self.bioindex.stop()
        self.aws.runner.before_job = None
