"""A run of 250,000 files: SetCompressed and Summarize read the heads of plan.json and of each
manifest (a count per shard, the shard's totals), never every record, so their memory grows with
shards, not files. Before, Summarize peaked near 500 MB on such a run, past the Lambda's 512 MB,
after every original was deleted: the run ended without a summary and kept its lock.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from batch_job.errors import BadInput
from batch_job.locations import parse_location
from batch_job.locks import Lock, Locks
from batch_job.records import FileRecord, Manifest, Mode, Plan, PlannedFile, Status, Step, Totals, now
from batch_job.runfolder import RunFolder
from offline.cfn_yaml import load_template
from tests.stacks import INDEX, PREFIX, Deployment
from workflow.boundary import PlanResult

FILES, SHARDS = 250_000, 100
MAX_MEMORY_MB = 150


def _planned(count: int, shards: int, key_prefix: str) -> list[PlannedFile]:
    """Names like a Spark job's part files, sizes like a bioindex's."""
    return [
        PlannedFile(
            f"{key_prefix}part-{n:05d}-3b8c1f2e-7a1d-4c55-9f3e-{n:012d}-c000.json", 40_000 + n, f"{n:032x}", n % shards
        )
        for n in range(count)
    ]


def _verified(f: PlannedFile) -> FileRecord:
    return FileRecord(
        f.key,
        True,
        original_etag=f.etag,
        original_size=f.size,
        gz_etag=f"{f.size:032x}",
        gz_size=f.size // 8,
        gzi_etag=f"{f.size + 1:032x}",
        gzi_size=40,
        sha256=hashlib.sha256(f.key.encode()).hexdigest(),
        random_access_offsets_checked=16,
    )


def _deleted(f: PlannedFile) -> FileRecord:
    return FileRecord(f.key, True, status=Status.DELETED, original_etag=f.etag, deleted=[(f.key, f.etag)])


def _write_run(run: RunFolder, plan: Plan, verify_shards: range | None = None) -> None:
    """The plan, and the verify and delete manifests of each shard, written one shard at a time."""
    run.write_plan(plan)
    by_shard: list[list[PlannedFile]] = [[] for _ in range(plan.shards)]
    for f in plan.files:
        by_shard[f.shard].append(f)
    for k in range(plan.shards) if verify_shards is None else verify_shards:
        for step, record in ((Step.VERIFY, _verified), (Step.DELETE, _deleted)):
            records = [record(f) for f in by_shard[k]]
            run.write_manifest(
                Manifest(step, k, plan.index, plan.prefix, plan.target, plan.created, now(), now(), True, [], records)
            )


def _report(deployment: Deployment, function: str) -> tuple[float, int]:
    """(Duration in seconds, Max Memory Used in MB) from the REPORT line of the function's last invoke."""
    name = deployment.stack.refs[function]
    log = [e["log"] for e in deployment.aws.runner.lambda_logs if e["function"] == name][-1]
    found = re.search(r"REPORT Duration: ([\d.]+) ms\tMemory Size: \d+ MB\tMax Memory Used: (\d+) MB", log)
    assert found, log[-2000:]
    return float(found[1]) / 1000, int(found[2])


def _invoke(deployment: Deployment, function: str, payload: dict) -> dict:
    resp = deployment.aws.client("lambda").invoke(
        FunctionName=deployment.stack.refs[function], Payload=json.dumps(payload).encode()
    )
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    return body


def test_set_compressed_and_summarize_of_250000_files_stay_small(deployment):
    execution = "compress-of-250000-files"
    run = RunFolder(parse_location(f"s3://{deployment.stack.run_bucket}/runs/{execution}/"))
    target = parse_location(f"s3://{deployment.stack.data_bucket}/{deployment.key_prefix}")
    plan = Plan(Mode.COMPRESS, INDEX, target.uri, PREFIX, SHARDS, _planned(FILES, SHARDS, deployment.key_prefix))
    _write_run(run, plan)
    locks = Locks(target)
    locks.acquire(Lock(locks.key_prefix, target.uri, run.uri, "", "compress", INDEX, PREFIX))
    timeouts = {
        name: r["Properties"]["Timeout"]
        for name, r in load_template()["Resources"].items()
        if "Timeout" in r.get("Properties", {})
    }

    flag = _invoke(
        deployment,
        "SetCompressedFunction",
        {"index": INDEX, "prefix": PREFIX, "compressed": True, "runFolder": run.uri, "execution": execution},
    )
    assert flag["compressed"] is True and deployment.flag() is True
    seconds, memory = _report(deployment, "SetCompressedFunction")
    assert memory < MAX_MEMORY_MB, f"SetCompressed used {memory} MB checking {FILES:,} files"
    assert seconds < timeouts["SetCompressedFunction"], "within the function's Timeout"

    summary = _invoke(
        deployment,
        "SummarizeFunction",
        {
            "execution": execution,
            "mode": "compress",
            "plan": PlanResult(
                run_folder=run.uri,
                index=INDEX,
                prefix=PREFIX,
                target=target.uri,
                shards=plan.shards,
                files=FILES,
                bytes=plan.total_bytes,
                level=-1,
                timeouts={},
                refresh={},
            ).to_json(),
        },
    )
    sizes = sum(f.size for f in plan.files)
    assert summary["files"] == FILES and summary["objectsDeleted"] == FILES
    assert summary["bytesUncompressed"] == sizes
    assert summary["bytesCompressed"] == sum(f.size // 8 + 40 for f in plan.files)
    seconds, memory = _report(deployment, "SummarizeFunction")
    assert memory < MAX_MEMORY_MB, f"Summarize used {memory} MB summing {FILES:,} files"
    assert seconds < timeouts["SummarizeFunction"], "within the function's Timeout"
    assert locks.read() is None, "the run's lock is released"


# ---- the heads themselves, on a local run folder ------------------------------------------------


def _check_run(run: RunFolder, plan: Plan):
    from set_compressed.app import check_run

    from workflow.events import SetCompressedEvent

    event = SetCompressedEvent(index=plan.index, prefix=plan.prefix, compressed=True, runFolder=run.uri, execution="x")
    return check_run(run, event)


def _local_run(tmp_path, shards: int = 3) -> tuple[RunFolder, Plan]:
    (tmp_path / "run").mkdir()
    run = RunFolder(parse_location(str(tmp_path / "run")))
    plan = Plan(Mode.COMPRESS, "genes", str(tmp_path / "data"), "genes/", shards, _planned(30, shards, "genes/"))
    return run, plan


def test_set_compressed_passes_only_when_every_shard_counts_every_planned_file_verified(tmp_path):
    run, plan = _local_run(tmp_path)
    _write_run(run, plan)
    assert _check_run(run, plan).files_per_shard == [10, 10, 10]


def test_set_compressed_refuses_a_shard_without_its_verify_manifest(tmp_path):
    from set_compressed.app import NotVerified

    run, plan = _local_run(tmp_path)
    _write_run(run, plan, verify_shards=range(2))
    with pytest.raises(NotVerified, match=r"10 planned files are not verified OK in this run, e\.g\. in shard 2 "):
        _check_run(run, plan)


def test_set_compressed_refuses_a_failed_record_and_a_manifest_of_another_plan(tmp_path):
    from set_compressed.app import NotVerified

    run, plan = _local_run(tmp_path)
    _write_run(run, plan)
    manifest = run.read_manifest(Step.VERIFY, 1)
    manifest.files[3] = FileRecord.failure(manifest.files[3].key, "differs at byte 7")
    run.write_manifest(manifest)
    with pytest.raises(NotVerified, match=r"^1 planned files .* in shard 1 "):
        _check_run(run, plan)
    manifest.files[3] = _verified(plan.files[1 + 3 * 3])
    manifest.plan_created = "2020-01-01T00:00:00Z"  # an earlier plan's manifest in the same folder
    run.write_manifest(manifest)
    with pytest.raises(NotVerified, match=r"^10 planned files .* in shard 1 "):
        _check_run(run, plan)
    manifest.plan_created = plan.created
    manifest.files[3] = _verified(PlannedFile("genes/not-planned.json", 1, "e", 1))  # as many OK, one not planned
    run.write_manifest(manifest)
    assert run.read_manifest_head(Step.VERIFY, 1).totals.ok == 10
    with pytest.raises(NotVerified, match=r"^1 planned files .* in shard 1 "):
        _check_run(run, plan)


def test_heads_are_the_first_line_and_agree_with_the_whole_record(tmp_path):
    run, plan = _local_run(tmp_path)
    _write_run(run, plan)
    plan_text = (tmp_path / "run" / "plan.json").read_text()
    assert plan_text.count("\n") == len(plan.files) + 2, "head, one file a line, end"
    assert run.read_plan_head() == plan.head and run.read_plan().head == plan.head
    manifest = run.read_manifest(Step.DELETE, 2)
    head = run.read_manifest_head(Step.DELETE, 2)
    assert head == manifest.head and head.totals == Totals(10, 10, 0, 0, 10)
    assert run.read_plan_head().keys_per_shard[2] == head.ok_keys, "the same digest of the same keys"
    assert run.read_manifest(Step.VERIFY, 0).files == [_verified(f) for f in plan.files_of(0)], "the records round trip"


def test_a_head_longer_than_a_head_read_is_read_whole(tmp_path, monkeypatch):
    from batch_job import runfolder

    run, plan = _local_run(tmp_path)
    _write_run(run, plan)
    whole = run.read_manifest_head(Step.VERIFY, 1)
    monkeypatch.setattr(runfolder, "MANIFEST_HEAD_LIMIT", 40)
    monkeypatch.setattr(runfolder, "PLAN_HEAD_LIMIT", 40)
    assert run.read_manifest_head(Step.VERIFY, 1) == whole and run.read_plan_head() == plan.head


def test_records_written_before_heads_are_read_whole(tmp_path):
    """A run folder written by the previous version (indented JSON, no counts in the plan's head)."""
    run, plan = _local_run(tmp_path)
    _write_run(run, plan)
    folder = tmp_path / "run"
    for path in [folder / "plan.json", *folder.glob("*/shard-*.json")]:
        body = json.loads(path.read_text())
        body.pop("totals", None)
        body.pop("files_per_shard", None)
        if path.name == "plan.json":
            body["version"] = 1
        path.write_text(json.dumps(body, indent=1))
    assert run.read_plan_head() == plan.head
    assert run.read_manifest_head(Step.VERIFY, 1).totals.ok == 10
    assert _check_run(run, plan).file_count == 30


def test_a_malformed_head_is_bad_input_naming_the_record(tmp_path):
    run, plan = _local_run(tmp_path)
    _write_run(run, plan)
    path = tmp_path / "run" / "verify" / "shard-0.json"
    rest = path.read_text().partition("\n")[2]
    path.write_text('{"step": "verify", "shard": 0, "totals": {"bogus": 1}, "files": [\n' + rest)
    with pytest.raises(BadInput, match=r"^verify/shard-0\.json is malformed"):
        run.read_manifest_head(Step.VERIFY, 0)
    path.write_text('{"step": "verify", "shard": 0, "totals": {"files": 1, "files": [\n' + rest)
    with pytest.raises(BadInput, match=r"^verify/shard-0\.json is not JSON"):
        run.read_manifest_head(Step.VERIFY, 0)


def test_a_plan_of_a_newer_format_is_refused_in_one_line(tmp_path):
    run, plan = _local_run(tmp_path)
    _write_run(run, plan)
    path = tmp_path / "run" / "plan.json"
    path.write_text(path.read_text().replace('"version": 2', '"version": 3', 1))
    for read in (run.read_plan_head, run.read_plan):
        with pytest.raises(
            BadInput, match=r"^plan\.json has format version 3; this bgzip-workflow reads versions 1 to 2"
        ):
            read()
