"""What the bioindex must never see, through the real ASL in the offline stack, a real MariaDB
holding the bioindex's tables, and the stand-in's server processes reading through bgzip:
a flag confirmed for the wrong prefix, a deletion while a process still reads the old side.
(Answers asked all through a compress and a rollback: tests/test_reader_refresh.py.)"""

from __future__ import annotations

import json
import threading
import time

import pymysql
import pytest

from tests.stacks import INDEX, PREFIX, Deployment


def _refused_at_plan(d: Deployment, result: dict, error: str, *words: str) -> None:
    assert result["status"] == "FAILED" and result["error"] == "PlanFailed", (result.get("error"), result.get("cause"))
    assert f"{error}: " in result["cause"], result["cause"]
    for word in words:
        assert word in result["cause"], result["cause"]
    assert not any(s.endswith(" job") for s in d.states), "no Batch job ran"
    keys = d.s3.list_objects_v2(Bucket=d.stack.data_bucket).get("Contents", [])
    assert not any(o["Key"].endswith((".gz", ".gzi")) for o in keys), "nothing was compressed"
    assert d.originals_intact()


def test_a_wrong_prefix_is_refused_at_plan_even_when_the_index_is_already_compressed(deployment, tmp_path):
    other = deployment.add_index("other-index", "other/", deployment.schema, tmp_path / "index" / "T2D")
    deployment.db.set_compressed(INDEX, PREFIX, True)
    result = deployment.run(index=INDEX, prefix="other/")
    _refused_at_plan(deployment, result, "UnknownIndex", "prefix 'other/' belongs to index 'other-index'")
    assert all(deployment.read(k) == v for k, v in other.items())
    assert deployment.flag("other-index", "other/") is False


def _ambiguous(d: Deployment) -> dict:
    d.db.add_index(INDEX, PREFIX, "phenotype")
    return {}


def _not_built(d: Deployment) -> dict:
    d.db.add_index("unbuilt", "unbuilt/", "phenotype", built=False)
    return {"index": "unbuilt", "prefix": "unbuilt/"}


def _nested(d: Deployment) -> dict:
    d.db.add_index("t2d-only", "associations/T2D/", "phenotype")
    return {}


def _above(d: Deployment) -> dict:
    d.db.add_index("everything", "associations/T2D/", "phenotype")
    return {"index": "everything", "prefix": "associations/T2D/"}


def _rebuilt_from_gz(d: Deployment) -> dict:
    d.db.run(
        "INSERT INTO `__Keys` (`index`, `key`, `version`) VALUES (%s, %s, %s)",
        (INDEX, "associations/T2D/part-00000.json.gz", "0" * 32),
    )
    return {"machine": "rollback"}


@pytest.mark.parametrize(
    ("setup", "error", "words"),
    [
        (lambda d: {"index": "no-such-index"}, "UnknownIndex", ["no index is named 'no-such-index'"]),
        (_ambiguous, "AmbiguousIndex", ["2 rows", "arity 1", "arity 2"]),
        (_not_built, "IndexNotBuilt", ["'unbuilt'", "not built"]),
        (_nested, "NestedPrefix", ["'t2d-only'", "'associations/T2D/' lies inside it"]),
        (_above, "NestedPrefix", ["'associations'", "'associations/' contains it"]),
        (_rebuilt_from_gz, "RebuiltFromCompressed", ["part-00000.json.gz", "re-index"]),
    ],
    ids=["unknown", "ambiguous", "not-built", "nested-inside", "nested-above", "rebuilt-from-gz"],
)
def test_the_pre_flight_refuses_at_plan(deployment, setup, error, words):
    deployment.db.set_compressed(INDEX, PREFIX, False)
    run_input = setup(deployment)
    result = deployment.run(**run_input)
    _refused_at_plan(deployment, result, error, *words)


def test_a_stale_server_process_is_caught_by_the_canary_and_nothing_is_lost(offline_aws, tmp_path, mariadb):
    # ReaderRefresh=requests, and one process that never reloads its flag: the canary is the backstop
    d = Deployment(offline_aws, tmp_path, mariadb, frozen=1, refresh="requests")
    try:
        result = d.run()
        assert result["status"] == "FAILED" and result["error"] == "ProveReadersFailed", result.get("cause")
        cause = result["cause"]
        assert "ReadersStale" in cause and "restart the bioindex service" in cause
        assert "the canary was restored byte for byte and nothing else was deleted" in cause
        assert "No original was deleted" in cause
        assert d.originals_intact(), "the canary is back, byte for byte, and no other original was touched"
        assert not any(s.startswith("DeleteOriginals") for s in d.states)
        check = json.loads(
            d.s3.get_object(Bucket=d.stack.run_bucket, Key=_run_key(result, "readers-check.json"))["Body"].read()
        )
        assert check["canary"]["status"] == "restored" and check["differences"]

        d.bioindex.restart()  # what the Cause asks the operator to do
        d.states.clear()
        again = d.run()
        assert again["status"] == "SUCCEEDED", again.get("cause")
        assert not any(k.endswith(".json") for k in d.data_keys()) and d.flag() is True
    finally:
        d.close()


def _run_key(result: dict, name: str) -> str:
    return f"runs/{result['name']}/{name}"


def test_a_flag_changed_after_set_compressed_stops_the_deletion(deployment):
    def someone_else(function: str) -> None:
        if function.endswith("ProveReadersFunction"):
            deployment.db.set_compressed(INDEX, PREFIX, False)

    deployment.aws.runner.before_invoke = someone_else
    result = deployment.run()
    assert result["status"] == "FAILED" and result["error"] == "ProveReadersFailed", result.get("cause")
    assert "FlagChanged" in result["cause"] and "someone changed it" in result["cause"]
    assert "No original was deleted" in result["cause"]
    assert deployment.originals_intact()
    assert deployment.flag() is False


def test_a_lost_database_connection_mid_transaction_is_retried(deployment, mariadb):
    """The SetCompressed transaction waits on a row lock held elsewhere, and its connection is killed
    mid-statement: nothing is committed, the state retries, and the next attempt sets the flag."""
    killed = []

    def kill_the_lambdas_connection(holder: pymysql.connections.Connection) -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                with mariadb.admin() as admin, admin.cursor() as cur:
                    cur.execute(
                        "SELECT `ID` FROM information_schema.PROCESSLIST WHERE `USER` = 'bioindex' "
                        "AND `DB` = %s AND `INFO` LIKE %s",
                        (deployment.name, "%FOR UPDATE%"),
                    )
                    for (thread_id,) in cur.fetchall():
                        cur.execute(f"KILL CONNECTION {int(thread_id)}")
                        killed.append(thread_id)
                time.sleep(0.05)
        finally:
            holder.rollback()
            holder.close()

    def hold_the_row(function: str) -> None:
        if function.endswith("SetCompressedFunction") and not killed:
            holder = mariadb.admin()
            holder.autocommit(False)
            with holder.cursor() as cur:
                cur.execute(
                    f"SELECT * FROM `{deployment.name}`.`__Indexes` WHERE `id` = %s FOR UPDATE", (deployment.row_id,)
                )
            threading.Thread(target=kill_the_lambdas_connection, args=(holder,), daemon=True).start()

    deployment.aws.runner.before_invoke = hold_the_row
    result = deployment.run()
    assert killed, "the Lambda's connection was killed mid-transaction"
    assert result["status"] == "SUCCEEDED", result.get("cause")
    set_flag_runs = [
        e
        for e in deployment.aws.runner.lambda_logs
        if e["function"].endswith(f"{deployment.name}-SetCompressedFunction")
    ]
    assert len(set_flag_runs) == 2
    errors = [e.get("taskFailedEventDetails", {}).get("error") for e in result["history"]]
    assert "BioindexUnavailable" in errors, "the first attempt failed as a lost connection, and was retried"
    assert deployment.flag() is True


def test_a_bioindex_under_an_s3_subdir(offline_aws, tmp_path, mariadb):
    d = Deployment(offline_aws, tmp_path, mariadb, subdir="bioindex/v2")
    try:
        assert all(k.startswith("bioindex/v2/associations/") for k in d.json_keys)

        def corrupt(job_name: str) -> None:
            if job_name.endswith("-verify"):
                d.s3.put_object(Bucket=d.stack.data_bucket, Key=d.json_keys[0] + ".gz", Body=b"not bgzf")

        d.aws.runner.before_job = corrupt
        failed = d.run()
        target = f"s3://{d.stack.data_bucket}/bioindex/v2/associations/"
        assert failed["status"] == "FAILED" and f"prefix 'associations/' at {target}" in failed["cause"]

        d.aws.runner.before_job = None
        result = d.run()
        assert result["status"] == "SUCCEEDED", result.get("cause")
        run = json.loads(result["output"])["runFolder"].removeprefix(f"s3://{d.stack.run_bucket}/")

        def read(name: str) -> dict:
            return json.loads(d.s3.get_object(Bucket=d.stack.run_bucket, Key=run + name)["Body"].read())

        plan, flag, manifest = read("plan.json"), read("flag.json"), read("compress/shard-0.json")
        assert (plan["prefix"], plan["target"]) == (PREFIX, target)
        assert (flag["prefix"], flag["target"], flag["backend"], flag["row"]["id"]) == (
            PREFIX,
            target,
            "mysql",
            d.row_id,
        )
        assert (manifest["prefix"], manifest["target"]) == (PREFIX, target)
        assert not any(k.endswith(".json") for k in d.data_keys()) and d.flag() is True

        assert d.run("rollback")["status"] == "SUCCEEDED"
        assert d.originals_intact() and d.flag() is False
    finally:
        d.close()


def test_without_a_bioindex_url_the_flag_is_re_checked_and_the_summary_says_readers_were_not_proven(
    offline_aws, tmp_path, mariadb
):
    d = Deployment(offline_aws, tmp_path, mariadb, parameters={"InsecureBioindexUrl": ""})
    try:
        result = d.run()
        assert result["status"] == "SUCCEEDED", result.get("cause")
        summary = json.loads(result["output"])
        assert summary["readersProven"] is False and summary["objectsDeleted"] == 5
        assert d.bioindex.requests == [], "no server was asked"
    finally:
        d.close()


def test_set_compressed_refuses_when_the_run_no_longer_holds_its_prefix(deployment):
    def operator_unlocks(function: str) -> None:
        if function.endswith("SetCompressedFunction"):
            for key in deployment.locks():
                deployment.s3.delete_object(Bucket=deployment.stack.data_bucket, Key=key)

    deployment.aws.runner.before_invoke = operator_unlocks
    result = deployment.run()
    assert result["status"] == "FAILED" and result["error"] == "SetCompressedFailed", result.get("cause")
    assert "PrefixLocked" in result["cause"] and "no run holds the lock" in result["cause"]
    assert deployment.flag() is False and deployment.originals_intact()


def test_a_retried_proof_whose_canary_is_already_deleted_still_catches_a_stale_process(offline_aws, tmp_path, mariadb):
    """As if an earlier attempt of ProveReaders died right after deleting its canary: the retry goes
    straight to the check after deletion, and restores the canary when a process reads the old side."""
    d = Deployment(offline_aws, tmp_path, mariadb, frozen=1, refresh="requests")

    def earlier_attempt_died(function: str) -> None:
        if not function.endswith("ProveReadersFunction"):
            return
        runs = d.s3.list_objects_v2(Bucket=d.stack.run_bucket, Prefix="runs/")["Contents"]
        folder = next(o["Key"] for o in runs if o["Key"].endswith("/baseline.json")).removesuffix("baseline.json")
        key = json.loads(d.s3.get_object(Bucket=d.stack.run_bucket, Key=folder + "baseline.json")["Body"].read())[
            "canary_key"
        ]
        head = d.s3.head_object(Bucket=d.stack.data_bucket, Key=key)
        aside = f"{folder}canary/{key}"
        d.s3.copy_object(Bucket=d.stack.run_bucket, Key=aside, CopySource={"Bucket": d.stack.data_bucket, "Key": key})
        aside_etag = d.s3.head_object(Bucket=d.stack.run_bucket, Key=aside)["ETag"].strip('"')
        entry = {"key": key, "etag": head["ETag"].strip('"'), "size": head["ContentLength"], "aside": aside}
        canary = {"status": "deleted", "at": "2026-01-01T00:00:00Z", "objects": [entry | {"aside_etag": aside_etag}]}
        record = {"execution": folder.split("/")[-2], "started": "2026-01-01T00:00:00Z", "canary": canary}
        d.s3.put_object(Bucket=d.stack.run_bucket, Key=folder + "readers-check.json", Body=json.dumps(record))
        d.s3.delete_object(Bucket=d.stack.data_bucket, Key=key)

    try:
        d.aws.runner.before_invoke = earlier_attempt_died
        result = d.run()
        assert result["status"] == "FAILED" and "ReadersStale" in result["cause"], result.get("cause")
        assert "the canary was restored byte for byte" in result["cause"]
        assert d.originals_intact()
    finally:
        d.close()
