"""The real ASL files executed by moto's interpreter, with Batch jobs running the real bgzip-job and
Lambda invokes running the real handlers, against the bioindex's tables in a real MariaDB and the
bioindex stand-in's server processes on loopback."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid

import pytest

from tests.stacks import INDEX, PREFIX, Deployment


def test_compress_then_rollback(deployment):
    result = deployment.run(shards=2)
    assert result["status"] == "SUCCEEDED", result.get("cause")
    steps = ("Plan", "Compress", "Verify", "SetCompressed", "RefreshReaders", "ProveReaders", "DeleteOriginals")
    assert [s for s in deployment.states if s in steps] == list(steps)
    assert "Compress array job" in deployment.states, "two shards run as an array job"
    summary = json.loads(result["output"])
    assert summary["files"] == 5 and summary["objectsDeleted"] == 5 and summary["readersProven"] is True
    assert summary["bytesUncompressed"] == sum(len(deployment.originals[k]) for k in deployment.json_keys)
    assert 0.05 < summary["ratio"] < 0.3
    keys = deployment.data_keys()
    assert not any(k.endswith(".json") for k in keys), "originals deleted"
    assert all(k + ".gz" in keys and k + ".gz.gzi" in keys for k in deployment.json_keys)
    assert deployment.flag() is True

    deployment.states.clear()
    result = deployment.run("rollback")
    assert result["status"] == "SUCCEEDED", result.get("cause")
    assert [s for s in deployment.states if not s.endswith("job")] == [
        "Plan",
        "Decompress",
        "VerifyRestored",
        "SetUncompressed",
        "RefreshReaders",
        "RefreshReaders hook",
        "ProveReaders",
        "RemoveCompressed",
        "Summarize",
        "Done",
    ]
    assert "Decompress job" in deployment.states, "one shard runs as a single job"
    assert deployment.originals_intact()
    assert not any(k.endswith((".gz", ".gzi")) for k in deployment.data_keys())
    assert deployment.flag() is False


def _assert_failed_safely(deployment, result, step: str, *words: str) -> None:
    assert result["status"] == "FAILED"
    assert result["error"] == f"{step}Failed", (result.get("error"), result.get("cause"))
    for word in words:
        assert word in result["cause"], result["cause"]
    assert "No original was deleted" in result["cause"]
    assert deployment.originals_intact()
    assert not any(s.startswith("DeleteOriginals") for s in deployment.states)
    assert deployment.locks() == [], "the failure path released the prefix"


def test_plan_failure_bad_prefix(deployment):
    arn = deployment.stack.compress_arn
    result = deployment.aws.run(arn, {"index": INDEX, "prefix": "associations"}, "bad-prefix", deployment.states.append)
    _assert_failed_safely(deployment, result, "Plan", "must end with '/'")


def test_plan_failure_empty_prefix(deployment):
    deployment.db.add_index("empty", "empty/", "phenotype")
    result = deployment.run(index="empty", prefix="empty/")
    _assert_failed_safely(deployment, result, "Plan", "nothing to do", "empty/")


def test_compress_failure_when_a_source_changes_after_the_plan(deployment):
    victim = "associations/BMI/part-00000.json"

    def writer(job_name: str) -> None:
        if job_name.endswith("-compress"):
            deployment.s3.put_object(Bucket=deployment.stack.data_bucket, Key=victim, Body=b'{"new": 1}\n')
            deployment.originals[victim] = b'{"new": 1}\n'

    deployment.aws.runner.before_job = writer
    result = deployment.run()
    _assert_failed_safely(deployment, result, "Compress", "BMI/part-00000.json", "changed since the plan")
    assert deployment.flag() is False


def test_verify_failure_on_a_corrupted_output(deployment):
    victim = "associations/T2D/part-00001.json.gz"

    def corrupt(job_name: str) -> None:
        if job_name.endswith("-verify"):
            data = bytearray(deployment.read(victim))
            data[len(data) // 2] ^= 0x5A
            deployment.s3.put_object(Bucket=deployment.stack.data_bucket, Key=victim, Body=bytes(data))

    deployment.aws.runner.before_job = corrupt
    result = deployment.run()
    _assert_failed_safely(deployment, result, "Verify", "T2D/part-00001.json")
    assert deployment.flag() is False


def test_delete_failure_keeps_the_changed_original(deployment):
    victim = "associations/BMI/part-00000.json"

    def writer(job_name: str) -> None:
        if job_name.endswith("-delete"):
            deployment.s3.put_object(Bucket=deployment.stack.data_bucket, Key=victim, Body=b'{"late": 1}\n')

    deployment.aws.runner.before_job = writer
    result = deployment.run()
    assert result["status"] == "FAILED" and result["error"] == "DeleteOriginalsFailed"
    assert "BMI/part-00000.json" in result["cause"] and "changed since it was verified" in result["cause"]
    assert deployment.read(victim) == b'{"late": 1}\n'
    assert sum(k.endswith(".json") for k in deployment.data_keys()) == 1


@pytest.mark.parametrize("second_machine", ["compress", "rollback"])
def test_a_second_run_on_the_same_prefix_is_refused(deployment, second_machine):
    arn = deployment.stack.compress_arn
    second_arn = arn if second_machine == "compress" else deployment.stack.rollback_arn
    sfn = deployment.aws.client("stepfunctions")
    first = sfn.start_execution(stateMachineArn=arn, name="first", input=json.dumps({"index": INDEX, "prefix": PREFIX}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        history = sfn.get_execution_history(executionArn=first["executionArn"])["events"]
        if any(e.get("stateEnteredEventDetails", {}).get("name") == "Compress" for e in history):
            break
        time.sleep(0.1)
    second = deployment.aws.run(second_arn, {"index": INDEX, "prefix": PREFIX}, "second")
    assert second["status"] == "FAILED" and second["error"] == "PlanFailed"
    assert "PrefixLocked" in second["cause"] and "is locked by execution first (compress of index" in second["cause"]
    assert deployment.aws.wait(first["executionArn"])["status"] == "SUCCEEDED"
    assert deployment.locks() == [], "the first run released its lock at Summarize"


def test_bearer_token_from_secrets_manager_is_sent_and_never_logged(offline_aws, tmp_path, mariadb):
    token = f"tok-{uuid.uuid4().hex}"
    secret = offline_aws.client("secretsmanager").create_secret(Name=f"bioindex-{token[-6:]}", SecretString=token)
    d = Deployment(offline_aws, tmp_path, mariadb, token=token, parameters={"BioindexTokenSecretArn": secret["ARN"]})
    try:
        result = d.run()
        assert result["status"] == "SUCCEEDED", result.get("cause")
        assert d.bioindex.authorization and set(d.bioindex.authorization) == {f"Bearer {token}"}
        assert not any(token in entry["log"] for entry in offline_aws.runner.lambda_logs)
    finally:
        d.close()


def test_a_stale_lock_of_an_ended_execution_is_cleared_by_the_next_run(deployment):
    first = deployment.run()
    assert first["status"] == "SUCCEEDED", first.get("cause")
    # As if that execution had died between Plan and Summarize: its lock is left behind.
    lock = {"key_prefix": PREFIX, "target": f"s3://{deployment.stack.data_bucket}/{PREFIX}", "run": "s3://x/runs/a/"}
    lock |= {"execution": first["executionArn"], "mode": "compress", "index": INDEX, "created": "2026-11-29T00:00:00Z"}
    deployment.s3.put_object(
        Bucket=deployment.stack.data_bucket, Key=f".bgzip-workflow/locks/{PREFIX}.lock", Body=json.dumps(lock)
    )
    result = deployment.run("rollback")
    assert result["status"] == "SUCCEEDED", result.get("cause")
    plan_logs = [e["log"] for e in deployment.aws.runner.lambda_logs if e["function"].endswith("PlanFunction")]
    assert any("clearing the stale lock" in log and first["name"] in log for log in plan_logs)
    assert deployment.locks() == []


def test_a_run_stopped_while_plan_works_leaves_no_lock(deployment):
    """`bgz stop` while the Plan Lambda runs: no later state will release the lock Plan takes, so Plan
    itself looks at its execution before it returns, and releases the lock of a stopped one."""
    sfn = deployment.aws.client("stepfunctions")

    stopped = []

    def stop_it(function: str) -> None:
        if function.endswith("PlanFunction") and not stopped:
            execution = deployment.stack.compress_arn.replace(":stateMachine:", ":execution:")
            stopped.append(f"{execution}:{deployment.execution}")
            sfn.stop_execution(executionArn=stopped[0], cause="bgz stop: started by mistake")

    deployment.aws.runner.before_invoke = stop_it
    result = deployment.run()
    assert result["status"] == "ABORTED"
    deadline = time.monotonic() + 30  # the Lambda goes on after its execution was stopped
    plan_function = f"{deployment.name}-PlanFunction"
    while not any(e["function"] == plan_function for e in deployment.aws.runner.lambda_logs):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (plan,) = [e for e in deployment.aws.runner.lambda_logs if e["function"] == plan_function]
    assert "is ABORTED: Plan released its lock of s3://" in plan["log"], plan["log"]
    assert deployment.locks() == [], "the prefix is free for the next run"
    assert deployment.originals_intact()


def test_runs_in_parallel_on_different_prefixes_do_not_block_each_other(deployment, tmp_path):
    deployment.add_index("other-index", "other/", deployment.schema, tmp_path / "index" / "BMI")
    results = {}
    threads = [
        threading.Thread(target=lambda: results.update(one=deployment.run())),
        threading.Thread(target=lambda: results.update(two=deployment.run(index="other-index", prefix="other/"))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["one"]["status"] == "SUCCEEDED", results["one"].get("cause")
    assert results["two"]["status"] == "SUCCEEDED", results["two"].get("cause")
    assert deployment.flag() is True and deployment.flag("other-index", "other/") is True


def test_level_and_shards_from_the_input_reach_the_jobs(deployment, tmp_path):
    """Optional input flows through Plan into the Batch job Parameters as strings."""
    result = deployment.run(level=1, shards=3)
    assert result["status"] == "SUCCEEDED", result.get("cause")
    assert "Compress array job" in deployment.states
    key = "associations/T2D/part-00000.json"
    (tmp_path / "orig.json").write_bytes(deployment.originals[key])
    expected = subprocess.run(["bgzip", "-l", "1", "-c", str(tmp_path / "orig.json")], capture_output=True).stdout
    assert deployment.read(key + ".gz") == expected


def test_a_refused_job_says_why_although_batch_says_only_that_the_container_exited(deployment):
    """On AWS a failed job's status reason is "Essential container in task exited" (the offline stack
    says exactly that); the Cause takes the why from the error record the job left in the run folder."""

    def lose_the_receipt(job_name: str) -> None:
        if job_name.endswith("-delete"):
            runs = deployment.s3.list_objects_v2(Bucket=deployment.stack.run_bucket, Prefix="runs/")["Contents"]
            flag = next(o["Key"] for o in runs if o["Key"].endswith("/flag.json"))
            deployment.s3.delete_object(Bucket=deployment.stack.run_bucket, Key=flag)

    deployment.aws.runner.before_job = lose_the_receipt
    result = deployment.run()
    assert result["status"] == "FAILED" and result["error"] == "DeleteOriginalsFailed", result.get("cause")
    assert "Essential container in task exited" in result["cause"]
    assert "the job exited 2: no flag.json in" in result["cause"] and "nothing is deleted" in result["cause"]
    kept = [k for k in deployment.json_keys if k in deployment.data_keys()]
    assert len(kept) == len(deployment.json_keys) - 1, "only ProveReaders' canary is gone"


def test_jobs_are_submitted_to_the_latest_job_definition_so_a_redeploy_strands_no_run(deployment):
    """A redeploy with a new image registers new revisions and deregisters the old ones: runs submit
    their jobs by job definition name, so they take the new revision instead of failing on the old."""
    batch = deployment.aws.client("batch")
    for step in ("compress", "verify", "delete"):
        name = f"{deployment.stack.name}-{step}"
        (old,) = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
        container = {
            k: old["containerProperties"][k]
            for k in ("image", "command", "environment", "resourceRequirements", "logConfiguration")
        }
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            parameters=old.get("parameters", {}),
            containerProperties=container | {"image": "bgzip-job:redeployed"},
            platformCapabilities=old.get("platformCapabilities", []),
        )
        batch.deregister_job_definition(jobDefinition=old["jobDefinitionArn"])
    result = deployment.run()
    assert result["status"] == "SUCCEEDED", result.get("cause")
    submitted = [
        json.loads(e["taskSubmittedEventDetails"]["output"])["JobId"]
        for e in result["history"]
        if e["type"] == "TaskSubmitted" and "batch" in e["taskSubmittedEventDetails"]["resourceType"]
    ]
    definitions = [job["jobDefinition"] for job in batch.describe_jobs(jobs=submitted)["jobs"]]
    assert len(definitions) == 3 and all(arn.endswith(":2") for arn in definitions), definitions


def test_a_batch_step_past_the_timeout_plan_sized_fails_the_run_saying_so(offline_aws, tmp_path, mariadb):
    """Plan gives every `.sync` task a TimeoutSeconds sized from the run (here shrunk to seconds); a job
    that does not finish within it - never started, or hung - fails the run and frees the prefix
    instead of holding both for up to a year."""
    release = threading.Event()
    limits = {"STEP_TIMEOUT_FLOOR_SECONDS": "3", "RUNNABLE_TIMEOUT_SECONDS": "0", "JOB_ATTEMPTS": "1"}
    d = Deployment(offline_aws, tmp_path, mariadb, lambda_env=limits)

    def never_starts(job_name: str) -> None:
        if job_name.endswith("-compress"):
            release.wait(120)

    offline_aws.runner.before_job = never_starts
    try:
        result = d.run()
        assert result["status"] == "FAILED"
        cause = result["cause"]
        bound = re.search(r"Compress failed\. Its jobs did not finish within (\d+) s \(the bound Plan sized", cause)
        assert bound and 3 <= int(bound.group(1)) <= 30, cause  # the floor, or 4x the five files' requests
        assert d.originals_intact() and not d.flag() and d.locks() == []
    finally:
        release.set()
        d.close()
