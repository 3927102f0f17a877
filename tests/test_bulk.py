"""The bulk machine through the real ASL offline: a whole bioindex in one execution, the compress or
rollback machine once per index as child executions; one index failing does not stop the others."""

from __future__ import annotations

import pytest

from bgz import cli
from offline.sample_index import make_sample_index
from tests.stacks import INDEX, PREFIX, Deployment


@pytest.fixture
def deployment(offline_aws, tmp_path, mariadb):
    d = Deployment(offline_aws, tmp_path, mariadb)
    root = tmp_path / "genes"
    make_sample_index(root, seed=11, ascii_keys=True)
    d.genes = d.add_index("genes", "genes/", d.schema, root)
    d.db.add_index("broken", "broken/", d.schema)  # built, but no file under its prefix: its Plan refuses
    d.db.add_index("draft", "draft/", d.schema, built=False)
    d.db.add_index("done", "done/", d.schema, compressed=True)
    yield d
    d.close()


def started(out: str) -> str:
    (line,) = [line for line in out.splitlines() if line.startswith("started ")]
    return line.split()[-1]


def bgz(capsys, d: Deployment, *args: str) -> tuple[int, str, str]:
    rc = cli.main([*args, "--stack", d.stack.name, "--region", "us-east-1", "--interval", "0.3"])
    out, err = capsys.readouterr()
    return rc, out, err


def keys_under(d: Deployment, prefix: str) -> set[str]:
    resp = d.s3.list_objects_v2(Bucket=d.stack.data_bucket, Prefix=prefix)
    return {o["Key"] for o in resp.get("Contents", [])}


def test_a_bulk_compress_and_rollback_of_a_whole_bioindex(deployment, capsys):
    d = deployment
    rc, out, err = bgz(capsys, d, "start", "--yes", "--all", "--concurrency", "2", "--wait")
    assert rc == 1, out + err  # one index failed; every other one was converted
    assert "FAILED: IndexesFailed: compress of 3 indexes: 2 succeeded, 1 failed, 2 skipped" in out
    assert "associations associations/: SUCCEEDED, 5 files" in out and "genes genes/: SUCCEEDED, 5 files" in out
    assert "broken broken/: FAILED (PlanFailed: Plan failed. BadInput: nothing to do: no *.json under" in out
    assert "draft draft/: SKIPPED (not built)" in out and "done done/: SKIPPED (already compressed)" in out
    assert "index runs:" in out, "bgz watch shows the child executions"
    assert d.flag() is True and d.flag("genes", "genes/") is True and d.flag("broken", "broken/") is False
    for prefix, originals in ((PREFIX, d.originals), ("genes/", d.genes)):
        keys = keys_under(d, prefix)
        assert not any(k.endswith(".json") for k in keys) and all(
            k + ".gz.gzi" in keys for k in originals if k.endswith(".json")
        )
    assert not d.locks(), "every child released its lock"

    rc, out, err = bgz(capsys, d, "rollback", "--yes", "--include", f"{INDEX},genes", "--wait")
    assert rc == 0, out + err
    assert "SUCCEEDED: rollback of 2 indexes: 2 succeeded, 0 failed, 0 skipped" in out
    assert d.flag() is False and d.flag("genes", "genes/") is False
    assert d.originals_intact()
    assert all(d.read(k) == v for k, v in d.genes.items())


def test_unknown_names_are_refused_before_anything_runs(deployment, capsys):
    rc, _, err = bgz(capsys, deployment, "start", "--yes", "--all", "--exclude", "genez", "--wait")
    assert rc == 2 and "UnknownIndex" in err and "exclude names indexes the bioindex does not have: 'genez'" in err
    sfn = deployment.aws.client("stepfunctions")
    assert not sfn.list_executions(stateMachineArn=deployment.stack.bulk_arn)["executions"], "nothing started"
    assert deployment.originals_intact() and deployment.flag() is False and deployment.flag("genes", "genes/") is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "--all", "--index", INDEX], "give one of --index NAME --prefix PREFIX/, --all, or --include"),
        (["start", "--index", INDEX], "--index needs --prefix"),
        (["start", "--include", "a", "--prefix", PREFIX], "--prefix and --shards go with --index"),
    ],
)
def test_bulk_options_are_checked(offline_aws, capsys, args, message):
    rc = cli.main([*args, "--stack", "any", "--region", "us-east-1"])
    _, err = capsys.readouterr()
    assert rc == 2 and message in err


def test_stopping_a_bulk_run_stops_its_index_runs(deployment, capsys):
    d = deployment
    running, stopped = d.hold_job("-compress")
    rc, out, _ = bgz(capsys, d, "start", "--yes", "--include", INDEX)
    assert rc == 0, out
    name = started(out).rsplit(":", 1)[-1]
    assert running.wait(60), "the index run's compress job started"
    try:
        rc = cli.main(["stop", name, "--stack", d.stack.name, "--region", "us-east-1"])
        out, err = capsys.readouterr()
    finally:
        stopped.set()
    assert rc == 0, out + err
    child = f"{INDEX}-{name}"
    assert out.startswith(f"stopped {name}\n"), "the bulk execution first: no further index run starts"
    assert f"terminated 1 Batch jobs of {child}" in out
    assert "released the lock of" in out and not d.locks() and d.originals_intact()
