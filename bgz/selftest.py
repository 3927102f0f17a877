"""`bgz selftest`: run once after a deploy, before the first run. It touches no bioindex data.

Each check runs where the workflow does that thing (batch_job/selftest.py): the Plan Lambda checks the
lock primitives as its role and reaches the bioindex from the Lambdas' network; a Batch job of the
compress job definition runs the image's codec and htslib in a scratch folder of the run bucket and
reaches the bioindex from the jobs' subnets; bgz itself compares the account's Fargate vCPU quota
with MaxvCpus. One line per check; every check passes or the deploy is not ready.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from batch_job.runfolder import run_folder_uri
from batch_job.selftest import RESULT, Check
from bgz.dryrun import sizing
from bgz.errors import OperatorError
from bgz.stack import Stack

# Service Quotas codes of AWS Fargate's vCPU quotas (Service Quotas console, service "AWS Fargate").
FARGATE_QUOTAS = {"On-Demand": "L-3032A538", "Spot": "L-36FBB829"}
JOB_TIMEOUT_SECONDS = 1800  # a Fargate task starts in a minute or two; the job itself takes seconds


def test_name() -> str:
    """Names the probe object, the Batch job and the scratch folder of one self test."""
    return f"selftest-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def lambda_checks(stack: Stack, name: str) -> list[Check]:
    try:
        found = stack.invoke("PlanFunctionName", {"selftest": name})
    except OperatorError as exc:
        return [Check("Lambda", False, f"the Plan function failed: {exc}")]
    return [Check.from_json(c) for c in found["checks"]]


def job_checks(stack: Stack, name: str, say: Callable[[str], None], poll_seconds: float) -> list[Check]:
    outputs = stack.outputs()
    scratch = run_folder_uri(outputs["RunBucketName"], name)
    batch = stack.client("batch")
    try:
        job = batch.submit_job(
            jobName=name,
            jobQueue=outputs["JobQueueArn"],
            jobDefinition=f"{stack.name}-compress",
            containerOverrides={"command": ["selftest", "--run-folder", scratch]},
            timeout={"attemptDurationSeconds": JOB_TIMEOUT_SECONDS},
        )
    except (ClientError, BotoCoreError) as exc:
        return [Check("job", False, f"could not submit the Batch job: {exc}")]
    job_id, status, reason = job["jobId"], "", ""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS + 900
    while status not in ("SUCCEEDED", "FAILED"):
        if time.monotonic() > deadline:
            return [Check("job", False, f"Batch job {job_id} is still {status} after {JOB_TIMEOUT_SECONDS // 60} min")]
        time.sleep(poll_seconds)
        described = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if described["status"] != status:
            status, reason = described["status"], described.get("statusReason", "")
            say(f"      Batch job {name} {status}")
    location = stack.location(scratch)
    result = location.store.read_bytes(location.key(RESULT))
    if result is None:
        return [
            Check(
                "job",
                False,
                f"Batch job {job_id} {status} ({reason or 'no reason given'}) and wrote no {RESULT} in {scratch}: "
                "read its log in the stack's job log group",
            )
        ]
    return [Check.from_json(c) for c in json.loads(result)]


def quota_checks(stack: Stack) -> list[Check]:
    """The account's Fargate vCPU quotas against MaxvCpus: the Spot one too when UseSpot (the job
    queue takes Fargate Spot first, then on-demand)."""
    size = sizing(stack)
    kinds = ["Spot", "On-Demand"] if size.spot else ["On-Demand"]
    client = stack.client("service-quotas")
    checks = []
    for kind in kinds:
        name = f"Fargate {kind} vCPU quota"
        try:
            quota = client.get_service_quota(ServiceCode="fargate", QuotaCode=FARGATE_QUOTAS[kind])["Quota"]
        except (ClientError, BotoCoreError) as exc:
            checks.append(Check(name, False, f"cannot read it ({exc}): needs servicequotas:GetServiceQuota"))
            continue
        value = int(quota["Value"])
        if value >= size.max_vcpus:
            checks.append(Check(name, True, f"{value} vCPU, MaxvCpus {size.max_vcpus}"))
        else:
            checks.append(
                Check(
                    name,
                    False,
                    f"{value} vCPU, below MaxvCpus {size.max_vcpus}: jobs would wait RUNNABLE for vCPUs the account "
                    f"may not use; ask for {size.max_vcpus} in Service Quotas, or deploy with MaxvCpus={value}",
                )
            )
    return checks


def selftest(stack: Stack, say: Callable[[str], None] = print, poll_seconds: float = 10.0) -> bool:
    """Run every check, saying each line as it comes; whether all passed."""
    name = test_name()
    say(f"self test {name} of stack {stack.name} ({stack.region_name})")
    checks: list[Check] = []

    def show(found: list[Check]) -> None:
        checks.extend(found)
        for check in found:
            say(check.line())

    say("  as the Plan Lambda:")
    show(lambda_checks(stack, name))
    say("  as a Batch job of the compress job definition (starting a Fargate task takes a minute or two):")
    show(job_checks(stack, name, say, poll_seconds))
    say("  the account:")
    show(quota_checks(stack))
    failed = [c for c in checks if not c.ok]
    say(f"{len(checks) - len(failed)} of {len(checks)} checks passed" + ("" if failed else ": ready for a first run"))
    return not failed
