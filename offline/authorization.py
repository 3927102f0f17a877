"""Least privilege, checked: every AWS call a component made in an offline run (offline/recorder.py)
against the policies of that component's role, as the SAM transform generates them from
template.yaml for that stack. moto's IAM policy engine decides (actions and resources, Allow and
Deny); the two conditions the template uses are decided here: `Null s3:if-match false` on deletes,
from whether the call carried the ETag the object must still have, and `kms:ViaService` on the data
bucket's KMS key, which only the requests S3 makes to KMS for the caller satisfy.

moto enforces no IAM on the calls themselves. So the same decision is made twice: as each job or
Lambda makes a call (`Enforcer`: a call its role does not allow fails with AccessDenied, as on AWS,
and changes nothing), and over every recorded call after a run (`denied`), which also sees the
state machines' own calls and the permissions an error reply needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from moto.iam.access_control import IAMPolicy, PermissionResult

from offline.intrinsics import Intrinsics
from offline.recorder import Call

# The one condition the roles use: a delete must name the ETag the object must still have (an
# If-Match that is present and not "*").
IF_MATCH_REQUIRED = {"Null": {"s3:if-match": "false"}, "StringNotEquals": {"s3:if-match": "*"}}
# What Step Functions itself does for a `.sync` task besides the calls it makes in the execution's
# name (the AWS Step Functions developer guide, "IAM policies for" AWS Batch / Step Functions).
SYNC_RULES = {
    "batch": "StepFunctionsGetEventsForBatchJobsRule",
    "stepfunctions": "StepFunctionsGetEventsForStepFunctionsExecutionRule",
}


@dataclass(frozen=True)
class Request:
    """One IAM authorization a call needs: an action on a resource."""

    action: str
    resource: str
    if_match: str | None = None  # the request's s3:if-match, if it has one
    via_service: str | None = None  # kms:ViaService: the service that asked KMS for the caller

    @property
    def names_an_etag(self) -> bool:
        return self.if_match not in (None, "", "*")

    def __str__(self) -> str:
        text = f"{self.action} on {self.resource}" + (f" with s3:if-match {self.if_match}" if self.if_match else "")
        return text + (f" via {self.via_service}" if self.via_service else "")


def _s3_object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _copy_source(source: Any) -> str:
    if isinstance(source, dict):
        return _s3_object(source["Bucket"], source["Key"])
    bucket, _, key = source.lstrip("/").partition("/")
    return _s3_object(bucket, key.split("?versionId=")[0])


# What S3 asks KMS for, as the caller, on an object of an SSE-KMS bucket (S3 user guide, "Using
# server-side encryption with AWS KMS keys"): reading decrypts its data key; writing makes one; each
# part of a multipart upload decrypts the upload's. HEAD and deletes use no key.
KMS_FOR = {
    "GetObject": ("kms:Decrypt",),
    "PutObject": ("kms:GenerateDataKey",),
    "CreateMultipartUpload": ("kms:GenerateDataKey",),
    "UploadPart": ("kms:Decrypt",),
    "CompleteMultipartUpload": ("kms:Decrypt",),
}


def _kms_requests(call: Call, region: str, keys: dict[str, str]) -> list[Request]:
    """The KMS authorizations S3 needs from the caller for this call; `keys`: bucket -> its KMS key."""
    p, op = call.params, call.operation
    via = f"s3.{region}.amazonaws.com"
    if call.error or op not in (*KMS_FOR, "CopyObject", "UploadPartCopy"):
        return []
    if op in ("CopyObject", "UploadPartCopy"):
        source = _copy_source(p["CopySource"]).removeprefix("arn:aws:s3:::").partition("/")[0]
        requests = [Request("kms:Decrypt", keys[source], via_service=via)] if source in keys else []
        if p["Bucket"] in keys:  # a copy makes the object's data key; a copied part uses the upload's
            action = "kms:GenerateDataKey" if op == "CopyObject" else "kms:Decrypt"
            requests.append(Request(action, keys[p["Bucket"]], via_service=via))
        return requests
    if p["Bucket"] not in keys:
        return []
    return [Request(action, keys[p["Bucket"]], via_service=via) for action in KMS_FOR[op]]


def _s3_requests(call: Call) -> list[Request]:
    p, op = call.params, call.operation
    bucket = f"arn:aws:s3:::{p['Bucket']}"
    key = _s3_object(p["Bucket"], p["Key"]) if "Key" in p else None
    if op in ("GetObject", "HeadObject"):
        requests = [Request("s3:GetObject", key)]
        if call.error in ("404", "NoSuchKey"):  # S3 says "not found" only to who may list the bucket
            requests.append(Request("s3:ListBucket", bucket))
        return requests
    simple = {
        "PutObject": "s3:PutObject",
        "CreateMultipartUpload": "s3:PutObject",
        "UploadPart": "s3:PutObject",
        "CompleteMultipartUpload": "s3:PutObject",
        "AbortMultipartUpload": "s3:AbortMultipartUpload",
        "ListParts": "s3:ListMultipartUploadParts",
    }
    if op == "PutObject":  # a conditional overwrite (a lock's renewal) names the version it replaces
        return [Request("s3:PutObject", key, if_match=p.get("IfMatch"))]
    if op in simple:
        return [Request(simple[op], key)]
    if op in ("ListObjectsV2", "ListObjects", "HeadBucket"):
        return [Request("s3:ListBucket", bucket)]
    if op == "ListMultipartUploads":
        return [Request("s3:ListBucketMultipartUploads", bucket)]
    if op in ("DeleteObject", "DeleteObjects"):  # a batch is authorized as a DeleteObject of each key
        objects = p["Objects"] if op == "DeleteObjects" else [{"Key": p["Key"], "ETag": p.get("IfMatch")}]
        requests = []
        for o in objects:
            target = _s3_object(p["Bucket"], o["Key"])
            requests.append(Request("s3:DeleteObject", target, if_match=o["ETag"]))
            if o["ETag"]:  # a conditional delete also needs s3:GetObject (S3 user guide)
                requests.append(Request("s3:GetObject", target))
        return requests
    if op in ("CopyObject", "UploadPartCopy"):
        return [Request("s3:GetObject", _copy_source(p["CopySource"])), Request("s3:PutObject", key)]
    raise AssertionError(f"no IAM mapping for s3:{op}: add it to offline/authorization.py")


def requests_of(call: Call, region: str, account: str, keys: dict[str, str] | None = None) -> list[Request]:
    """The authorizations AWS checks for this call (the Service Authorization Reference); `keys`
    names the SSE-KMS buckets' keys, which S3 uses as the caller."""
    p, op = call.params, call.operation
    if call.service == "s3":
        return _s3_requests(call) + _kms_requests(call, region, keys or {})
    if call.service == "stepfunctions":
        if op == "StartExecution":
            requests = [Request("states:StartExecution", p["stateMachineArn"])]
            if call.component.startswith("state-machine:"):  # startExecution.sync:2
                execution = p["stateMachineArn"].replace(":stateMachine:", ":execution:") + ":*"
                requests += _sync_requests("stepfunctions", region, account, [("states:StopExecution", execution)])
            return requests
        if op in ("DescribeExecution", "StopExecution"):
            return [Request(f"states:{op}", p["executionArn"])]
        if op == "ListExecutions":
            return [Request("states:ListExecutions", p["stateMachineArn"])]

    def arn(name_or_arn: str, service: str, kind: str) -> str:  # an API takes either
        prefix = f"arn:aws:{service}:{region}:{account}:{kind}"
        return name_or_arn if name_or_arn.startswith("arn:") else prefix + name_or_arn

    if call.service == "lambda" and op == "Invoke":
        return [Request("lambda:InvokeFunction", arn(p["FunctionName"], "lambda", "function:"))]
    if call.service == "batch":
        if op == "SubmitJob":
            queue = arn(p["jobQueue"], "batch", "job-queue/")
            definition = arn(p["jobDefinition"], "batch", "job-definition/")
            requests = [Request("batch:SubmitJob", queue), Request("batch:SubmitJob", definition)]
            job = f"arn:aws:batch:{region}:{account}:job/the-submitted-job"  # its ID is made at submit
            return requests + _sync_requests("batch", region, account, [("batch:TerminateJob", job)])
        if op == "DescribeJobs":
            return [Request("batch:DescribeJobs", "*")]
        if op == "TerminateJob":
            return [Request("batch:TerminateJob", arn(p["jobId"], "batch", "job/"))]
    if call.service == "secretsmanager" and op == "GetSecretValue":
        return [Request("secretsmanager:GetSecretValue", p["SecretId"])]
    if call.service == "ecs" and op in ("UpdateService", "DescribeServices"):
        cluster = p.get("cluster", "default").rsplit("/", 1)[-1]
        services = [p["service"]] if op == "UpdateService" else p["services"]
        return [Request(f"ecs:{op}", arn(s, "ecs", f"service/{cluster}/")) for s in services]
    if call.service == "sns" and op == "Publish":
        return [Request("sns:Publish", p["TopicArn"])]
    raise AssertionError(f"no IAM mapping for {call.service}:{op}: add it to offline/authorization.py")


def _sync_requests(service: str, region: str, account: str, stop: list[tuple[str, str]]) -> list[Request]:
    """A `.sync` task: Step Functions stops the work if the execution stops, and follows it with a
    managed EventBridge rule in the account."""
    rule = f"arn:aws:events:{region}:{account}:rule/{SYNC_RULES[service]}"
    events = [Request(f"events:{action}", rule) for action in ("PutTargets", "PutRule", "DescribeRule")]
    return [Request(action, resource) for action, resource in stop] + events


# ---- the roles, as the SAM transform makes them ------------------------------------------------


@cache
def transformed() -> dict:
    """template.yaml after the SAM transform (code locations as `sam package` leaves them)."""
    from offline.cfn_yaml import load_template

    return transform(load_template())


def transform(template: dict) -> dict:
    """A SAM template after the SAM transform (code locations as `sam package` leaves them)."""
    import copy
    import os

    from samtranslator.translator.transform import transform as sam_transform

    template = copy.deepcopy(template)
    template["Globals"]["Function"]["CodeUri"] = "s3://artifacts/lambdas.zip"
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Serverless::StateMachine":
            res["Properties"]["DefinitionUri"] = "s3://artifacts/machine.asl.json"
        if res["Type"] == "AWS::Serverless::LayerVersion":
            res["Properties"]["ContentUri"] = "s3://artifacts/layer.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    class NoManagedPolicyNames:  # the template names managed policies by ARN
        def load(self) -> dict:
            return {}

    return sam_transform(template, {}, NoManagedPolicyNames())


@cache
def _managed_policies() -> dict:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)


def _managed_policy(arn: str) -> dict:
    return _managed_policies()[arn.rsplit("/", 1)[-1]]["Document"]


@dataclass(frozen=True)
class Role:
    name: str  # its logical id in the transformed template
    documents: list[dict]

    def decide(self, request: Request) -> bool:
        """Allowed by some statement and denied by none (moto's engine), the if-match condition decided
        here: a statement that requires it applies only to a request that names an ETag. A statement
        this check cannot decide fails it, rather than being read as allowing."""
        allowed = False
        for document in self.documents:
            statements = []
            for statement in document["Statement"]:
                if "Resource" not in statement:  # moto would read it as a trust policy: allowing
                    raise AssertionError(f"{self.name}: the check cannot decide a statement without Resource")
                condition = statement.get("Condition")
                if condition is not None:
                    if condition == IF_MATCH_REQUIRED:
                        applies = request.names_an_etag
                    elif list(condition) == ["StringEquals"] and list(condition["StringEquals"]) == ["kms:ViaService"]:
                        applies = request.via_service == condition["StringEquals"]["kms:ViaService"]
                    else:
                        raise AssertionError(f"{self.name}: the check cannot decide the condition {condition}")
                    if not applies:
                        continue
                    statement = {k: v for k, v in statement.items() if k != "Condition"}
                statements.append(statement)
            result = IAMPolicy(json.dumps({"Statement": statements})).is_action_permitted(
                request.action, request.resource
            )
            if result == PermissionResult.DENIED:
                return False
            allowed = allowed or result == PermissionResult.PERMITTED
        return allowed


def roles(stack, template: dict | None = None) -> dict[str, Role]:
    """Each component of this offline stack (as the recorder names it) and its role, from the
    transformed template.yaml or the given transformed template."""
    template = template or transformed()
    names = Intrinsics(stack.refs, template.get("Conditions", {}))
    resources = {
        name: res
        for name, res in template["Resources"].items()
        if "Condition" not in res or names.condition(res["Condition"])
    }

    def role(ref: dict) -> Role:
        name = ref["Fn::GetAtt"][0] if isinstance(ref["Fn::GetAtt"], list) else ref["Fn::GetAtt"].split(".")[0]
        props = names.resolve(resources[name]["Properties"])
        documents = [policy["PolicyDocument"] for policy in props.get("Policies", [])]
        documents += [_managed_policy(arn) for arn in props.get("ManagedPolicyArns", [])]
        return Role(name, documents)

    components = {}
    for name, res in resources.items():
        props = res["Properties"]
        if res["Type"] == "AWS::Lambda::Function":
            components[f"function:{stack.name}-{name}"] = role(props["Role"])
        elif res["Type"] == "AWS::Batch::JobDefinition":
            definition = names.resolve(props["JobDefinitionName"])
            components[f"job-definition:{definition}"] = role(props["ContainerProperties"]["JobRoleArn"])
        elif res["Type"] == "AWS::StepFunctions::StateMachine":
            components[f"state-machine:{names.resolve(props['StateMachineName'])}"] = role(props["RoleArn"])
    return components


def denied(stack, calls: list[Call], region: str, account: str, template: dict | None = None) -> list[str]:
    """Each call of this stack's components that its role does not allow, in words; [] if none."""
    components = roles(stack, template)
    key = stack.refs.get("DataBucketKmsKeyArn")
    keys = {stack.data_bucket: key} if key else {}
    refused = []
    decided: dict[tuple[str, Request], bool] = {}  # a run makes the same request many times
    for call in calls:
        role = components.get(call.component)
        if role is None:
            if call.component.split(":", 1)[1].startswith(f"{stack.name}-"):
                raise AssertionError(f"{call.component} of stack {stack.name} has no role in the template")
            continue  # another stack's component
        for request in requests_of(call, region, account, keys):
            allowed = decided.get((call.component, request))
            if allowed is None:
                allowed = decided[call.component, request] = role.decide(request)
            if not allowed:
                refused.append(f"{role.name} may not {request} ({call.component} called {call.operation})")
    return sorted(set(refused))


# ---- the same decision as each call is made -----------------------------------------------------

ROLES_FILE = "roles-{stack}.json"


def write_roles(stack, folder: Path, template: dict | None = None) -> None:
    """What the enforcing recorder of this stack's jobs and Lambdas reads: each component's role,
    resolved for this stack, and the data bucket's KMS key."""
    key = stack.refs.get("DataBucketKmsKeyArn")
    record = {
        "keys": {stack.data_bucket: key} if key else {},
        "roles": {component: role.documents for component, role in roles(stack, template).items()},
        "names": {component: role.name for component, role in roles(stack, template).items()},
    }
    (folder / ROLES_FILE.format(stack=stack.name)).write_text(json.dumps(record))


class Enforcer:
    """IAM on the calls of one job or Lambda process, as AWS applies it: a call its role does not
    allow fails with AccessDenied before it reaches moto; a DeleteObjects batch deletes the keys
    the role may delete and reports each other one as AccessDenied, as S3 does."""

    def __init__(self, folder: Path, component: str, region: str, account: str) -> None:
        self.component, self.region, self.account = component, region, account
        self.role: Role | None = None
        self.keys: dict[str, str] = {}
        for path in folder.glob(ROLES_FILE.format(stack="*")):
            record = json.loads(path.read_text())
            if component in record["roles"]:
                self.role = Role(record["names"][component], record["roles"][component])
                self.keys = record["keys"]

    def _refused(self, call: Call) -> list[Request]:
        requests = requests_of(call, self.region, self.account, self.keys)
        return [request for request in requests if not self.role.decide(request)]

    def _message(self, request: Request) -> str:
        return (
            f"User: arn:aws:sts::{self.account}:assumed-role/{self.role.name}/{self.component} is not authorized "
            f'to perform: {request.action} on resource: "{request.resource}" because no identity-based policy '
            f"allows the {request.action} action"
        )

    def make(self, call: Call, params: dict, send: Callable[[dict], Any]) -> Any:
        """Send the call if the role allows it; else refuse it as AWS would."""
        if self.role is None:  # a function the test harness made itself, outside any stack
            return send(params)
        if call.operation == "DeleteObjects":
            return self._delete_objects(call, params, send)
        refused = self._refused(call)
        if refused:
            error = {"Error": {"Code": "AccessDenied", "Message": self._message(refused[0])}}
            raise ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": 403}}, call.operation)
        return send(params)

    def _delete_objects(self, call: Call, params: dict, send: Callable[[dict], Any]) -> Any:
        bucket, objects = params["Bucket"], params["Delete"]["Objects"]
        errors, allowed = [], []
        for o in objects:
            naming = {"Bucket": bucket, "Key": o["Key"], "IfMatch": o.get("ETag")}
            refused = self._refused(Call(call.component, "s3", "DeleteObject", naming))
            if refused:
                errors.append({"Key": o["Key"], "Code": "AccessDenied", "Message": self._message(refused[0])})
            else:
                allowed.append(o)
        if not errors:
            return send(params)
        reply = send({**params, "Delete": {**params["Delete"], "Objects": allowed}}) if allowed else {}
        return {**reply, "Errors": [*reply.get("Errors", []), *errors]}


# ---- every grant, as text, for the reviewed allow-list -------------------------------------------


def _text(value: Any) -> str:
    """A template value as the text an operator reviews: ${Name} for references, Sub strings as
    written, anything else as its JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"${{{arg}}}"
        if fn == "Fn::GetAtt":
            return f"${{{arg if isinstance(arg, str) else '.'.join(arg)}}}"
        if fn == "Fn::Sub" and isinstance(arg, str):
            return arg
        if fn == "Fn::Sub":
            text, names = arg
            for name, named in names.items():
                text = text.replace(f"${{{name}}}", _text(named))
            return text
        if fn == "Fn::If":
            condition, yes, no = arg
            return f"({condition} ? {_text(yes)} : {_text(no)})"
    return json.dumps(value, sort_keys=True)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _when(role: str, value: Any) -> tuple[str, Any]:
    """(the condition a policy is attached under, '-' for always; the policy)."""
    if not (isinstance(value, dict) and "Fn::If" in value):
        return "-", value
    condition, yes, no = value["Fn::If"]
    if no != {"Ref": "AWS::NoValue"}:  # listed as text it could not be compared: fail, never pass
        raise AssertionError(f"{role}: a policy chosen by {condition} either way; list both branches here first")
    return condition, yes


def grants(template: dict) -> set[str]:
    """Every permission each role of the transformed template grants, one line each:
    role, the condition the policy exists under ('-': always), then a managed policy's ARN, or a
    statement's effect, action, resource and condition. Comparing this set with a reviewed list
    catches any grant added, not only one a call happens to need."""
    lines = set()
    for name, res in template["Resources"].items():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User", "AWS::IAM::Group"):
            raise AssertionError(f"{name}: a {res['Type']} grants outside the roles; list it here first")
        if res["Type"] != "AWS::IAM::Role":
            continue
        if "PermissionsBoundary" in res["Properties"]:
            raise AssertionError(f"{name}: a permissions boundary; list it here first")
        props = res["Properties"]
        for arn in props.get("ManagedPolicyArns", []):
            when, arn = _when(name, arn)
            lines.add(f"{name}\t{when}\tmanaged\t{_text(arn)}")
        for policy in props.get("Policies", []):
            when, policy = _when(name, policy)
            for statement in _listed(policy["PolicyDocument"]["Statement"]):
                condition = json.dumps(statement["Condition"], sort_keys=True) if "Condition" in statement else "-"
                targets = [("Resource", r) for r in _listed(statement.get("Resource", []))]
                targets += [("NotResource", r) for r in _listed(statement.get("NotResource", []))]
                for action in _listed(statement.get("Action", [])) + [
                    f"not {a}" for a in _listed(statement.get("NotAction", []))
                ]:
                    for kind, resource in targets:
                        resource_text = _text(resource) if kind == "Resource" else f"not {_text(resource)}"
                        lines.add(f"{name}\t{when}\t{statement['Effect']}\t{action}\t{resource_text}\t{condition}")
    return lines


if __name__ == "__main__":  # python -m offline.authorization > tests/iam_grants.txt, after review
    print("# Every grant of template.yaml's roles, reviewed: role, policy condition, effect, action, resource,")
    print("# statement condition (tab-separated). tests/test_iam.py fails on any difference, either way.")
    print("\n".join(sorted(grants(transformed()))))
