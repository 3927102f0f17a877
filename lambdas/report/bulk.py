"""The ReportIndexes state's Lambda: a bulk run's table, one row per index, read from each index run's
outcome.json (or its execution), written to the bulk run's folder. The index runs released their own
locks.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from report.cause import cap

from batch_job.locations import parse_location
from batch_job.records import Outcome
from batch_job.runfolder import RunFolder, run_folder_uri
from workflow.boundary import BulkSummary, RunSummary, files_sentence
from workflow.events import IndexesEvent

logger = Logger()
tracer = Tracer()
# The engine's own log lines (run folder reads) come out in the same structured form, as before the split.
copy_config_to_registered_loggers(source_logger=logger, include={"bgzip-job"})

ROW_CAUSE = 600  # a bulk table row, as the output shows it (the report in the run bucket has it all)


def _run_of(execution: str) -> RunFolder:
    """The run folder of an execution of this stack, by its name."""
    return RunFolder(parse_location(run_folder_uri(os.environ["RUN_BUCKET"], execution)))


def _described(machine: str, result: dict[str, Any]) -> Outcome:
    """An index run's outcome from Step Functions, when its run folder has none (it ended before
    its Summarize or ExplainFailure could write one)."""
    name = result.get("execution", "")
    arn = machine.replace(":stateMachine:", ":execution:") + ":" + name
    try:
        found = boto3.client("stepfunctions").describe_execution(executionArn=arn)
    except Exception:  # the table still names the run, whose page says why
        logger.exception("could not describe an index run")
        return Outcome(result.get("status", "FAILED"), cause=f"see execution {name}")
    if found["status"] == "SUCCEEDED":
        return Outcome("SUCCEEDED", summary=json.loads(found.get("output") or "{}"))
    return Outcome(found["status"], error=found.get("error", ""), cause=found.get("cause", ""))


def _index_outcome(machine: str, result: dict[str, Any]) -> Outcome:
    try:
        found = _run_of(result.get("execution", "")).read_outcome()
    except Exception:  # malformed or unreadable: Step Functions knows too
        logger.exception("could not read an index run's outcome")
        found = None
    return found if found is not None else _described(machine, result)


def bulk(event: IndexesEvent) -> dict:
    """Every index's outcome, read from its own run: the whole table goes to this bulk run's folder
    (bulk-report.json and .txt); the output holds the counts, the table's head and its address."""
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda r: _index_outcome(event.machine, r), event.results))
    rows = []
    for result, outcome in zip(event.results, outcomes, strict=True):
        summary = RunSummary.from_json(outcome.summary or {})
        failed = result.get("status") != "SUCCEEDED"
        rows.append(
            {
                "index": result.get("index"),
                "prefix": result.get("prefix"),
                "status": "FAILED" if failed else "SUCCEEDED",
                "execution": result.get("execution"),
                "files": summary.files if summary else None,
                "bytesUncompressed": summary.bytes_uncompressed if summary else None,
                "bytesCompressed": summary.bytes_compressed if summary else None,
                "cause": f"{outcome.error or outcome.status}: {outcome.cause}".strip() if failed else "",
            }
        )
    rows += [
        {"index": s.get("index"), "prefix": s.get("prefix"), "status": "SKIPPED", "cause": s.get("reason", "")}
        for s in event.skipped
    ]
    failed = sum(r["status"] == "FAILED" for r in rows)
    converted = sum(r["status"] == "SUCCEEDED" for r in rows)
    head = (
        f"{event.mode} of {len(event.results)} indexes: {converted} succeeded, {failed} failed, "
        f"{len(event.skipped)} skipped"
    )
    run = _run_of(event.execution)
    table = "\n".join([head, *map(_row_line, rows)])
    run.location.store.write_bytes(run.location.key("bulk-report.json"), json.dumps(rows, indent=1).encode())
    run.location.store.write_bytes(run.location.key("bulk-report.txt"), table.encode() + b"\n")
    where = run.location.store.uri(run.location.key("bulk-report.txt"))
    shown = "\n".join([head, *(cap(_row_line(r), ROW_CAUSE) for r in rows)])
    return BulkSummary(
        mode=event.mode,
        converted=converted,
        failed=failed,
        skipped=len(event.skipped),
        table=cap(shown, where=where),
        report=where,
    ).to_json()


def _row_line(row: dict) -> str:
    line = f"{row['index']} {row['prefix']}: {row['status']}"
    if row.get("files") is not None:
        line += ", " + files_sentence(row["files"], row["bytesUncompressed"] or 0, row["bytesCompressed"] or 0)
    return line + (f" ({row['cause']})" if row["cause"] else "")


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=IndexesEvent)
def handler(event: IndexesEvent, context: LambdaContext) -> dict:
    return bulk(event)
