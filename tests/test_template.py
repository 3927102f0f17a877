"""The SAM template and the ASL files, checked offline: linters, substitutions, the SAM transform,
least privilege, and the one property that matters most - no path deletes before the flag is set."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from offline import authorization
from offline.cfn_yaml import load_template
from offline.intrinsics import Intrinsics, parameter_errors, parameter_values, rule_function_errors
from workflow import states

ROOT = Path(__file__).resolve().parent.parent
MACHINES = {
    "CompressStateMachine": ("statemachine/compress.asl.json", states.SET_COMPRESSED, states.DELETE_ORIGINALS),
    "RollbackStateMachine": ("statemachine/rollback.asl.json", states.SET_UNCOMPRESSED, states.REMOVE_COMPRESSED),
}
ALL_MACHINES = {name: path for name, (path, _, _) in MACHINES.items()} | {
    "BulkStateMachine": "statemachine/bulk.asl.json"
}
BATCH_ERRORS = {"Batch.AWSBatchException", "Batch.ServerException", "Batch.TooManyRequestsException"}
LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"}


def asl(path: str) -> dict:
    return json.loads((ROOT / path).read_text())


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


@pytest.fixture(scope="module")
def transformed() -> dict:
    """The template as CloudFormation sees it after `sam package` (local paths become S3 URIs)."""
    return copy.deepcopy(authorization.transformed())


@pytest.mark.parametrize("name", ALL_MACHINES)
def test_substitutions_match_both_ways(template, name):
    props = template["Resources"][name]["Properties"]
    used = set(re.findall(r"\$\{(\w+)\}", (ROOT / props["DefinitionUri"]).read_text()))
    assert used == set(props["DefinitionSubstitutions"])


def test_sam_transform_produces_the_stack(transformed):
    types = {r["Type"] for r in transformed["Resources"].values()}
    assert {"AWS::StepFunctions::StateMachine", "AWS::Lambda::Function", "AWS::Batch::JobDefinition"} <= types
    assert {
        "CompressStateMachineArn",
        "RollbackStateMachineArn",
        "BulkStateMachineArn",
        "RunBucketName",
        "JobRepositoryUri",
    } <= set(transformed["Outputs"])


def test_the_bulk_machine_starts_only_the_compress_and_rollback_machines(transformed):
    """Its children are whole runs with every guard of their own: it may start, follow and stop those
    two machines' executions, and touches no data itself."""
    starts, other = [], []
    for role, statement in _statements(transformed["Resources"]):
        if role != "BulkStateMachineRole" or statement["Effect"] != "Allow":
            continue
        actions = _listify(statement["Action"])
        if "states:StartExecution" in actions:
            starts += _listify(statement["Resource"])
        other += [a for a in actions if a.startswith("s3:") or a.startswith("batch:")]
    assert sorted(json.dumps(r) for r in starts) == sorted(
        json.dumps({"Ref": name}) for name in ("CompressStateMachine", "RollbackStateMachine")
    )
    assert other == [], "the bulk machine reads and deletes no data and runs no job itself"
    machine = asl(ALL_MACHINES["BulkStateMachine"])
    child = machine["States"][states.CONVERT_EACH_INDEX]["ItemProcessor"]["States"][states.CONVERT_INDEX]
    assert child["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert any("States.ALL" in c["ErrorEquals"] for c in child["Catch"]), "one index failing does not stop the others"


def _branches(policies: list) -> list[dict]:
    """Policies, with both branches of a conditional (Fn::If) policy."""
    out = []
    for policy in policies:
        if "Fn::If" in policy:
            out.extend(b for b in policy["Fn::If"][1:] if isinstance(b, dict) and "Ref" not in b)
        else:
            out.append(policy)
    return out


def _statements(resources: dict):
    for name, res in resources.items():
        props = res.get("Properties", {})
        docs = [p["PolicyDocument"] for p in _branches(props.get("Policies", [])) if "PolicyDocument" in p]
        if res["Type"] == "AWS::S3::BucketPolicy":
            continue  # resource policies: checked separately
        for doc in docs:
            for statement in doc["Statement"]:
                yield name, statement


def _listify(value) -> list:
    return value if isinstance(value, list) else [value]


def test_no_iam_users_or_keys(transformed):
    types = {r["Type"] for r in transformed["Resources"].values()}
    assert not types & {"AWS::IAM::User", "AWS::IAM::AccessKey", "AWS::IAM::UserToGroupAddition"}


def test_least_privilege_s3(transformed):
    write = re.compile(r"^s3:(Put|Delete|Abort|\*)")
    for role, statement in _statements(transformed["Resources"]):
        if statement["Effect"] != "Allow":
            continue
        actions = _listify(statement["Action"])
        assert "s3:*" not in actions and "*" not in actions, role
        if any(a.startswith("s3:") for a in actions):
            for resource in _listify(statement["Resource"]):
                text = json.dumps(resource)
                assert text != '"*"' and "arn:aws:s3:::*" not in text, (role, statement)
                if statement.get("Sid") == "ReadTheDatabaseCaBundle":  # one object, the operator's
                    assert actions == ["s3:GetObject"] and 'Ref": "BioindexDatabaseCaBundle' in text, statement
                    continue
                assert "DataBucket" in text or "RunBucket" in text, (role, statement)
        if any(write.match(a) for a in actions):
            assert all(json.dumps(r) != '"*"' for r in _listify(statement["Resource"])), role


def _tail(resource: str) -> str:
    """What a `!Sub` resource ARN names after its last substitution: the key pattern."""
    return json.loads(resource)["Fn::Sub"].rsplit("}", 1)[-1]


def test_only_the_delete_steps_and_the_canary_delete_data_each_its_suffixes_and_only_by_etag(transformed):
    """Delete removes X.json, RemoveCompressed X.json.gz and its .gzi, ProveReaders one canary file;
    Plan, Summarize and ExplainFailure delete only prefix locks. Every delete in the data bucket needs s3:if-match."""
    deleters: dict[str, list[str]] = {}
    for role, statement in _statements(transformed["Resources"]):
        if statement["Effect"] != "Allow" or "s3:DeleteObject" not in _listify(statement["Action"]):
            continue
        resources = [json.dumps(r) for r in _listify(statement["Resource"])]
        if any("DataBucket" in r for r in resources):
            assert statement.get("Condition") == authorization.IF_MATCH_REQUIRED, (role, statement)
            deleters.setdefault(role, []).extend(resources)
    suffixes = {role: sorted(_tail(r) for r in found) for role, found in deleters.items()}
    assert suffixes == {
        "DeleteJobRole": ["*.json"],
        "RemoveCompressedJobRole": ["*.json.gz", "*.json.gz.gzi"],
        "ProveReadersFunctionRole": ["*.json", "*.json.gz", "*.json.gz.gzi"],
        "PlanFunctionRole": ["/.bgzip-workflow/locks/*"],
        "SummarizeFunctionRole": ["/.bgzip-workflow/locks/*"],
        "ExplainFailureFunctionRole": ["/.bgzip-workflow/locks/*"],
    }


def test_each_step_writes_only_its_own_side_under_the_allowed_prefix(transformed):
    writes = {}
    for role, statement in _statements(transformed["Resources"]):
        if statement["Effect"] == "Allow" and "s3:PutObject" in _listify(statement["Action"]):
            for resource in _listify(statement["Resource"]):
                text = json.dumps(resource)
                if "DataBucket" in text and "locks" not in text:
                    assert "${AllowedPrefix}" in text, (role, text)
                    writes.setdefault(role, set()).add(_tail(text))
    assert writes == {
        "CompressJobRole": {"*.json.gz", "*.json.gz.gzi"},
        "DecompressJobRole": {"*.json"},
        # Each delete step puts back the side it deleted, if the bioindex flag changes under it.
        "DeleteJobRole": {"*.json"},
        "RemoveCompressedJobRole": {"*.json.gz", "*.json.gz.gzi"},
        "ProveReadersFunctionRole": {"*.json", "*.json.gz", "*.json.gz.gzi"},  # restores the canary
    }


def test_log_groups_outlive_the_stack_with_a_retention(template):
    """The runs' logs are kept like their run folders (sam delete would otherwise take them)."""
    groups = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert len(groups) >= 9
    for name, group in groups.items():
        assert group.get("DeletionPolicy") == "Retain" == group.get("UpdateReplacePolicy"), name
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_run_bucket_is_private_encrypted_and_expires(template):
    props = template["Resources"]["RunBucket"]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"]


@pytest.mark.parametrize(
    ("image", "kept"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/bgzip-workflow-job:20261129T120000Z", "20261129T120000Z"),
        ("placeholder", "none"),  # the first deploy, before an image is published
    ],
)
def test_the_image_the_job_definitions_name_never_expires(template, image, kept):
    """ECR's lifecycle keeps the 20 newest images, and first of all the deployed one: more than 20 pushes
    (test images, other branches) must not expire the image every job of the stack starts from."""
    values = parameter_values(template, {"DataBucket": "data", "JobImageUri": image})
    text = Intrinsics(values).resolve(template["Resources"]["JobRepository"]["Properties"]["LifecyclePolicy"])
    rules = sorted(json.loads(text["LifecyclePolicyText"])["rules"], key=lambda r: r["rulePriority"])
    assert rules[0]["selection"] == {
        "tagStatus": "tagged",
        "tagPatternList": [kept],
        "countType": "imageCountMoreThan",
        "countNumber": 1,
    }
    assert rules[-1]["selection"]["tagStatus"] == "any" and rules[-1]["selection"]["countNumber"] == 20


def test_job_definitions_carry_retry_timeout_and_string_parameters(template):
    jobs = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::Batch::JobDefinition"}
    assert len(jobs) == 5
    for name, res in jobs.items():
        props = res["Properties"]
        assert props["RetryStrategy"]["Attempts"] >= 2, name
        assert props["Timeout"]["AttemptDurationSeconds"] > 0, name
        assert all(isinstance(v, str) for v in props.get("Parameters", {}).values()), name
        assert props["ContainerProperties"]["Command"][1:3] == ["--run-folder", "Ref::runFolder"], name


def _graph(machine: dict) -> dict[str, set[str]]:
    edges = {}
    for name, state in machine["States"].items():
        nxt = {state.get("Next"), state.get("Default")}
        nxt |= {c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])}
        edges[name] = {n for n in nxt if n}
    return edges


def _reachable(edges: dict[str, set[str]], start: str, without: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node in seen or node == without:
            continue
        seen.add(node)
        todo.extend(edges[node])
    return seen


@pytest.mark.parametrize("name", MACHINES)
@pytest.mark.parametrize("guard", ["flag", states.PROVE_READERS])
def test_no_path_deletes_without_the_flag_read_back_and_the_reader_proof(name, guard):
    path, flag_state, delete_state = MACHINES[name]
    guard_state = flag_state if guard == "flag" else guard
    machine = asl(path)
    edges = _graph(machine)
    assert not any(s.startswith(delete_state) for s in _reachable(edges, machine["StartAt"], without=guard_state))
    # and the guard only moves on to deletion when it succeeds: its Catch leads to the Fail path
    for catch in machine["States"][guard_state]["Catch"]:
        assert not any(s.startswith(delete_state) for s in _reachable(edges, catch["Next"], without=guard_state))


@pytest.mark.parametrize("name", MACHINES)
def test_the_reader_proof_sits_between_the_flag_and_the_deletion(name):
    path, flag_state, delete_state = MACHINES[name]
    machine = asl(path)["States"]
    prove, refresh = states.PROVE_READERS, states.REFRESH_READERS
    assert machine[flag_state]["Next"] == refresh and machine[prove]["Next"] == delete_state
    assert machine[prove]["Parameters"]["Payload"]["compressed"] is (flag_state == states.SET_COMPRESSED)
    # every refresh mode ends in ProveReaders, or its failure
    assert machine[refresh]["Default"] == prove
    ends = {s.get("Next") for n, s in machine.items() if states.main_state(n) == refresh and s["Type"] == "Task"}
    ends |= {c["Next"] for n, s in machine.items() if n == f"{refresh} done?" for c in s["Choices"]}
    assert ends == {prove, f"{refresh} wait", f"{refresh} done?"}, ends


@pytest.mark.parametrize("name", MACHINES)
def test_every_task_retries_service_errors_and_is_caught(name):
    machine = asl(MACHINES[name][0])
    for state_name, state in machine["States"].items():
        if state["Type"] != "Task":
            continue
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        wanted = BATCH_ERRORS if "batch:" in state["Resource"] else LAMBDA_ERRORS
        assert wanted <= retried, state_name
        assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), state_name
        if "batch:" in state["Resource"]:
            assert state["Resource"].endswith(".sync"), state_name
            for key, value in state["Parameters"]["Parameters"].items():
                assert key.endswith(".$") or isinstance(value, str), (state_name, key)


def test_set_compressed_retries_an_unavailable_bioindex():
    for path, flag_state, _ in MACHINES.values():
        state = asl(path)["States"][flag_state]
        assert any("BioindexUnavailable" in r["ErrorEquals"] for r in state["Retry"])
        assert state["Parameters"]["Payload"]["compressed"] is (flag_state == states.SET_COMPRESSED)


def test_notifications_are_optional_and_cover_every_end_of_every_machine(template):
    resources = template["Resources"]
    notify = resources["NotifyFunction"]
    assert notify["Condition"] == "Notifies" and resources["NotificationTopic"]["Condition"] == "HasNotificationEmail"
    pattern = notify["Properties"]["Events"]["RunEnded"]["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.states"] and pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert set(pattern["detail"]["status"]) == {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
    assert pattern["detail"]["stateMachineArn"] == [
        {"Ref": name} for name in ("CompressStateMachine", "RollbackStateMachine", "BulkStateMachine")
    ]


def test_jobs_are_submitted_by_job_definition_name_and_may_be_only_these(template):
    """Redeploy-safe: the machines name each job definition, not a revision; the role allows exactly
    those names (any revision)."""
    resources = template["Resources"]
    for name in MACHINES:
        props = resources[name]["Properties"]
        used = set(re.findall(r'"JobDefinition": "\$\{(\w+)\}"', (ROOT / props["DefinitionUri"]).read_text()))
        for key in used:
            assert key.endswith("JobDefinitionName"), key
            definition = resources[key.removesuffix("Name")]["Properties"]["JobDefinitionName"]
            assert props["DefinitionSubstitutions"][key] == definition
            suffix = definition["Fn::Sub"].removeprefix("${AWS::StackName}")
            submit = next(
                st
                for p in props["Policies"]
                if isinstance(p, dict) and "Statement" in p
                for st in p["Statement"]
                if st.get("Sid") == "SubmitJobs"
            )
            arns = {r["Fn::Sub"] for r in submit["Resource"] if isinstance(r, dict) and "Fn::Sub" in r}
            base = "arn:${AWS::Partition}:batch:${AWS::Region}:${AWS::AccountId}:job-definition/${AWS::StackName}"
            assert {base + suffix, base + suffix + ":*"} <= arns, (name, key)


def test_stuck_jobs_are_cancelled_and_job_sizes_are_valid_fargate_pairs(template):
    """Batch cancels a RUNNABLE job only for the blocked reasons it acts on (its user guide, "Automatic
    remediation with jobStateTimeLimitActions"): one action for each."""
    queue = template["Resources"]["JobQueue"]["Properties"]
    actions = queue["JobStateTimeLimitActions"]
    assert {a["Reason"] for a in actions} == {
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    }
    for action in actions:
        assert action["State"] == "RUNNABLE" and action["Action"] == "CANCEL"
        assert action["MaxTimeSeconds"] == {"Ref": "RunnableTimeoutSeconds"}
    rules = {
        r["RuleCondition"]["Fn::Equals"][1]: r["Assertions"][0]["Assert"]["Fn::Contains"][0]
        for n, r in template["Rules"].items()
        if n.startswith("FargateMemoryFor")
    }
    assert set(rules) == set(template["Parameters"]["JobVcpus"]["AllowedValues"])
    defaults = template["Parameters"]
    assert defaults["JobMemoryMiB"]["Default"] in rules[defaults["JobVcpus"]["Default"]]
    assert "2048" not in rules["2"] and "16384" in rules["2"] and "122880" in rules["16"]


def test_jobs_get_no_public_ip_unless_asked_and_s3_can_skip_the_nat(template):
    params, resources = template["Parameters"], template["Resources"]
    assert params["AssignPublicIp"]["Default"] == "DISABLED"
    endpoint = resources["S3GatewayEndpoint"]
    assert endpoint["Condition"] == "HasS3GatewayEndpoint" and endpoint["Properties"]["VpcEndpointType"] == "Gateway"
    assert endpoint["Properties"]["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"}
    assert endpoint["Properties"]["RouteTableIds"] == {"Ref": "S3GatewayEndpointRouteTableIds"}
    assert params["S3GatewayEndpointRouteTableIds"]["Default"] == "", "optional: off unless route tables are given"


def _refused(template, **values) -> list[str]:
    required = {
        "DataBucket": "data",
        "BioindexDatabaseSecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:x",
        "BioindexDatabaseCaBundle": "s3://config-bucket/rds/global-bundle.pem",
    }
    return parameter_errors(template, parameter_values(template, required | values))


def test_tls_to_the_database_is_the_default_and_needs_its_ca_bundle(template):
    assert template["Parameters"]["BioindexDatabaseTls"]["Default"] == "verify-full"
    assert [e.split(":")[0] for e in _refused(template, BioindexDatabaseCaBundle="")] == ["TlsNeedsTheCaBundle"]
    assert _refused(template, BioindexDatabaseCaBundle="", BioindexDatabaseTls="off") == []
    assert _refused(template, BioindexDatabaseCaBundle="", FlagBackend="http", InsecureBioindexUrl="http://b") == []
    assert any(e.startswith("BioindexDatabaseCaBundle") for e in _refused(template, BioindexDatabaseCaBundle="b/k"))
    assert any(e.startswith("BioindexDatabaseTls") for e in _refused(template, BioindexDatabaseTls="on"))


def test_the_template_refuses_plain_http_and_invalid_sizes_before_creating_anything(template):
    """CloudFormation checks parameters and Rules before it creates anything; evaluated here as it
    would (the offline stack applies the same check to every test deployment)."""
    assert _refused(template) == []
    assert any(e.startswith("BioindexUrl: must be an https:// URL") for e in _refused(template, BioindexUrl="http://b"))
    assert _refused(template, BioindexUrl="https://b.example.org/") == []
    assert _refused(template, InsecureBioindexUrl="http://10.0.0.5:8000") == []
    both = _refused(template, InsecureBioindexUrl="http://10.0.0.5", BioindexUrl="https://b.example.org")
    assert both == ["OneBioindexUrl: Give BioindexUrl (https://) or InsecureBioindexUrl (http://), not both."]
    assert any(e.startswith("InsecureBioindexUrl") for e in _refused(template, InsecureBioindexUrl="https://x"))
    assert any(e.startswith("HttpNeedsTheServer") for e in _refused(template, FlagBackend="http"))
    assert _refused(template, FlagBackend="http", InsecureBioindexUrl="http://10.0.0.5") == []
    assert any(e.startswith("FargateMemoryFor4Vcpu") for e in _refused(template, JobVcpus="4", JobMemoryMiB="4096"))
    assert any(e.startswith("AllowedPrefix") for e in _refused(template, AllowedPrefix="no-slash"))


@pytest.mark.parametrize(
    ("function", "argument"),
    [("Fn::Join", ["", {"Ref": "SubnetIds"}]), ("Fn::Sub", "${VpcId}"), ("Fn::If", ["Spot", "a", "b"])],
)
def test_rules_use_only_what_cloudformation_accepts_in_rules(template, function, argument):
    """Anything but the rule functions in a rule fails change-set creation for the whole template,
    whatever the parameters (cfn-lint does not see it): the offline evaluator refuses it too."""
    assert rule_function_errors(template) == []
    probe = copy.deepcopy(template)
    condition = {"Fn::Not": [{"Fn::Equals": [{function: argument}, ""]}]}
    probe["Rules"]["Probe"] = {"RuleCondition": condition, "Assertions": [{"Assert": {"Fn::Equals": ["a", "a"]}}]}
    assert _refused(probe) == [f"rule Probe uses {function}, which CloudFormation does not accept in Rules"]


def test_each_refresh_mode_needs_what_it_uses(template):
    assert any(e.startswith("EcsRefreshNeedsTheServices") for e in _refused(template, ReaderRefresh="ecs-service"))
    ecs = {"ReaderRefresh": "ecs-service", "BioindexEcsCluster": "c"}
    assert _refused(template, **ecs) == [
        "EcsRefreshNeedsTheServices: ReaderRefresh=ecs-service needs BioindexEcsServices."
    ]
    assert _refused(template, **ecs, BioindexEcsServices="bioindex,bioindex-b") == []
    assert _refused(template, ReaderRefresh="hook") == [
        "HookRefreshNeedsTheHook: ReaderRefresh=hook needs ReaderRefreshHookArn."
    ]
    hook = "arn:aws:lambda:us-east-1:123456789012:function:restart-bioindex"
    assert _refused(template, ReaderRefresh="hook", ReaderRefreshHookArn=hook) == []
    assert _refused(template, ReaderRefresh="sometimes")
    vpc = {"LambdaSubnetIds": "subnet-1,subnet-2", "LambdaSecurityGroupIds": "sg-1"}
    assert _refused(template, **vpc) == []
    assert [e.split(":")[0] for e in _refused(template, LambdaSubnetIds="subnet-1")] == ["LambdaVpcNeedsSecurityGroups"]
    assert [e.split(":")[0] for e in _refused(template, LambdaSecurityGroupIds="sg-1")] == [
        "LambdaSecurityGroupsNeedSubnets"
    ]
    routes = {"S3GatewayEndpointRouteTableIds": "rtb-1,rtb-2"}
    assert [e.split(":")[0] for e in _refused(template, **routes)] == ["S3GatewayEndpointNeedsTheVpc"]
    assert _refused(template, **routes, VpcId="vpc-1") == []


def test_spot_falls_back_to_on_demand_fargate(template):
    resources = template["Resources"]
    spot, on_demand = resources["ComputeEnvironment"], resources["OnDemandComputeEnvironment"]
    assert spot["Properties"]["ComputeResources"]["Type"] == {"Fn::If": ["Spot", "FARGATE_SPOT", "FARGATE"]}
    assert on_demand["Condition"] == "Spot" and on_demand["Properties"]["ComputeResources"]["Type"] == "FARGATE"
    order = resources["JobQueue"]["Properties"]["ComputeEnvironmentOrder"]
    assert order[0] == {"Order": 1, "ComputeEnvironment": {"Ref": "ComputeEnvironment"}}
    assert order[1]["Fn::If"][0] == "Spot" and order[1]["Fn::If"][1]["Order"] == 2


def test_a_kms_key_is_granted_through_s3_only_to_the_roles_that_touch_data_objects(transformed):
    granted = set()
    for role, statement in _statements(transformed["Resources"]):
        if "kms:Decrypt" in _listify(statement["Action"]):
            assert _listify(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
            assert statement["Resource"] == {"Ref": "DataBucketKmsKeyArn"}
            assert statement["Condition"] == {
                "StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}
            }
            granted.add(role)
    jobs = {f"{step}JobRole" for step in ("Compress", "Verify", "Delete", "Decompress", "RemoveCompressed")}
    roles = ("Plan", "SetCompressed", "ProveReaders", "Summarize", "ExplainFailure")  # a lock is a data object
    functions = {f"{name}FunctionRole" for name in roles}
    assert granted == jobs | functions


def test_every_batch_step_waits_no_longer_than_plan_allows():
    for path in ("statemachine/compress.asl.json", "statemachine/rollback.asl.json"):
        tasks = [s for s in asl(path)["States"].values() if s.get("Resource", "").endswith("submitJob.sync")]
        assert len(tasks) == 6
        for task in tasks:
            assert re.fullmatch(r"\$\.plan\.timeouts\.[a-z_]+", task["TimeoutSecondsPath"]), task


def test_the_offline_stack_reads_the_template_as_cfn_lint_does():
    """offline/cfn_yaml.py (PyYAML and CloudFormation's short tags) instead of cfn-lint's decoder, so
    that the demo needs no linter: both read template.yaml to the same document."""
    from cfnlint.decode import decode_str

    from offline import cfn_yaml

    text = (ROOT / "template.yaml").read_text()
    linted, errors = decode_str(text)
    assert not errors
    assert cfn_yaml.loads(text) == json.loads(json.dumps(linted))
    assert cfn_yaml.loads("A: !GetAtt B.C.D\nE: !If [X, !Ref Y, !Sub 'z${Z}']\nF: !Condition G\n") == {
        "A": {"Fn::GetAtt": ["B", "C.D"]},
        "E": {"Fn::If": ["X", {"Ref": "Y"}, {"Fn::Sub": "z${Z}"}]},
        "F": {"Condition": "G"},
    }
