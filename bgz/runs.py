"""Starting, finding and listing executions of the compress and rollback state machines."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from bgz.errors import OperatorError
from bgz.stack import Stack

MODES = ("compress", "rollback")


def execution_name(index: str, now: datetime | None = None) -> str:
    """`<index>-<UTC timestamp>`, in the characters Batch job names allow (they name the jobs)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", index)[: 80 - len(stamp) - 1]
    return f"{safe}-{stamp}"


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


def start(stack: Stack, mode: str, execution_input: dict) -> dict:
    busy = running_on(stack, execution_input["index"], execution_input["prefix"])
    if busy is not None:
        raise OperatorError(
            f"index {execution_input['index']!r} prefix {execution_input['prefix']!r} is already being converted "
            f"by execution {busy['name']} (started {busy['startDate']:%Y-%m-%d %H:%M} UTC)",
            f"follow it with `bgz watch {busy['name']}`",
        )
    return stack.client("stepfunctions").start_execution(
        stateMachineArn=stack.machine_arn(mode),
        name=execution_name(execution_input["index"]),
        input=json.dumps(execution_input),
    )


def find(stack: Stack, execution: str) -> dict:
    """An execution by ARN, or by name in either machine."""
    sfn = stack.client("stepfunctions")
    if execution.startswith("arn:"):
        candidates = [execution]
    else:
        candidates = [
            stack.machine_arn(mode).replace(":stateMachine:", ":execution:") + f":{execution}" for mode in MODES
        ]
    for arn in candidates:
        try:
            return sfn.describe_execution(executionArn=arn)
        except sfn.exceptions.ExecutionDoesNotExist:
            continue
    raise OperatorError(
        f"no execution {execution!r} in the compress or rollback state machine of stack {stack.name!r}",
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
    seconds = int((end - row["startDate"]).total_seconds())
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s")
    )
