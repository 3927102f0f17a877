"""A whole bioindex in one bulk execution stays within Step Functions' limits: every state's data
under 256 KiB, every Cause under 32,768 characters. States.DataLimitExceeded cannot be caught, so a
run over it would end FAILED with no report.

Each state's JSON is built as the ASL builds it: the real SelectIndexes and ReportIndexes code,
bulk.asl.json's own Parameters, ResultPath and OutputPath, and 1,000 index runs whose outcomes lie in
their run folders (half of them failed, with long causes) in moto's S3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_job.locations import parse_location
from batch_job.records import Outcome
from batch_job.runfolder import RunFolder

ROOT = Path(__file__).resolve().parent.parent
STATE_LIMIT = 256 * 1024
CAUSE_LIMIT = 32_768
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:bgzip-workflow-compress"


def _path(data: dict, path: str):
    """A reference path ($.a.b) as the ASL resolves it."""
    for part in path.removeprefix("$").strip(".").split("."):
        if part:
            data = data[part]
    return data


def _parameters(template: dict, data: dict, context: dict) -> dict:
    """A Parameters (or ItemSelector, Payload) template filled from the state's input and the
    context object ($$)."""
    filled = {}
    for key, value in template.items():
        if not key.endswith(".$"):
            filled[key] = value
        elif value.startswith("$$."):
            filled[key[:-2]] = _path(context, value[1:])
        else:
            filled[key[:-2]] = _path(data, value)
    return filled


def _put(data: dict, path: str, value) -> dict:
    """`value` placed at a ResultPath in a copy of `data`."""
    out = json.loads(json.dumps(data))
    parts = path.removeprefix("$.").split(".")
    node = out
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return out


def _size(value) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _indexes(count: int) -> list[dict]:
    """Names and prefixes as long as a real bioindex's (e.g. gene-associations-52k, ancestry prefixes)."""
    return [
        {"index": f"gene-associations-ancestry-{n:04d}", "prefix": f"gene-associations/ancestry-{n:04d}/"}
        for n in range(count)
    ]


def _summary(index: str, prefix: str, name: str) -> dict:
    """An index run's Summarize output, as its outcome.json keeps it."""
    from workflow.boundary import RunSummary

    return RunSummary(
        mode="compress",
        index=index,
        prefix=prefix,
        run_folder=f"s3://runs/runs/{name}/",
        files=3000,
        bytes_uncompressed=10**12,
        bytes_compressed=10**11,
        objects_deleted=3000,
        readers_proven=True,
    ).to_json()


def test_a_thousand_indexes_half_failing_stay_within_every_limit(s3, run_bucket, monkeypatch):
    from report.bulk import bulk
    from select_indexes.app import selection

    from workflow.events import IndexesEvent, SelectEvent

    monkeypatch.setenv("RUN_BUCKET", run_bucket)
    asl = json.loads((ROOT / "statemachine" / "bulk.asl.json").read_text())["States"]
    event = {
        "execution": "bulk-of-a-whole-bioindex",
        "input": {"mode": "compress", "indexes": _indexes(1000)},
        "machines": {"compress": MACHINE, "rollback": MACHINE.replace("compress", "rollback")},
    }
    selected = selection(SelectEvent.model_validate(event))  # SelectIndexes' output: the Map's input
    states = {"SelectIndexes output": selected}

    each = asl["ConvertEachIndex"]
    inner = each["ItemProcessor"]["States"]
    results = []
    for n, item in enumerate(_path(selected, each["ItemsPath"])):
        iteration = _parameters(each["ItemSelector"], selected, {"Map": {"Item": {"Value": item}}})
        failed = n % 2 == 1
        outcome = (
            Outcome("FAILED", error="VerifyFailed", cause="VerifyFailed failed. " + "x" * 30_000)
            if failed
            else Outcome("SUCCEEDED", summary=_summary(item["index"], item["prefix"], item["name"]))
        )
        RunFolder(parse_location(f"s3://{run_bucket}/runs/{item['name']}/")).write_outcome(outcome)
        state = inner["Index failed" if failed else "Index converted"]
        results.append(_parameters(state["Parameters"], iteration, {}))
    mapped = _path(_put(selected, each["ResultPath"], results), each.get("OutputPath", "$"))
    states["ConvertEachIndex output"] = mapped

    report = asl["ReportIndexes"]
    payload = _parameters(report["Parameters"]["Payload"], mapped, {"Execution": {"Name": event["execution"]}})
    states["ReportIndexes input"] = payload
    output = bulk(IndexesEvent.model_validate(payload))
    states["ReportIndexes output"] = output

    for name, value in states.items():
        assert _size(value) < STATE_LIMIT, f"{name}: {_size(value):,} bytes"
    assert output["failed"] == 500 and output["converted"] == 500
    assert len(output["table"]) < CAUSE_LIMIT, "the Cause of 'Some indexes failed'"
    assert output["table"].startswith("compress of 1000 indexes: 500 succeeded, 500 failed, 0 skipped")
    assert output["table"].endswith(f"all of it: {output['report']})")
    full = s3.get_object(Bucket=run_bucket, Key="runs/bulk-of-a-whole-bioindex/bulk-report.txt")["Body"].read()
    assert full.count(b": FAILED (VerifyFailed: VerifyFailed failed. xxx") == 500, "every cause, whole, in the report"
    rows = json.loads(
        s3.get_object(Bucket=run_bucket, Key="runs/bulk-of-a-whole-bioindex/bulk-report.json")["Body"].read()
    )
    assert len(rows) == 1000 and rows[0]["files"] == 3000


def test_more_indexes_than_one_state_can_carry_are_refused_before_anything_runs():
    from select_indexes.app import BulkTooLarge, selection

    from workflow.events import SelectEvent

    event = {
        "execution": "bulk-too-many",
        "input": {"mode": "compress", "indexes": _indexes(3000)},
        "machines": {"compress": MACHINE, "rollback": MACHINE},
    }
    with pytest.raises(BulkTooLarge, match=r"3000 indexes .* split it into runs of at most about \d+ indexes"):
        selection(SelectEvent.model_validate(event))


def test_a_cause_is_capped_under_the_fail_states_limit_and_says_where_the_rest_is():
    from report.cause import MAX_CAUSE, cap

    text = cap("y" * 100_000, where="s3://runs/x/")
    assert len(text) == MAX_CAUSE < CAUSE_LIMIT and text.endswith("(68,000 characters more; all of it: s3://runs/x/)")
    assert cap("short") == "short"


def test_index_runs_of_a_bulk_run_get_timeouts_for_their_share_of_the_queue():
    """Plan sizes each step's timeout from how many shards run at once; in a bulk run `concurrency`
    index runs share MaxvCpus, so each is timed as if it had its share."""
    from batch_job.rates import JobLimits, step_timeouts
    from batch_job.records import Mode, Plan, PlannedFile

    files = [PlannedFile(f"p/{n}.json", 20 * 2**30, "e", n) for n in range(64)]
    plan = Plan(Mode.COMPRESS, "i", "s3://b/p/", "p/", 64, files)
    alone, shared = step_timeouts(plan, JobLimits()), step_timeouts(plan, JobLimits().shared_by(8))
    assert all(shared[k] > alone[k] for k in alone), (alone, shared)
    assert JobLimits().shared_by(1000).max_vcpus == 2, "never less than one job's vCPUs"
