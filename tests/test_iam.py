"""Least privilege, enforced: the AWS calls that real offline runs make, component by component,
against the roles the SAM transform makes from template.yaml (offline/authorization.py).

Every Deployment also checks its own calls when it closes, so each workflow test's runs - rollbacks,
refusals and failures included - stay within their roles; here the check itself is shown to bite,
on the calls of one compress run.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import pytest

from batch_job.keys import compressed_key
from offline import authorization, recorder
from offline.deployer import ACCOUNT, REGION
from offline.recorder import Call
from offline.runner import ROOT
from tests.stacks import PREFIX, Deployment

FUNCTIONS = ("PlanFunction", "SetCompressedFunction", "ProveReadersFunction", "SummarizeFunction")
JOBS = ("compress", "verify", "delete")


def write_as(component: str, env: dict, bucket: str, key: str, size: int) -> None:
    """Write `size` bytes to s3://bucket/key with the engine's own writer, in a process of its own
    recorded as `component` (its multipart parts go up from worker threads)."""
    code = textwrap.dedent(f"""
        from offline.recorder import install_from_environment
        install_from_environment()
        from batch_job.stores import S3Store
        S3Store({bucket!r}).write({key!r}, iter([b"x" * {size}]), {{}}, {size})
    """)
    run_env = {**env, recorder.COMPONENT: component, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=run_env, cwd=ROOT, check=True)


def without(template: dict, role: str, sid: str, action: str) -> dict:
    """The transformed template with one action taken out of one statement of one role."""
    changed = copy.deepcopy(template)
    for policy in changed["Resources"][role]["Properties"]["Policies"]:
        if "Fn::If" in policy:  # an optional policy (e.g. the restart hook's): its statements, when present
            policy = policy["Fn::If"][1]
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement.get("Sid") == sid:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert action in actions, (role, sid, actions)
                statement["Action"] = [a for a in actions if a != action]
                return changed
    raise AssertionError(f"{role} has no statement {sid}")


ALLOW_LIST = ROOT / "tests" / "iam_grants.txt"


def _allowed() -> set[str]:
    return {line for line in ALLOW_LIST.read_text().splitlines() if line and not line.startswith("#")}


def _differences(template: dict) -> tuple[set[str], set[str]]:
    """(granted but not on the reviewed list, on the list but no longer granted)."""
    granted, allowed = authorization.grants(template), _allowed()
    return granted - allowed, allowed - granted


def test_the_roles_grant_exactly_the_reviewed_allow_list():
    """Both ways: a grant the template adds, or one it drops, is a difference a reviewer must see
    (regenerate with `python -m offline.authorization > tests/iam_grants.txt`, then review the diff).
    The runs' calls are checked against the same roles (below and in every Deployment)."""
    extra, gone = _differences(authorization.transformed())
    assert not extra, "granted, not on tests/iam_grants.txt:\n" + "\n".join(sorted(extra))
    assert not gone, "on tests/iam_grants.txt, no longer granted:\n" + "\n".join(sorted(gone))


@pytest.mark.parametrize(
    ("role", "action", "resource"),
    [
        ("DeleteJobRole", "s3:DeleteObjectVersion", {"Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}/*"}),
        ("DeleteJobRole", "s3:PutBucketPolicy", {"Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}"}),
        ("DeleteJobRole", "s3:PutLifecycleConfiguration", {"Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}"}),
        ("CompressJobRole", "s3:GetObject", "*"),
        ("CompressJobRole", "states:*", "*"),
    ],
)
def test_any_grant_added_to_a_role_is_a_difference(role, action, resource):
    """Grants no call needs passed the call-based check; the allow-list sees every one."""
    changed = copy.deepcopy(authorization.transformed())
    policy = {
        "PolicyName": "added",
        "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]},
    }
    changed["Resources"][role]["Properties"]["Policies"].append(policy)
    extra, gone = _differences(changed)
    assert len(extra) == 1 and not gone
    assert next(iter(extra)).startswith(f"{role}\t-\tAllow\t{action}\t")


def test_every_call_of_a_compress_run_is_allowed_by_its_own_role(recorded_runs):
    d, calls = recorded_runs
    seen = {c.component for c in calls}
    expected = (
        {f"function:{d.name}-{f}" for f in FUNCTIONS}
        | {f"job-definition:{d.name}-{j}" for j in JOBS}
        | {f"state-machine:{d.name}-compress"}
    )
    assert expected <= seen, f"components that made no call: {sorted(expected - seen)}"
    # The calls were recorded: each original was read, compressed by the compress job and deleted.
    gets = {c.params.get("Key", "") for c in calls if c.operation == "GetObject"}
    originals = {k for k in gets if k.startswith(PREFIX) and k.endswith(".json")}
    written = {c.params.get("Key") for c in calls if c.component == f"job-definition:{d.name}-compress"}
    deleted = {o["Key"] for c in calls if c.operation == "DeleteObjects" for o in c.params["Objects"]}
    assert originals and all(f"{k}.gz" in written and k in deleted for k in originals), (originals, deleted)
    assert authorization.denied(d.stack, calls, REGION, ACCOUNT) == []


def test_large_plans_and_outputs_go_up_in_parts_within_their_roles(recorded_runs):
    """A plan.json over 16 MiB (about 85,000 files) and any output over 16 MiB go up in parts: the
    writer first lists unfinished uploads of its key (s3:ListBucketMultipartUploads)."""
    d, calls = recorded_runs
    operations = {(c.component.rsplit("-", 1)[-1], c.operation) for c in calls}
    assert {("PlanFunction", "ListMultipartUploads"), ("PlanFunction", "UploadPart")} <= operations
    assert {("compress", "ListMultipartUploads"), ("compress", "CompleteMultipartUpload")} <= operations
    assert authorization.denied(d.stack, calls, REGION, ACCOUNT) == []


@pytest.mark.parametrize(
    ("role", "sid", "action", "call"),
    [
        # The defect a real deployment hit: Plan could not write a plan of more than ~85,000 files.
        ("PlanFunctionRole", "FindUnfinishedPlanUploads", "s3:ListBucketMultipartUploads", "ListMultipartUploads"),
        ("DeleteJobRole", "DeleteVerifiedOriginals", "s3:DeleteObject", "DeleteObjects"),
        ("CompressJobRole", "WriteCompressed", "s3:PutObject", "PutObject"),
        # The jobs read the bioindex flag themselves, with the Lambdas' secret.
        ("DeleteJobRole", "ReadTheFlagFromTheDatabase", "secretsmanager:GetSecretValue", "GetSecretValue"),
        ("CompressJobRole", "ReadTheFlagFromTheDatabase", "secretsmanager:GetSecretValue", "GetSecretValue"),
        ("ProveReadersFunctionRole", "ReadTheCanaryAndRestoreItIfNeeded", "s3:GetObject", "HeadObject"),
        ("CompressStateMachineRole", "SubmitJobs", "batch:SubmitJob", "SubmitJob"),
        ("CompressStateMachineRole", "SyncRule", "events:PutRule", "SubmitJob"),
    ],
)
def test_a_role_missing_a_permission_the_code_uses_fails_the_check(offline_aws, recorded_runs, role, sid, action, call):
    d, calls = recorded_runs
    reduced = without(authorization.transformed(), role, sid, action)
    denied = authorization.denied(d.stack, calls, REGION, ACCOUNT, template=reduced)
    assert any(f"{role} may not {action} " in line and f"called {call})" in line for line in denied), denied


@pytest.mark.parametrize("etag", [None, "*"])
def test_a_delete_that_names_no_etag_is_refused_even_where_deletes_are_allowed(recorded_runs, etag):
    d, calls = recorded_runs
    deletes = [c for c in calls if c.operation == "DeleteObjects" and c.component.endswith("-delete")]
    assert deletes and all(o["ETag"] and o["ETag"] != "*" for c in deletes for o in c.params["Objects"])
    assert authorization.denied(d.stack, deletes, REGION, ACCOUNT) == []
    bare = [
        Call(c.component, c.service, c.operation, {**c.params, "Objects": [{**o, "ETag": etag} for o in objects]})
        for c in deletes
        for objects in [c.params["Objects"]]
    ]
    denied = authorization.denied(d.stack, bare, REGION, ACCOUNT)
    assert denied and all("DeleteJobRole may not s3:DeleteObject" in line for line in denied)


def test_a_run_outside_the_allowed_prefix_is_refused_by_plan_before_anything_is_written(recorded_runs):
    """AllowedPrefix reaches Plan as ALLOWED_PREFIX (template Globals); set here as a redeploy with
    AllowedPrefix=other/ would set it."""
    d, _ = recorded_runs
    lam = d.aws.client("lambda")
    name = d.stack.refs["PlanFunction"]
    variables = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**variables, "ALLOWED_PREFIX": "other/"}}
    )
    before = {o["Key"] for o in d.s3.list_objects_v2(Bucket=d.stack.run_bucket).get("Contents", [])}
    try:
        result = d.run("rollback")
    finally:
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
    assert result["status"] == "FAILED"
    assert "outside this stack's AllowedPrefix 'other/'" in result["cause"]
    assert d.locks() == [] and d.flag() is True
    after = {o["Key"] for o in d.s3.list_objects_v2(Bucket=d.stack.run_bucket).get("Contents", [])}
    assert after == before, "nothing written to the run bucket"


@pytest.fixture(scope="module")
def recorded_runs(offline_aws, tmp_path_factory, mariadb):
    """One compress run's calls, shared by the checks here."""
    d = Deployment(offline_aws, tmp_path_factory.mktemp("recorded"), mariadb)
    try:
        assert d.run("compress")["status"] == "SUCCEEDED"
        # Over 16 MiB: a plan of about 85,000 files, and a large output, written as Plan and compress do.
        size = 17 << 20
        write_as(
            f"function:{d.name}-PlanFunction", offline_aws.runner.env, d.stack.run_bucket, "runs/big/plan.json", size
        )
        output = compressed_key(f"{PREFIX}big.json")
        write_as(f"job-definition:{d.name}-compress", offline_aws.runner.env, d.stack.data_bucket, output, size)
        d.s3.delete_object(Bucket=d.stack.data_bucket, Key=output)
        yield d, d.calls()
    finally:
        d.close()


def test_a_data_bucket_encrypted_with_kms_is_used_through_s3_only(offline_aws, tmp_path, mariadb):
    """DataBucketKmsKeyArn: every object the run reads and writes in the data bucket is SSE-KMS, and
    each read and write is also a KMS request S3 makes as the role (kms:ViaService s3), which the
    roles allow only through S3. Without the key statement, or with another ViaService, the same
    calls are refused."""
    d = Deployment(offline_aws, tmp_path, mariadb, data_bucket_key=True)
    try:
        assert d.run("compress")["status"] == "SUCCEEDED"
        gz = next(k for k in d.data_keys() if k.endswith(".json.gz"))
        head = d.s3.head_object(Bucket=d.stack.data_bucket, Key=gz)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == d.data_key
        calls = d.calls()
        keys = {d.stack.data_bucket: d.data_key}
        kms = {
            (c.component.split(":", 1)[1].removeprefix(f"{d.name}-"), r.action)
            for c in calls
            for r in authorization.requests_of(c, REGION, ACCOUNT, keys)
            if r.action.startswith("kms:")
        }
        assert {("compress", "kms:Decrypt"), ("compress", "kms:GenerateDataKey"), ("verify", "kms:Decrypt")} <= kms
        assert authorization.denied(d.stack, calls, REGION, ACCOUNT) == []

        template = copy.deepcopy(authorization.transformed())
        policies = template["Resources"]["CompressJobRole"]["Properties"]["Policies"]
        policies[:] = [p for p in policies if "data-bucket-key" not in json.dumps(p)]
        refused = authorization.denied(d.stack, calls, REGION, ACCOUNT, template)
        assert any("CompressJobRole may not kms:GenerateDataKey on " + d.data_key in r for r in refused), refused

        template = json.loads(
            json.dumps(authorization.transformed()).replace("s3.${AWS::Region}", "ec2.${AWS::Region}")
        )
        refused = authorization.denied(d.stack, calls, REGION, ACCOUNT, template)
        assert any("VerifyJobRole may not kms:Decrypt" in r for r in refused), refused
    finally:
        d.close()


def test_a_call_the_role_does_not_allow_is_refused_as_it_is_made(offline_aws, tmp_path, mariadb):
    """The offline stack's jobs and Lambdas meet IAM as on AWS (authorization.Enforcer): Summarize's
    role may delete a lock naming its ETag, but no original; in one DeleteObjects call S3 deletes
    the one and reports the other AccessDenied, and a lone DeleteObject of an original fails whole.
    Both originals stay."""
    d = Deployment(offline_aws, tmp_path, mariadb)
    try:
        lock = ".bgzip-workflow/locks/probe/.lock"
        etag = d.s3.put_object(Bucket=d.stack.data_bucket, Key=lock, Body=b"{}")["ETag"].strip('"')
        original, second = d.json_keys[0], d.json_keys[1]
        head = d.s3.head_object(Bucket=d.stack.data_bucket, Key=original)["ETag"].strip('"')
        code = textwrap.dedent(f"""
            import json
            from offline.recorder import install_from_environment
            install_from_environment()
            import boto3
            s3 = boto3.client("s3")
            objects = [{{"Key": {lock!r}, "ETag": {etag!r}}}, {{"Key": {original!r}, "ETag": {head!r}}}]
            reply = s3.delete_objects(Bucket={d.stack.data_bucket!r}, Delete={{"Objects": objects}})
            print(json.dumps([[o["Key"] for o in reply.get("Deleted", [])], reply.get("Errors", [])]))
            try:
                s3.delete_object(Bucket={d.stack.data_bucket!r}, Key={second!r})
            except s3.exceptions.ClientError as exc:
                print(exc.response["Error"]["Code"], exc.response["Error"]["Message"])
        """)
        env = {**offline_aws.runner.env, recorder.COMPONENT: f"function:{d.name}-SummarizeFunction"}
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        batch, single = out.stdout.splitlines()
        deleted, errors = json.loads(batch)
        assert deleted == [lock]
        assert [(e["Key"], e["Code"]) for e in errors] == [(original, "AccessDenied")]
        assert "SummarizeFunctionRole" in errors[0]["Message"] and "s3:DeleteObject" in errors[0]["Message"]
        assert single.startswith("AccessDenied User: arn:aws:sts::123456789012:assumed-role/SummarizeFunctionRole/")
        assert d.originals_intact()
        assert d.locks() == []
        refused = d.denied()
        # Each refusal is also in the after-run check: a conditional delete needs s3:GetObject too.
        assert [line.split(" on ")[0] for line in refused] == ["SummarizeFunctionRole may not s3:DeleteObject"] * 2 + [
            "SummarizeFunctionRole may not s3:GetObject"
        ], refused
        d.expected_denials.update(refused)
    finally:
        d.close()
