"""Re-run anything, any time: every step re-run after a later step finished exits 0 and changes nothing;
exit codes say what Batch should do; a malformed run folder is one line, not a traceback."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_flag
from tests.test_engine import Target, compress_and_verify, job


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def target(request, tmp_path) -> Target:
    return Target(request.param, tmp_path, request)


def _snapshot(target: Target) -> dict[str, bytes]:
    return {name: target.read(name) for name in sorted(target.names())}


def _records(target: Target, run: str, step: str) -> list[dict]:
    return target.run_json(f"{step}/shard-0.json")["files"] if run == target.run_folder else []


def test_every_compress_step_re_run_after_delete_exits_0_and_changes_nothing(target, capsys):
    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    assert job(capsys, "delete", "--run-folder", target.run_folder)[0] == 0
    after = _snapshot(target)
    verified = target.run_json("verify/shard-0.json")["files"]
    assert all(r["ok"] and r["sha256"] for r in verified)

    for step in ("plan", "compress", "verify", "delete"):
        args = (
            ["plan", target.uri, "--index", "genes", "--run-folder", target.run_folder]
            if step == "plan"
            else [step, "--run-folder", target.run_folder]
        )
        rc, out, err = job(capsys, *args)
        assert rc == 0, (step, out, err)
    assert _snapshot(target) == after, "nothing changed"
    assert target.run_json("verify/shard-0.json")["files"] == verified, "the record that justified the deletions stays"


def test_every_rollback_step_re_run_after_remove_compressed_exits_0(target, capsys):
    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    assert job(capsys, "delete", "--run-folder", target.run_folder)[0] == 0
    rollback = target.run_folder.rstrip("/") + "-rb/"
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", rollback, "--rollback")[0] == 0
    for step in ("decompress", "verify"):
        assert job(capsys, step, "--run-folder", rollback)[0] == 0
    write_flag(rollback, "genes", target.prefix, False)
    assert job(capsys, "remove-compressed", "--run-folder", rollback)[0] == 0
    after = _snapshot(target)
    for step in ("decompress", "verify", "remove-compressed"):
        rc, out, err = job(capsys, step, "--run-folder", rollback)
        assert rc == 0, (step, out, err)
    assert _snapshot(target) == after


def test_a_success_on_record_is_never_overwritten_by_a_later_failure(target, capsys):
    compress_and_verify(target, capsys)
    target.write("BMI/part-00001.json.gz", b"broken later")
    rc, out, _ = job(capsys, "verify", "--run-folder", target.run_folder)
    assert rc == 1 and "BMI/part-00001.json" in out, "the re-run still fails, and says so"
    record = next(
        r for r in target.run_json("verify/shard-0.json")["files"] if r["key"].endswith("BMI/part-00001.json")
    )
    assert record["ok"] and record["sha256"] and "later_failure" in record
    write_flag(target.run_folder, "genes", target.prefix, True)
    rc, out, _ = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 1 and "1 failed: " in out and "BMI/part-00001.json" in out, "delete still re-checks every ETag"
    assert "BMI/part-00001.json" in target.names()


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("plan.json", b"[1, 2]", "plan.json is malformed: a JSON object was expected"),
        ("plan.json", b'{"version": 1, "mode": "compress"}', "plan.json is malformed"),
        ("plan.json", b"{not json", "plan.json is not JSON"),
        ("flag.json", b'{"index": "genes", "extra": 1}', "flag.json is malformed"),
        ("verify/shard-0.json", b'{"files": [1]}', "verify/shard-0.json is malformed"),
    ],
)
def test_a_malformed_run_folder_file_is_one_line_and_exit_2(tmp_path, capsys, name, body, message):
    target = Target("local", tmp_path, None)
    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    path = tmp_path / "run" / name
    path.write_bytes(body)
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert all(k in target.names() for k in ("BMI/part-00000.json", "T2D/part-00000.json"))


def test_an_unreachable_store_exits_3_which_batch_retries(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    rc, _, err = job(
        capsys, "plan", "s3://some-bucket/genes/", "--index", "genes", "--run-folder", str(tmp_path / "run")
    )
    assert rc == 3 and "cannot access storage" in err and len(err.strip().splitlines()) == 1


def test_the_job_definitions_retry_everything_but_exit_2():
    from offline.cfn_yaml import load_template

    strategy = load_template()["Resources"]["CompressJobDefinition"]["Properties"]["RetryStrategy"]
    assert strategy["EvaluateOnExit"][0] == {"OnExitCode": "2", "Action": "EXIT"}
    assert json.dumps(strategy["EvaluateOnExit"][-1]) == json.dumps({"OnReason": "*", "Action": "RETRY"})


def test_a_failed_step_leaves_an_error_record_that_a_success_removes(tmp_path, capsys):
    target = Target("local", tmp_path, None)
    compress_and_verify(target, capsys)
    assert job(capsys, "delete", "--run-folder", target.run_folder, "--shard", "0")[0] == 2
    record = target.run_json("delete/shard-0.error.json")
    assert record["exit"] == 2 and "no flag.json" in record["message"] and record["failed"] == []
    write_flag(target.run_folder, "genes", target.prefix, True)
    assert job(capsys, "delete", "--run-folder", target.run_folder, "--shard", "0")[0] == 0
    assert not (tmp_path / "run" / "delete" / "shard-0.error.json").exists()
