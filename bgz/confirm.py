"""`bgz confirm`: tell a run waiting in RefreshReaders (ReaderRefresh=confirm) that the bioindex was restarted.

The run's confirmation state recorded its task token in the run folder (refresh.json, or
refresh-revert.json when the flag was set back); sending it back resumes the run, which then proves
what the restarted processes read before anything is deleted.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime

from batch_job.errors import BadInput
from batch_job.records import TIME_FORMAT, Refresh, now, parse_time
from bgz import runs
from bgz.stack import Stack


def waiting(stack: Stack, description: dict) -> tuple[Refresh, bool] | None:
    """The confirmation a running execution waits for (and whether it is for the flag set back), if any."""
    if description["status"] != "RUNNING":
        return None
    run = stack.run_folder(description["name"])
    for revert in (True, False):
        refresh = run.read_refresh(revert)
        if (
            refresh is not None
            and refresh.task_token
            and not refresh.done_at
            and refresh.execution == description["name"]
        ):
            return refresh, revert
    return None


def asked_at(refresh: Refresh) -> datetime:
    return parse_time(refresh.started)


def confirm(stack: Stack, description: dict) -> str:
    """Resume one waiting run; returns what was done, in words."""
    found = waiting(stack, description)
    if found is None:
        state = "has ended" if description["status"] != "RUNNING" else "is not waiting for a bioindex restart"
        raise BadInput(f"run {description['name']} {state} ({description['status']}); nothing to confirm")
    refresh, revert = found
    who = getpass.getuser()
    output = {"confirmedBy": who, "doneAt": now()}
    stack.client("stepfunctions").send_task_success(taskToken=refresh.task_token, output=json.dumps(output))
    refresh.done_at, refresh.confirmed_by = output["doneAt"], who
    stack.run_folder(description["name"]).write_refresh(refresh, revert)
    flag = str(refresh.compressed).lower()
    return f"{description['name']}: confirmed that every bioindex process restarted with compressed={flag}; it goes on"


def confirm_bulk(stack: Stack, bulk_name: str, restarted_at: datetime) -> list[str]:
    """Resume every index run of a bulk run that asked for a restart before `restarted_at`: one restart
    serves them all. A run that asked later set its flag after that restart began, so the restart may not
    have loaded it: it is left waiting, and said so."""
    lines, later = [], []
    for child in runs.children(stack, bulk_name):
        if child["status"] == "RUNNING":
            description = stack.client("stepfunctions").describe_execution(executionArn=child["executionArn"])
            found = waiting(stack, description)
            if found is None:
                continue
            if asked_at(found[0]) < restarted_at:
                lines.append(confirm(stack, description))
            else:
                later.append(description["name"])
    if later:
        lines.append(
            f"not confirmed, asked after {restarted_at.strftime(TIME_FORMAT)}: {', '.join(later)}; "
            "restart the bioindex again, then confirm them"
        )
    if not lines:
        raise BadInput(f"no index run of bulk run {bulk_name} waits for a bioindex restart")
    return lines
