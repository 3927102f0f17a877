"""Follow one execution: the current state, its Batch array's children, and files and bytes done
from the run folder's manifests and the progress records of the shards still working, with the rate
and the time left; at the end the summary or the failure cause in plain words."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from batch_job.sizes import elapsed, human_bytes, seconds_left
from bgz import runs
from bgz.stack import Stack
from workflow import states
from workflow.boundary import BulkSummary, RunSummary


@dataclass
class Snapshot:
    status: str
    state: str
    job_running: bool = False  # the state is a step's Batch job, running
    shards: int = 0
    shards_done: int = 0
    files: int = 0
    files_done: int = 0
    files_failed: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    seconds: float = 0.0  # since the step's state was entered
    children: dict[str, int] | None = None
    running: list[str] | None = None  # a bulk execution's indexes being converted now
    asked: str = ""  # what the run waits for the operator to do (ReaderRefresh=confirm)

    def record(self, outcome: str) -> dict:
        """Where the run is, for scripts (`bgz watch --json`); `outcome` is the ended run's summary or cause."""
        left = seconds_left(self.bytes_done, self.bytes_total, self.seconds) if self.job_running else None
        return {
            "status": self.status,
            "state": self.state,
            "shards": self.shards,
            "shardsDone": self.shards_done,
            "files": self.files,
            "filesDone": self.files_done,
            "filesFailed": self.files_failed,
            "bytes": self.bytes_total,
            "bytesDone": self.bytes_done,
            "stepSeconds": round(self.seconds) if self.job_running else None,
            "secondsLeft": None if left is None else round(left),
            "batchChildren": self.children,
            "converting": self.running,
            "waitingForYou": self.asked or None,
            "outcome": outcome if self.status != "RUNNING" else None,
        }

    def line(self) -> str:
        parts = [f"{self.status.lower()}: {self.state}"]
        if self.children:
            summary = ", ".join(f"{v} {k.lower()}" for k, v in self.children.items() if v)
            parts.append(f"{'index runs' if self.running is not None else 'batch children'}: {summary}")
        if self.running:
            parts.append("converting " + ", ".join(self.running))
        if self.job_running and self.shards:
            frac = self.bytes_done / self.bytes_total if self.bytes_total else 0.0
            bar = "#" * int(20 * frac)
            parts.append(
                f"[{bar:<20}] {self.shards_done}/{self.shards} shards, {self.files_done}/{self.files} files, "
                f"{human_bytes(self.bytes_done)}/{human_bytes(self.bytes_total)}, "
                + elapsed(self.bytes_done, self.bytes_total, self.seconds)
            )
        if self.files_failed:
            parts.append(f"{self.files_failed} files failed")
        if self.asked:
            parts.append(f"WAITING FOR YOU: {self.asked}")
        return " | ".join(parts)


def _batch_children(stack: Stack, events: list[dict]) -> dict[str, int] | None:
    """Status counts of the children of the last Batch job the execution submitted."""
    submitted = [job for event in events if (job := runs.submitted_job(event))]
    if not submitted:
        return None
    jobs = stack.client("batch").describe_jobs(jobs=[submitted[-1]])["jobs"]
    if not jobs:
        return None
    array = jobs[0].get("arrayProperties", {})
    return array.get("statusSummary") or {jobs[0]["status"]: 1}


def is_bulk(description: dict) -> bool:
    return description.get("stateMachineArn", "").endswith("-bulk")


def _bulk_snapshot(stack: Stack, description: dict, state: str) -> Snapshot:
    """A bulk execution: its state and its child executions, one per index."""
    snap = Snapshot(description["status"], state)
    found = runs.children(stack, description["name"])
    counts: dict[str, int] = {}
    for child in found:
        counts[child["status"]] = counts.get(child["status"], 0) + 1
    snap.children = counts
    snap.running = [c["name"].removesuffix(f"-{description['name']}") for c in found if c["status"] == "RUNNING"]
    return snap


def snapshot(stack: Stack, description: dict, cache: dict | None = None) -> Snapshot:
    """Where the execution is; `cache` keeps the plan and its shards' bytes between polls (it may list
    100,000 files)."""
    cache = {} if cache is None else cache
    events = runs.history(stack, description["executionArn"])
    entered = [e for e in events if e["type"].endswith("StateEntered")]
    state = entered[-1]["stateEnteredEventDetails"]["name"] if entered else "starting"
    if is_bulk(description):
        return _bulk_snapshot(stack, description, state)
    main_state = states.main_state(state)
    snap = Snapshot(description["status"], state)
    run = stack.run_folder(description["name"])
    if "plan" not in cache:
        if not run.has_plan():
            return snap
        cache["plan"] = run.read_plan()
    plan = cache["plan"]
    snap.shards, snap.files, snap.bytes_total = plan.shards, len(plan.files), plan.total_bytes
    if state.endswith(" confirmation") and description["status"] == "RUNNING":
        refresh = run.read_refresh(revert=main_state == states.RELOAD_OLD_FLAG)
        snap.asked = refresh.asked if refresh is not None and not refresh.done_at else ""
    step = states.STATE_STEPS.get(main_state)
    if step is not None and description["status"] == "RUNNING":
        snap.job_running = True
        snap.seconds = (datetime.now(UTC) - entered[-1]["timestamp"]).total_seconds()
        if "shard_bytes" not in cache:
            cache["shard_bytes"] = Counter()
            for f in plan.files:
                cache["shard_bytes"][f.shard] += f.size
        # The manifests' first lines only: a poll reads their totals, not every file's record.
        heads = run.read_manifest_heads(step, plan.shards)
        for k, head in heads.items():
            snap.shards_done += 1
            snap.files_done += head.totals.files
            snap.files_failed += head.totals.files - head.totals.ok
            snap.bytes_done += cache["shard_bytes"].get(k, 0)
        for working in run.read_progresses(step, set(range(plan.shards)) - set(heads)).values():
            snap.files_done += working.files
            snap.bytes_done += working.bytes_done
        snap.children = _batch_children(stack, events)
    return snap


def _ended(description: dict) -> str:
    """An end other than success, in words: a stop from the console or the CLI has no error or cause."""
    status = description["status"]
    error, cause = description.get("error") or "", description.get("cause") or ""
    if not error and not cause:
        said = {"ABORTED": "stopped (from the console, the CLI or bgz stop); bgz stop EXECUTION says what it left"}
        return f"{status}: {said.get(status, 'no error or cause given')}"
    return f"{status}: {error}: {cause}" if error and cause else f"{status}: {error or cause}"


def outcome(description: dict) -> str:
    if is_bulk(description):
        if description["status"] == "SUCCEEDED":
            bulk = BulkSummary.from_json(json.loads(description.get("output") or "{}"))
            return "SUCCEEDED: " + (bulk.table if bulk else "")
        return _ended(description)
    if description["status"] == "SUCCEEDED":
        summary = RunSummary.from_json(json.loads(description.get("output") or "{}"))
        if summary is None:
            return "SUCCEEDED"
        return (
            f"SUCCEEDED: {summary.mode} of {summary.index} {summary.prefix}: {summary.sentence()}, "
            f"{summary.objects_deleted} objects deleted; run folder {summary.run_folder}"
        )
    return _ended(description)


def where_it_is(stack: Stack, description: dict) -> dict:
    """The run as a record, for scripts (`bgz watch --json`, `bgz start --wait --json`): where it is
    now, and an ended run's summary or cause."""
    ended = outcome(description) if description["status"] != "RUNNING" else ""
    return snapshot(stack, description).record(ended)


def watch(stack: Stack, description: dict, interval: float = 5.0, out=None) -> dict:
    """Print progress until the execution ends; returns its final description."""
    out = out or sys.stdout
    sfn = stack.client("stepfunctions")
    tty = out.isatty()
    last = ""
    cache: dict = {}
    while True:
        description = sfn.describe_execution(executionArn=description["executionArn"])
        line = snapshot(stack, description, cache).line()
        if line != last:
            out.write(("\r\x1b[2K" if tty else "") + line + ("" if tty else "\n"))
            out.flush()
            last = line
        if description["status"] != "RUNNING":
            out.write(("\n" if tty else "") + outcome(description) + "\n")
            return description
        time.sleep(interval)
