"""Starting, finding and listing executions of the compress and rollback state machines."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from batch_job import keys
from batch_job.sizes import human_duration
from bgz.errors import OperatorError
from bgz.stack import Stack
from workflow.boundary import RunInput

MODES = ("compress", "rollback")
BULK = "bulk"


def timestamped_name(index: str, now: datetime | None = None) -> str:
    """`<index>-<UTC timestamp>`, in the characters Batch job names allow (they name the jobs)."""
    return keys.execution_name(index, (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ"))


def console_url(region: str, execution_arn: str) -> str:
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


def _input(description: dict) -> dict:
    try:
        return json.loads(description.get("input") or "{}")
    except json.JSONDecodeError:
        return {}


def running_on(stack: Stack, index: str, prefix: str) -> dict | None:
    """A RUNNING execution of either machine converting this index and prefix, if any."""
    sfn = stack.client("stepfunctions")
    for mode in MODES:
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=stack.machine_arn(mode), statusFilter="RUNNING"
        ):
            for summary in page["executions"]:
                description = sfn.describe_execution(executionArn=summary["executionArn"])
                wanted = _input(description)
                if wanted.get("index") == index and wanted.get("prefix") == prefix:
                    return description
    return None


def check_not_busy(stack: Stack, index: str, prefix: str) -> None:
    """Refuse a second run of an (index, prefix) while an execution of it runs, naming that one."""
    busy = running_on(stack, index, prefix)
    if busy is not None:
        raise OperatorError(
            f"index {index!r} prefix {prefix!r} is already being converted "
            f"by execution {busy['name']} (started {busy['startDate']:%Y-%m-%d %H:%M} UTC)",
            f"follow it with `bgz watch {busy['name']}`",
        )


def start(stack: Stack, mode: str, run_input: RunInput) -> dict:
    """StartExecution of the mode's machine, named `<index>-<UTC time>`; refused while another
    execution of the same (index, prefix) runs (a check, not a guard: Plan's lock refuses a race)."""
    check_not_busy(stack, run_input.index, run_input.prefix)
    return stack.client("stepfunctions").start_execution(
        stateMachineArn=stack.machine_arn(mode),
        name=timestamped_name(run_input.index),
        input=json.dumps(run_input.to_json()),
    )


def start_bulk(stack: Stack, mode: str, selection: dict) -> dict:
    """Start the bulk machine: the compress or rollback machine once per selected index."""
    name = keys.execution_name(f"{BULK}-{mode}", datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    return stack.client("stepfunctions").start_execution(
        stateMachineArn=stack.machine_arn(BULK), name=name, input=json.dumps({"mode": mode, **selection})
    )


def history(stack: Stack, execution_arn: str) -> list[dict]:
    sfn = stack.client("stepfunctions")
    events: list[dict] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def submitted_job(event: dict) -> str | None:
    """The Batch job id a TaskSubmitted event of a Batch task names, else None."""
    details = event.get("taskSubmittedEventDetails") or {}
    if event["type"] != "TaskSubmitted" or "batch" not in details.get("resourceType", ""):
        return None
    return json.loads(details.get("output") or "{}").get("JobId")


def batch_job_ids(stack: Stack, execution_arn: str) -> list[str]:
    """The Batch jobs an execution submitted (an array job stands for its children)."""
    return [job for event in history(stack, execution_arn) if (job := submitted_job(event))]


def children(stack: Stack, bulk_name: str) -> list[dict]:
    """The child executions a bulk execution started (named `<index>-<bulk execution name>`)."""
    sfn = stack.client("stepfunctions")
    found = []
    for mode in MODES:
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.machine_arn(mode)):
            found += [e | {"mode": mode} for e in page["executions"] if e["name"].endswith(f"-{bulk_name}")]
    return sorted(found, key=lambda e: e["name"])


def find(stack: Stack, execution: str) -> dict:
    """An execution by ARN, or by name in any of the stack's machines."""
    sfn = stack.client("stepfunctions")
    if execution.startswith("arn:"):
        candidates = [execution]
    else:
        machines = [*MODES, BULK] if stack.has_bulk() else list(MODES)
        candidates = [
            stack.machine_arn(mode).replace(":stateMachine:", ":execution:") + f":{execution}" for mode in machines
        ]
    for arn in candidates:
        try:
            return sfn.describe_execution(executionArn=arn)
        except sfn.exceptions.ExecutionDoesNotExist:
            continue
    raise OperatorError(
        f"no execution {execution!r} in the state machines of stack {stack.name!r}",
        "list recent executions with `bgz list`",
    )


def recent(stack: Stack, index: str | None, limit: int) -> list[dict]:
    sfn = stack.client("stepfunctions")
    rows = []
    for mode in MODES:
        for summary in sfn.list_executions(stateMachineArn=stack.machine_arn(mode), maxResults=limit)["executions"]:
            wanted = _input(sfn.describe_execution(executionArn=summary["executionArn"]))
            if index is None or wanted.get("index") == index:
                rows.append({**summary, "mode": mode, "index": wanted.get("index"), "prefix": wanted.get("prefix")})
    return sorted(rows, key=lambda r: r["startDate"], reverse=True)[:limit]


def duration(row: dict) -> str:
    end = row.get("stopDate") or datetime.now(UTC)
    return human_duration((end - row["startDate"]).total_seconds())
