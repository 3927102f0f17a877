"""`bgz logs`: the CloudWatch lines of one run - its Batch jobs (each shard's stream) and its Lambdas
(their lines carry the execution's name as correlation id) - in one stream, each line labelled with
its state.

Where each log lives is the template's: jobs in /aws/batch/<stack> (stream bgzip-job/default/<task>),
each Lambda in /aws/lambda/<stack>-<function>; tests/test_template.py checks the names agree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from bgz import runs
from bgz.stack import Stack
from workflow import states

# The state whose Lambda logs where, as /aws/lambda/<stack>-<suffix>.
LAMBDA_LOGS = {
    states.PLAN: "plan",
    states.SET_COMPRESSED: "set-compressed",
    states.SET_UNCOMPRESSED: "set-compressed",
    states.REFRESH_READERS: "refresh-readers",
    states.PROVE_READERS: "prove-readers",
    states.RELOAD_OLD_FLAG: "refresh-readers",
    states.PROVE_OLD_ANSWERS: "prove-readers",
    states.SUMMARIZE: "summarize",
    states.EXPLAIN_FAILURE: "explain-failure",
    states.SELECT_INDEXES: "select-indexes",
    states.REPORT_INDEXES: "report-indexes",
}
JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def job_log_group(stack: Stack) -> str:
    return f"/aws/batch/{stack.name}"


def lambda_log_group(stack: Stack, suffix: str) -> str:
    return f"/aws/lambda/{stack.name}-{suffix}"


@dataclass(frozen=True)
class Source:
    """One place a run's lines are: a job's stream, or a Lambda's group filtered by the execution."""

    state: str
    group: str
    stream: str | None = None  # None: a Lambda's group, filtered by the execution's name
    label: str = ""


def _job_streams(stack: Stack, job_id: str) -> list[tuple[str, str]]:
    """(label, log stream) of a job, or of each child of an array job."""
    batch = stack.client("batch")
    jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
    if not jobs:
        return []
    if not jobs[0].get("arrayProperties", {}).get("size"):
        stream = jobs[0].get("container", {}).get("logStreamName")
        return [("", stream)] if stream else []
    pages = batch.get_paginator("list_jobs")
    children = [
        summary["jobId"]
        for status in JOB_STATUSES
        for page in pages.paginate(arrayJobId=job_id, jobStatus=status)
        for summary in page.get("jobSummaryList", [])
    ]
    found = []
    for start in range(0, len(children), 100):
        for child in batch.describe_jobs(jobs=children[start : start + 100])["jobs"]:
            stream = child.get("container", {}).get("logStreamName")
            if stream:
                found.append((f" shard {child.get('arrayProperties', {}).get('index', '?')}", stream))
    return sorted(found)


def sources(stack: Stack, execution_arn: str) -> list[Source]:
    """Every log source of the execution so far, from its history."""
    found: list[Source] = []
    state = ""
    for event in runs.history(stack, execution_arn):
        if event["type"].endswith("StateEntered"):
            state = states.main_state(event["stateEnteredEventDetails"]["name"])
            if state in LAMBDA_LOGS:
                source = Source(state, lambda_log_group(stack, LAMBDA_LOGS[state]))
                if source not in found:
                    found.append(source)
        job_id = runs.submitted_job(event)
        for label, stream in _job_streams(stack, job_id) if job_id else []:
            found.append(Source(state, job_log_group(stack), stream, label))
    return found


def _events(stack: Stack, source: Source, execution: str, start_ms: int) -> Iterator[dict]:
    logs = stack.client("logs")
    try:  # a job that has not written yet has no stream; a Lambda never invoked, no group
        if source.stream is not None:
            kwargs = {"logGroupName": source.group, "logStreamName": source.stream, "startFromHead": True}
            kwargs["startTime"] = start_ms
            token = None
            while True:
                page = logs.get_log_events(**kwargs, **({"nextToken": token} if token else {}))
                yield from page["events"]
                if not page["events"] or page.get("nextForwardToken") in (None, token):
                    return
                token = page["nextForwardToken"]
        kwargs = {"logGroupName": source.group, "startTime": start_ms, "filterPattern": f'"{execution}"'}
        for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
            yield from (e for e in page["events"] if _correlation_id(e["message"]) == execution)
    except logs.exceptions.ResourceNotFoundException:
        return


def _correlation_id(message: str) -> str | None:
    """The execution a Lambda's line belongs to (Powertools writes it as correlation_id)."""
    try:
        body = json.loads(message)
    except ValueError:
        return None
    return body.get("correlation_id") if isinstance(body, dict) else None


def _text(message: str) -> str:
    """A Powertools JSON line as `LEVEL message {extra}`; any other line as it is."""
    try:
        body = json.loads(message)
    except ValueError:
        return message
    if not isinstance(body, dict) or "message" not in body:
        return message
    skip = {"level", "message", "timestamp", "service", "location", "correlation_id", "xray_trace_id"}
    extra = {k: v for k, v in body.items() if k not in skip and not k.startswith("function_") and k != "cold_start"}
    return f"{body.get('level', '')} {body['message']}" + (f" {json.dumps(extra)}" if extra else "")


@dataclass(frozen=True)
class Only:
    """Which lines to show: one state's, from a time on, containing a text (as `grep -F`)."""

    state: str | None = None
    since: datetime | None = None
    text: str | None = None

    def keeps(self, line: str) -> bool:
        """A line of the state's sources, from `since` on (CloudWatch's startTime): does it hold the text?"""
        return not self.text or self.text in line


def lines(stack: Stack, description: dict, only: Only, seen: set) -> list[str]:
    """The execution's log lines not in `seen` (which they are added to), labelled by state."""
    start = description["startDate"]
    start_ms = int((start if isinstance(start, datetime) else datetime.now(UTC)).timestamp() * 1000) - 60_000
    if only.since:
        start_ms = max(start_ms, int(only.since.timestamp() * 1000))
    out = []
    for source in sources(stack, description["executionArn"]):
        if only.state and source.state != only.state:
            continue
        for event in _events(stack, source, description["name"], start_ms):
            key = (source.group, source.stream, event["timestamp"], event["message"])
            if key in seen:
                continue
            seen.add(key)
            line = f"[{source.state}{source.label}] {_text(event['message'])}"
            if only.keeps(line):
                out.append(line)
    return out


def follow(stack: Stack, description: dict, only: Only, interval: float, out) -> None:
    """Print the lines as they come until the execution ends."""
    sfn = stack.client("stepfunctions")
    seen: set = set()
    while True:
        description = sfn.describe_execution(executionArn=description["executionArn"])
        for line in lines(stack, description, only, seen):
            out.write(line + "\n")
        out.flush()
        if description["status"] != "RUNNING":
            return
        time.sleep(interval)
