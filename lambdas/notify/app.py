"""Notify: when a compress, rollback or bulk run ends, tell the notification topic in plain words.

Step Functions sends every execution's status change to EventBridge; the stack's rule passes the
ends of its three machines here. A success says what the run did (its summary, or a bulk run's
table); anything else says why (the Error and Cause the failure path wrote) and where to look. The
index runs of a bulk run stay quiet: the bulk run's own notice covers them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from workflow.boundary import BulkSummary, RunSummary

logger = Logger()
tracer = Tracer()

SUBJECT_LIMIT = 99  # SNS: e-mail subjects must be under 100 characters


def _summary(output: dict[str, Any]) -> str:
    bulk = BulkSummary.from_json(output)
    if bulk is not None:
        return bulk.table
    summary = RunSummary.from_json(output)
    if summary is None:
        return json.dumps(output)
    proven = "the bioindex's readers were proven" if summary.readers_proven else "the readers were not proven"
    return (
        f"{summary.mode} of index {summary.index} prefix {summary.prefix}: {summary.sentence()}; "
        f"{summary.objects_deleted} objects deleted; {proven}. Run folder: {summary.run_folder}"
    )


def index_run_of_a_bulk_run(detail: dict[str, Any]) -> bool:
    """An index run the bulk machine started: the bulk run's own notice names every index, so its
    300 index runs do not each send one."""
    try:
        execution_input = json.loads(detail.get("input") or "{}")
    except json.JSONDecodeError:
        return False
    return isinstance(execution_input, dict) and "bulkConcurrency" in execution_input


def _output(detail: dict[str, Any]) -> str:
    """The execution's output; EventBridge leaves out one over 248 KiB (outputDetails.truncated),
    and Step Functions still has it."""
    if detail.get("output") is not None or not detail.get("executionArn"):
        return detail.get("output") or "{}"
    try:
        found = boto3.client("stepfunctions").describe_execution(executionArn=detail["executionArn"])
    except Exception:  # the notice still goes out, saying where the output is
        logger.exception("could not read the execution's output")
        return json.dumps({"output": f"not shown: see the execution {detail['executionArn']}"})
    return found.get("output") or "{}"


def message(detail: dict[str, Any]) -> tuple[str, str]:
    """The subject and body for one execution's end."""
    name, status = detail.get("name", "?"), detail.get("status", "?")
    machine = str(detail.get("stateMachineArn", "")).rsplit(":", 1)[-1]
    subject = f"bgzip-workflow: {name} {status}"[:SUBJECT_LIMIT]
    if status == "SUCCEEDED":
        try:
            output = json.loads(_output(detail))
        except json.JSONDecodeError:
            output = {"output": detail.get("output")}
        body = f"Run {name} of {machine} SUCCEEDED.\n\n{_summary(output)}"
    else:
        body = (
            f"Run {name} of {machine} {status}.\n\n{detail.get('error') or 'no error given'}: "
            f"{detail.get('cause') or 'no cause given'}\n\nIts logs: bgz logs {name}. "
            "What to do: README.md, When something fails."
        )
    return subject, body


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    detail = event.get("detail") or {}
    if index_run_of_a_bulk_run(detail):
        logger.info("an index run of a bulk run: the bulk run tells", extra={"execution": detail.get("name")})
        return {"skipped": detail.get("name")}
    subject, body = message(detail)
    boto3.client("sns").publish(TopicArn=os.environ["NOTIFY_TOPIC_ARN"], Subject=subject, Message=body)
    logger.info("notified", extra={"subject": subject})
    return {"subject": subject, "message": body}
