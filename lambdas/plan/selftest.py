"""The Plan Lambda's part of `bgz selftest` (batch_job/selftest.py): the prefix lock's S3 primitives as
Plan's role, the bioindex from Plan's network (which every Lambda that reaches it shares), and the
runtime's botocore, which the Lambdas take from the Region's runtime rather than the layer."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from batch_job import selftest
from shared import config


class SelfTestEvent(BaseModel):
    """What `bgz selftest` sends: a name for this test's probe object."""

    model_config = ConfigDict(extra="forbid")

    selftest: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


def run(event: SelfTestEvent) -> dict:
    checks = [
        selftest.botocore_check("Lambda"),
        *selftest.lock_checks(os.environ["DATA_BUCKET"], event.selftest),
        *selftest.configured_bioindex_checks("Lambda", config.secret),
    ]
    return {"checks": selftest.to_json(checks)}
