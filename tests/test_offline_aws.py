"""Canary for the offline stack's hooks into moto's private internals: if a moto upgrade breaks any
of them, these fail loudly here instead of the workflow tests failing in confusing ways."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import moto
import pytest
from botocore.exceptions import ClientError

from offline.moto_hooks import PINNED_MOTO

ROOT = Path(__file__).resolve().parent.parent


def test_moto_is_pinned_to_the_version_the_hooks_were_written_for():
    assert moto.__version__ == PINNED_MOTO
    assert re.search(rf'"moto\[server\]=={re.escape(PINNED_MOTO)}"', (ROOT / "pyproject.toml").read_text())


def _machine(aws, definition: dict) -> str:
    role = aws.client("iam").create_role(RoleName=f"canary-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument="{}")
    return aws.client("stepfunctions").create_state_machine(
        name=f"canary-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=role["Role"]["Arn"]
    )["stateMachineArn"]


def _batch(aws) -> tuple[str, str, str]:
    batch = aws.client("batch")
    tag = uuid.uuid4().hex[:6]
    role = aws.client("iam").create_role(RoleName=f"canary-ce-{tag}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch.create_compute_environment(
        computeEnvironmentName=f"canary-{tag}", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    queue = batch.create_job_queue(
        jobQueueName=f"canary-{tag}",
        priority=1,
        state="ENABLED",
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )["jobQueueArn"]

    def definition(command: list[str]) -> str:
        return batch.register_job_definition(
            jobDefinitionName=f"canary-{uuid.uuid4().hex[:6]}",
            type="container",
            parameters={"what": "--help"},
            containerProperties={
                "image": "x",
                "command": command,
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
            },
        )["jobDefinitionArn"]

    return queue, definition(["Ref::what"]), definition(["compress", "--run-folder", "Ref::runFolder"])


@pytest.mark.slow  # a moto server in a process of its own
def test_a_stopped_stack_leaves_no_call_log_behind(tmp_path):
    """Every job's and Lambda's calls are logged in a temporary folder (a few MB a test run): stop()
    removes it. In a process of its own: a second OfflineAWS here would repoint this one's clients."""
    script = "from offline.aws import OfflineAWS; aws = OfflineAWS().start(); print(aws.calls); aws.stop()"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=99)
    assert done.returncode == 0, done.stderr
    calls = Path(done.stdout.strip().splitlines()[-1])
    assert calls.parent == tmp_path and not calls.exists()


def test_sync_batch_jobs_run_for_real_and_retries_wait_for_the_new_job(offline_aws, tmp_path):
    queue, ok_job, failing_job = _batch(offline_aws)
    task = {"Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync"}
    definition = {
        "StartAt": "Succeeds",
        "States": {
            "Succeeds": {
                **task,
                "Parameters": {"JobName": "ok", "JobQueue": queue, "JobDefinition": ok_job},
                "ResultSelector": {"JobId.$": "$.JobId", "Status.$": "$.Status"},
                "ResultPath": "$.ok",
                "Next": "Fails",
            },
            "Fails": {
                **task,
                "Parameters": {
                    "JobName": "fails",
                    "JobQueue": queue,
                    "JobDefinition": failing_job,
                    "Parameters": {"runFolder": str(tmp_path / "no-such-run")},
                },
                "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 30, "MaxAttempts": 1}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    before = len(offline_aws.runner.job_logs)
    started = time.monotonic()
    result = offline_aws.run(_machine(offline_aws, definition), {}, f"canary-{uuid.uuid4().hex[:6]}", timeout=60)
    assert result["status"] == "SUCCEEDED"
    assert 3 <= time.monotonic() - started < 25, "hook 2: the Retry waited a tenth of its 30 s"
    output = json.loads(result["output"])
    assert output["ok"]["Status"] == "SUCCEEDED", "hook 1: Batch responses mapped to PascalCase"
    runs = offline_aws.runner.job_logs[before:]
    assert [r["command"] for r in runs] == [
        ["--help"],
        ["compress", "--run-folder", str(tmp_path / "no-such-run")],
        ["compress", "--run-folder", str(tmp_path / "no-such-run")],
    ], "hook 3: the container command ran, Ref:: substituted; hook 2: the retry waited for its own job"
    assert [r["exit"] for r in runs] == [0, 2, 2]
    cause = json.loads(output["error"]["Cause"])
    assert cause["Status"] == "FAILED" and cause["StatusReason"] == "Essential container in task exited", "as on AWS"


def test_lambda_invoke_runs_the_real_handler(offline_aws):
    lam = offline_aws.client("lambda")
    role = offline_aws.client("iam").create_role(
        RoleName=f"canary-fn-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument="{}"
    )
    name = f"canary-{uuid.uuid4().hex[:6]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="report.explain.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
    )
    event = {"execution": "x", "mode": "compress", "state": "Verify", "error": {"Cause": "boom"}}
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event))
    assert "FunctionError" not in resp
    assert json.loads(resp["Payload"].read()) == {
        "error": "VerifyFailed",
        "cause": "Verify failed. boom. No original was deleted.",
    }
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"action": "explain", **event}))
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorType"] == "ValidationError"


def test_a_lambda_killed_mid_invoke_answers_as_lambda_does(offline_aws):
    """No answer from the handler: Lambda's own Runtime.ExitError, which Step Functions takes as the
    error's name and Cause (not an empty payload)."""
    name = offline_aws.create_function(f"dies-{uuid.uuid4().hex[:6]}", "tests.lambda_that_dies.handler", {})[
        "FunctionName"
    ]
    resp = offline_aws.client("lambda").invoke(FunctionName=name, Payload=b"{}")
    answer = json.loads(resp["Payload"].read())
    assert resp["FunctionError"] == "Unhandled" and answer["errorType"] == "Runtime.ExitError", answer
    assert answer["errorMessage"].endswith(" Error: Runtime exited with error: signal: killed"), answer


def test_delete_objects_honours_each_objects_etag(offline_aws):
    """Hook 4: as S3 does, a DeleteObjects entry whose ETag differs keeps its object (PreconditionFailed)."""
    s3 = offline_aws.client("s3")
    bucket = f"hook4-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"].strip('"') for k in ("a", "b")}
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "a", "ETag": etags["a"]}, {"Key": "b", "ETag": "0" * 32}]}
    )
    assert [d["Key"] for d in resp.get("Deleted", [])] == ["a"]
    assert [(e["Key"], e["Code"]) for e in resp["Errors"]] == [("b", "PreconditionFailed")]
    assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"b"


def test_a_definition_parsed_once_still_runs_each_execution_afresh_and_a_bad_one_is_always_refused(offline_aws):
    """Hooks 8 and 9: the syntax tree is reused, the evaluation components are not; every call here
    goes through the once-per-host service lookup."""
    arn = _machine(offline_aws, {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}})
    outputs = [offline_aws.run(arn, {"n": n}, f"canary-{uuid.uuid4().hex[:8]}", timeout=30)["output"] for n in range(2)]
    assert [json.loads(output) for output in outputs] == [{"n": 0}, {"n": 1}]
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    definition = json.dumps({"StartAt": "Again", "States": {"Again": {"Type": "Pass", "End": True}}})
    (first, tree), (second, same_tree) = (AmazonStateLanguageParser.parse(definition) for _ in range(2))
    assert same_tree is tree and second is not first, "one syntax tree, fresh evaluation components"
    for _ in range(2):
        with pytest.raises(ClientError, match="ASLParserException"):
            _machine(offline_aws, {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "Nxt": "Echo"}}})


def test_a_stack_deployed_again_under_another_name_is_built_from_the_first_stacks_tree(offline_aws, monkeypatch):
    """Hook 9 across stacks: the same definition under another stack's name is not parsed again, at
    CreateStateMachine or when it runs, and its execution uses its own stack's names; one that holds
    the name in a state's name, or differs in anything else, is parsed (and a bad one refused)."""
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser

    stacks = [f"canary{uuid.uuid4().hex[:8]}" for _ in range(4)]
    parsed: list[str] = []  # ANTLR parses of this test's definitions (other tests' may run on this server)
    parse = ASLParser.state_machine

    def counted(parser: ASLParser):
        definition = parser._input.tokenSource._input.strdata
        if any(stack in definition for stack in stacks):
            parsed.append(definition)
        return parse(parser)

    monkeypatch.setattr(ASLParser, "state_machine", counted)
    sfn = offline_aws.client("stepfunctions")
    role = offline_aws.client("iam").create_role(
        RoleName=f"canary-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument="{}"
    )
    function = "arn:aws:lambda:us-east-1:123456789012:function:STACK-Plan"
    echo = {"Type": "Pass", "Parameters": {"plan": function}, "End": True}  # where template.yaml has the name
    template = {"StartAt": "Echo", "States": {"Echo": echo}}

    def deploy(stack: str, body: dict = template) -> tuple[str, str]:
        definition = json.dumps(body).replace("STACK", stack)
        arn = sfn.create_state_machine(name=f"{stack}-echo", definition=definition, roleArn=role["Role"]["Arn"])
        return arn["stateMachineArn"], definition

    def output(machine: str) -> dict:
        return json.loads(offline_aws.run(machine, {}, f"canary-{uuid.uuid4().hex[:8]}", timeout=30)["output"])

    first, first_definition = deploy(stacks[0])
    assert parsed == [first_definition]
    second, _ = deploy(stacks[1])
    assert output(second) == {"plan": function.replace("STACK", stacks[1])}
    assert output(first) == {"plan": function.replace("STACK", stacks[0])}, "the first stack's tree is unchanged"
    assert parsed == [first_definition], "the second stack's machine was parsed"

    named = {
        "StartAt": "STACK-echo",
        "States": {"STACK-echo": echo},
    }
    deploy(stacks[2], named)
    third, third_definition = deploy(stacks[3], named)
    assert output(third) == {"plan": function.replace("STACK", stacks[3])}
    assert parsed[-1] == third_definition, "a stack's name in a state's name: parsed as moto parses it"
    broken = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "Parameters": {"plan": function}, "Nxt": "Echo"}}}
    with pytest.raises(ClientError, match="ASLParserException"):
        deploy(f"canary{uuid.uuid4().hex[:8]}", broken)


def test_the_interpreter_makes_one_client_per_service_and_parses_each_path_once(offline_aws):
    """Hook 11: moto's interpreter asks for a boto3 client at every service call and parses every
    JSONPath it reads; both are made once, and a path's parse still finds what a new parser finds."""
    import sys

    from jsonpath_ng import parse as parse_path
    from jsonpath_ng.ext import parse
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_batch
    from moto.stepfunctions.parser.asl.utils import json_path

    batch = state_task_service_batch.boto_client_for("us-east-1", "batch")
    assert batch is state_task_service_batch.boto_client_for("us-east-1", "batch")
    assert batch.meta.endpoint_url.endswith(f":{offline_aws.port}")
    assert batch is not state_task_service_batch.boto_client_for("eu-west-1", "batch")
    makers = {
        name: module.boto_client_for
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser.") and hasattr(module, "boto_client_for")
    }
    assert "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils" in makers
    assert set(makers.values()) == {state_task_service_batch.boto_client_for}, makers
    data = {"plan": {"files": [{"key": "a.json"}, {"key": "b.json"}]}}
    assert json_path.extract_json("$.plan.files[*].key", data) == ["a.json", "b.json"]
    for path in ("$.plan.files[*].key", "$.plan.files[1]", "$.plan.files[?(@.key == 'a.json')]"):
        assert json_path.parse(path) is json_path.parse(path)
        assert [m.value for m in json_path.parse(path).find(data)] == [m.value for m in parse(path).find(data)]
    assert result_path.parse("$.plan") is result_path.parse("$.plan")
    assert result_path.parse("$.plan").update_or_create({}, 1) == parse_path("$.plan").update_or_create({}, 1)


def test_describe_jobs_answers_while_a_submit_adds_a_job(offline_aws):
    """A bulk run's index runs submit and describe jobs side by side. moto walked its job table while a
    submit from another thread added to it, and the .sync task asking failed ("dictionary changed size
    during iteration"). Here a submit lands between two jobs of the walk; DescribeJobs still answers."""
    from moto.batch_simple.models import batch_simple_backends  # the offline stack's (no Docker)

    backend = batch_simple_backends["123456789012"]["us-east-1"]

    class Job:
        def __init__(self, name: str, submits: bool = False) -> None:
            self.arn, self.name, self.submits = f"arn:job/{name}", name, submits

        def describe(self) -> dict:
            if self.submits:  # another thread's submit, landing now
                backend._jobs[f"late-{uuid.uuid4().hex}"] = Job("late")
            return {"jobName": self.name}

    saved = dict(backend._jobs)
    backend._jobs.clear()
    backend._jobs.update({"a": Job("a", submits=True), "b": Job("b")})
    try:
        assert [j["jobName"] for j in backend.describe_jobs(None)] == ["a", "b"]
        assert [j["jobName"] for j in backend.describe_jobs(["arn:job/b"])] == ["b"]
    finally:
        backend._jobs.clear()
        backend._jobs.update(saved)
