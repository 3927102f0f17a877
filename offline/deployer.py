"""template.yaml's resources created in moto, one function per resource kind, as CloudFormation
would create them for `sam deploy`: the parameters checked against the template's Rules first, then
the buckets, log groups, the Batch queue and job definitions, the Lambdas, the state machines (with
their DefinitionSubstitutions), and a stack whose outputs `bgz` reads.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from offline import authorization, recorder
from offline.cfn_yaml import load_template
from offline.intrinsics import Intrinsics, parameter_errors, parameter_values
from offline.runner import ROOT

if TYPE_CHECKING:
    from offline.aws import OfflineAWS

REGION, ACCOUNT = recorder.REGION, recorder.ACCOUNT
# The stack parameters `bgz` reads: sizes, to estimate time and cost; where the bioindex's prefixes are.
SIZING = ("MaxvCpus", "JobVcpus", "JobMemoryMiB", "UseSpot", "BioindexS3Subdir")


def resolve(value: Any, refs: dict[str, Any], conditions: dict[str, Any] | None = None) -> Any:
    """Resolve the intrinsics the template uses in environments, substitutions and event patterns."""
    return Intrinsics(refs, conditions).resolve(value)


@dataclass
class DeployedStack:
    """What `deploy` created: its buckets, state machines and every resource's physical id."""

    name: str
    data_bucket: str
    run_bucket: str
    compress_arn: str
    rollback_arn: str
    refs: dict[str, str]

    @property
    def bulk_arn(self) -> str:
        return self.refs["BulkStateMachine"]


def deploy(
    aws: OfflineAWS, stack: str, data_bucket: str, parameters: dict[str, str], template: dict | None = None
) -> DeployedStack:
    """Create the template's resources in moto, in the template's order of dependence (the bulk
    machine, which names the other two, after them). `template`: another than template.yaml, e.g. one
    whose role grants more, to show what a check catches."""
    given = template
    template = copy.deepcopy(given) if given is not None else load_template()
    resources = template["Resources"]
    run_bucket = f"{stack}-runs"
    refs = parameter_values(template, {**parameters, "DataBucket": data_bucket})
    names = Intrinsics(refs, template["Conditions"])  # resolves with refs as they fill in below
    refused = parameter_errors(template, refs)
    if refused:  # as CloudFormation would, before creating anything
        raise ValueError(f"stack {stack} refused: " + "; ".join(refused))
    _buckets(aws, (data_bucket, run_bucket))
    refs |= {
        "AWS::StackName": stack,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
        "RunBucket": run_bucket,
        "RunBucket.Arn": f"arn:aws:s3:::{run_bucket}",
    }
    _log_groups(aws, resources, refs, names)
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    role = aws.client("iam").create_role(RoleName=f"{stack}-offline", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    refs["JobQueue"] = _job_queue(aws, stack, role)
    _job_definitions(aws, resources, refs, names)
    _functions(aws, stack, template, parameters, refs, names, role)
    arns = _state_machines(aws, resources, refs, names, role)
    outputs = {
        "BulkStateMachineArn": arns["BulkStateMachine"],
        "CompressStateMachineArn": arns["CompressStateMachine"],
        "RollbackStateMachineArn": arns["RollbackStateMachine"],
        "RunBucketName": run_bucket,
        "DataBucketName": data_bucket,
        "JobRepositoryUri": aws.client("ecr").create_repository(repositoryName=f"{stack}-job")["repository"][
            "repositoryUri"
        ],
        "JobQueueArn": refs["JobQueue"],
        "PlanFunctionName": refs["PlanFunction"],
        "SelectIndexesFunctionName": refs["SelectIndexesFunction"],
    }
    assert set(outputs) == set(template["Outputs"]), "the offline stack has the template's outputs"
    _stack(aws, stack, outputs, refs)
    deployed = DeployedStack(
        stack, data_bucket, run_bucket, arns["CompressStateMachine"], arns["RollbackStateMachine"], refs
    )
    # Each job's and Lambda's role, which its calls are refused by when it does not allow them.
    authorization.write_roles(deployed, aws.calls, None if given is None else authorization.transform(given))
    return deployed


def _buckets(aws: OfflineAWS, buckets: tuple[str, ...]) -> None:
    s3 = aws.client("s3")
    for bucket in buckets:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)


def _log_groups(aws: OfflineAWS, resources: dict, refs: dict[str, Any], names: Intrinsics) -> None:
    logs = aws.client("logs")
    for name, res in resources.items():
        if res["Type"] == "AWS::Logs::LogGroup" and "Condition" not in res:
            refs[name] = names.resolve(res["Properties"]["LogGroupName"])
            refs[f"{name}.Arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{refs[name]}:*"
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=refs[name])


def _job_queue(aws: OfflineAWS, stack: str, role: str) -> str:
    """One queue on an unmanaged environment: the jobs run in the Runner's processes, not on Fargate."""
    batch = aws.client("batch")
    env = batch.create_compute_environment(
        computeEnvironmentName=f"{stack}-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    return batch.create_job_queue(
        jobQueueName=f"{stack}-queue",
        priority=1,
        state="ENABLED",
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )["jobQueueArn"]


def _job_definitions(aws: OfflineAWS, resources: dict, refs: dict[str, Any], names: Intrinsics) -> None:
    """Each job definition's command, parameters, environment and log configuration, as the template has them."""
    batch = aws.client("batch")
    for name, res in resources.items():
        if res["Type"] != "AWS::Batch::JobDefinition":
            continue
        props = res["Properties"]
        container = props["ContainerProperties"]
        refs[name] = batch.register_job_definition(
            jobDefinitionName=names.resolve(props["JobDefinitionName"]),
            type="container",
            parameters=props.get("Parameters", {}),
            containerProperties={
                "image": "bgzip-job:offline",
                "command": container["Command"],
                "environment": [
                    {"name": e["Name"], "value": str(names.resolve(e["Value"]))}
                    for e in container.get("Environment", [])
                ],
                "logConfiguration": {
                    "logDriver": container["LogConfiguration"]["LogDriver"],
                    "options": names.resolve(container["LogConfiguration"]["Options"]),
                },
                "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}],
            },
            platformCapabilities=props.get("PlatformCapabilities", []),
        )["jobDefinitionArn"]


def _functions(
    aws: OfflineAWS,
    stack: str,
    template: dict,
    parameters: dict[str, Any],
    refs: dict[str, Any],
    names: Intrinsics,
    role: str,
) -> None:
    """Each Lambda with its Handler, environment (Globals first), timeout, memory and log group. A test
    may add variables: `Function.Environment` (all) or `<LogicalId>.Environment` in `parameters`."""
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function" or "Condition" in res:
            continue  # the offline stack deploys the defaults: optional parts (notifications) are left out
        props = res["Properties"]
        variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
        variables.update(props.get("Environment", {}).get("Variables", {}))
        variables = {k: str(v) for k, v in names.resolve(variables).items()}
        variables.update(parameters.get("Function.Environment", {}))
        variables.update(parameters.get(f"{name}.Environment", {}))
        memory = props.get("MemorySize", template["Globals"]["Function"].get("MemorySize", 128))
        fn = aws.create_function(f"{stack}-{name}", props["Handler"], variables, props.get("Timeout", 3), role, memory)
        refs[name] = fn["FunctionName"]
        refs[f"{name}.Arn"] = fn["FunctionArn"]
        aws.runner.log_groups[fn["FunctionName"]] = names.resolve(props["LoggingConfig"]["LogGroup"])


def _state_machines(
    aws: OfflineAWS, resources: dict, refs: dict[str, Any], names: Intrinsics, role: str
) -> dict[str, str]:
    """Each machine from its ASL file (DefinitionUri) with its DefinitionSubstitutions made."""
    sfn = aws.client("stepfunctions")
    arns = {}
    for name, res in resources.items():
        if res["Type"] != "AWS::Serverless::StateMachine":
            continue
        props = res["Properties"]
        definition = (ROOT / props["DefinitionUri"]).read_text()
        for key, value in props["DefinitionSubstitutions"].items():
            definition = definition.replace(f"${{{key}}}", names.resolve(value))
        arns[name] = refs[name] = sfn.create_state_machine(
            name=names.resolve(props["Name"]), definition=definition, roleArn=role
        )["stateMachineArn"]
    return arns


def _stack(aws: OfflineAWS, stack: str, outputs: dict[str, str], refs: dict[str, Any]) -> None:
    """A CloudFormation stack holding the outputs and the sizing parameters, which is what `bgz` reads."""
    aws.client("cloudformation").create_stack(
        StackName=stack,
        TemplateBody=json.dumps(
            {
                "Parameters": {name: {"Type": "String"} for name in SIZING},
                "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {name: {"Value": value} for name, value in outputs.items()},
            }
        ),
        Parameters=[{"ParameterKey": name, "ParameterValue": str(refs[name])} for name in SIZING],
    )
