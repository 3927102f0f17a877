"""The jobs read the bioindex flag themselves: the delete steps before each batch and after the last,
the conversion steps at their start. `bgzip-job` on a local folder, the flag in a real MariaDB
holding the bioindex's tables, its secret in (moto's) Secrets Manager, as the stack's job
definitions configure them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import boto3

from batch_job import cli, stores
from batch_job.locations import parse_location
from batch_job.records import Flag
from batch_job.runfolder import RunFolder
from offline.bioindex_db import BioindexDatabase
from offline.sample_index import make_sample_index
from tests.stacks import upload_ca_bundle

INDEX, PREFIX = "associations", "associations/"


class Bioindex:
    """A bioindex database with one index, and the environment a job definition gives a job."""

    def __init__(self, mariadb, monkeypatch, secret: dict | None = None) -> None:
        name = f"live{uuid.uuid4().hex[:8]}"
        self.db = BioindexDatabase(mariadb.url(mariadb.create_schema(name)))
        self.db.create_tables()
        self.row = self.db.add_index(INDEX, PREFIX, "phenotype")
        arn = boto3.client("secretsmanager").create_secret(
            Name=f"{name}-rds", SecretString=json.dumps(secret or mariadb.secret())
        )["ARN"]
        for variable, value in {
            "BIOINDEX_FLAG_BACKEND": "mysql",
            "BIOINDEX_DB_SECRET_ARN": arn,
            "BIOINDEX_DB_SCHEMA": name,
            "BIOINDEX_DB_CA_BUNDLE": upload_ca_bundle(boto3.client("s3"), f"{name}-config", mariadb.ca_pem),
        }.items():
            monkeypatch.setenv(variable, value)

    def set(self, compressed: bool, run: str) -> None:
        """What SetCompressed does: the flag in the table, and flag.json with the row it proved."""
        self.db.set_compressed(INDEX, PREFIX, compressed)
        row = {"id": self.row, "arity": 1, "table": "associations_1", "schema": "phenotype", "built": "x"}
        flag = Flag(INDEX, PREFIX, compressed, "", backend="mysql", row=row, execution="compress-test")
        RunFolder(parse_location(run)).write_flag(flag)


def job(capsys, *args: str) -> tuple[int, str]:
    rc = cli.main(list(args))
    return rc, capsys.readouterr().err


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def converted(tmp_path: Path, capsys, rollback: bool = False) -> tuple[Path, str, dict[str, bytes]]:
    """A sample index compressed and verified in two shards (and for a rollback, its originals
    deleted and a rollback planned, decompressed and verified)."""
    root = tmp_path / "data" / "associations"
    make_sample_index(root)
    originals = {k: v for k, v in files(root).items() if k.endswith(".json")}
    run = str(tmp_path / "run")
    for args in (["plan", str(root), "--index", INDEX, "--prefix", PREFIX, "--shards", "2"], ["compress"], ["verify"]):
        assert job(capsys, args[0], "--run-folder", run, *args[1:])[0] == 0
    if rollback:
        RunFolder(parse_location(run)).write_flag(Flag(INDEX, PREFIX, True, ""))
        assert job(capsys, "delete", "--run-folder", run)[0] == 0
        run = str(tmp_path / "rollback")
        plan = ["plan", str(root), "--index", INDEX, "--prefix", PREFIX, "--shards", "2", "--rollback"]
        for args in (plan, ["decompress"], ["verify"]):
            assert job(capsys, args[0], "--run-folder", run, *args[1:])[0] == 0
    return root, run, originals


def test_a_flag_changed_between_shards_stops_the_delete_and_puts_back_every_original(
    offline_aws, mariadb, monkeypatch, tmp_path, capsys
):
    root, run, originals = converted(tmp_path, capsys)
    bioindex = Bioindex(mariadb, monkeypatch)
    bioindex.set(True, run)
    assert job(capsys, "delete", "--run-folder", run, "--shard", "0")[0] == 0
    gone = set(originals) - set(files(root))
    assert gone, "shard 0 deleted its originals"

    bioindex.db.set_compressed(INDEX, PREFIX, False)  # as the bioindex CLI's update-compressed-status would
    rc, err = job(capsys, "delete", "--run-folder", run, "--shard", "1")
    assert rc == 2, err
    assert "the bioindex flag changed while this run deleted originals" in err and "compressed=false" in err
    assert f"the {len(gone)} originals this run had deleted are back" in err
    assert {k: v for k, v in files(root).items() if k.endswith(".json")} == originals, "every original, byte for byte"
    restored = json.loads((Path(run) / "delete" / "shard-1.restored.json").read_text())
    assert restored["ok"] and {r["key"] for r in restored["files"]} == gone, "exactly what was deleted"
    assert all(r["status"] == "restored" for r in restored["files"])
    assert bioindex.db.compressed(INDEX, PREFIX) is False, "the flag is left as they set it"

    rc, err = job(capsys, "delete", "--run-folder", run)
    assert rc == 2 and "flag changed" in err, "a re-run deletes nothing while the flag says otherwise"
    assert {k: v for k, v in files(root).items() if k.endswith(".json")} == originals


def test_a_flag_changed_during_the_last_batch_is_undone_at_once(offline_aws, mariadb, monkeypatch, tmp_path, capsys):
    root, run, originals = converted(tmp_path, capsys)
    bioindex = Bioindex(mariadb, monkeypatch)
    bioindex.set(True, run)
    delete = stores.LocalStore.delete

    def delete_then_someone_changes_the_flag(self, objects):
        delete(self, objects)
        bioindex.db.set_compressed(INDEX, PREFIX, False)

    monkeypatch.setattr(stores.LocalStore, "delete", delete_then_someone_changes_the_flag)
    rc, err = job(capsys, "delete", "--run-folder", run, "--shard", "0")
    assert rc == 2 and "are back" in err, err
    assert {k: v for k, v in files(root).items() if k.endswith(".json")} == originals
    manifest = json.loads((Path(run) / "delete" / "shard-0.json").read_text())
    assert not manifest["ok"] and {r["status"] for r in manifest["files"]} == {"restored"}


def test_a_rollback_puts_back_the_compressed_files_when_the_flag_is_set_again(
    offline_aws, mariadb, monkeypatch, tmp_path, capsys
):
    root, run, originals = converted(tmp_path, capsys, rollback=True)
    before = {k: v for k, v in files(root).items() if k.endswith((".gz", ".gzi"))}
    bioindex = Bioindex(mariadb, monkeypatch)
    bioindex.set(False, run)
    assert job(capsys, "remove-compressed", "--run-folder", run, "--shard", "0")[0] == 0
    assert len(before) > len([k for k in files(root) if k.endswith((".gz", ".gzi"))])

    bioindex.db.set_compressed(INDEX, PREFIX, True)
    rc, err = job(capsys, "remove-compressed", "--run-folder", run, "--shard", "1")
    assert rc == 2 and "while this run deleted compressed files" in err and "re-made from their verified .json" in err
    now = files(root)
    assert {k for k in now if k.endswith((".gz", ".gzi"))} == set(before), "every .gz and .gzi is back"
    for name, data in originals.items():  # readable by htslib: bgzip -d, and a random read through the .gzi
        gz = str(root / (name + ".gz"))
        assert subprocess.run(["bgzip", "-d", "-c", gz], capture_output=True, check=True).stdout == data
        start = len(data) // 2
        read = subprocess.run(["bgzip", "-b", str(start), "-s", "100", gz], capture_output=True, check=True).stdout
        assert read == data[start : start + 100]


def test_a_put_back_that_would_not_be_the_verified_original_is_never_written(
    offline_aws, mariadb, monkeypatch, tmp_path, capsys
):
    root, run, originals = converted(tmp_path, capsys)
    bioindex = Bioindex(mariadb, monkeypatch)
    bioindex.set(True, run)
    verify = Path(run) / "verify" / "shard-0.json"
    manifest = json.loads(verify.read_text())
    victim = manifest["files"][0]["key"]
    manifest["files"][0]["sha256"] = hashlib.sha256(b"not these bytes").hexdigest()
    verify.write_text(json.dumps(manifest))
    assert job(capsys, "delete", "--run-folder", run, "--shard", "0")[0] == 0
    bioindex.db.set_compressed(INDEX, PREFIX, False)
    rc, err = job(capsys, "delete", "--run-folder", run, "--shard", "1")
    assert rc == 2 and "1 could not be put back" in err and "is not the verified original" in err, err
    assert not (root / victim).exists() and (root / (victim + ".gz")).exists(), "no wrong X.json; its .gz is kept"
    others = {k: v for k, v in files(root).items() if k.endswith(".json")}
    assert others == {k: v for k, v in originals.items() if k != victim}


def test_a_job_that_cannot_reach_the_bioindex_converts_nothing(offline_aws, mariadb, monkeypatch, tmp_path, capsys):
    root = tmp_path / "data" / "associations"
    make_sample_index(root)
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", INDEX, "--prefix", PREFIX, "--run-folder", run)[0] == 0
    closed = {**mariadb.secret(), "port": 9}  # nothing listens there: as a subnet without a route
    Bioindex(mariadb, monkeypatch, secret=closed)
    rc, err = job(capsys, "compress", "--run-folder", run)
    assert rc == 3 and "the Batch jobs cannot read the bioindex flag" in err and "SubnetIds" in err, err
    assert not any(k.endswith(".gz") for k in files(root)), "nothing converted"


def test_an_unknown_index_found_by_the_job_converts_nothing(offline_aws, mariadb, monkeypatch, tmp_path, capsys):
    root = tmp_path / "data" / "associations"
    make_sample_index(root)
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", "gone", "--prefix", PREFIX, "--run-folder", run)[0] == 0
    Bioindex(mariadb, monkeypatch)
    rc, err = job(capsys, "compress", "--run-folder", run)
    assert rc == 2 and "UnknownIndex" in err and "nothing converted" in err, err
    assert not any(k.endswith(".gz") for k in files(root))


def test_a_workflow_runs_flag_is_never_trusted_without_the_live_one(tmp_path, capsys, monkeypatch):
    """flag.json naming an execution, and a job given no bioindex: nothing is deleted."""
    monkeypatch.delenv("BIOINDEX_FLAG_BACKEND", raising=False)
    root, run, originals = converted(tmp_path, capsys)
    flag = Flag(INDEX, PREFIX, True, "", backend="mysql", row={"id": 1}, execution="compress-test")
    RunFolder(parse_location(run)).write_flag(flag)
    rc, err = job(capsys, "delete", "--run-folder", run)
    assert rc == 2 and "set by execution compress-test" in err and "no bioindex configured" in err
    assert {k: v for k, v in files(root).items() if k.endswith(".json")} == originals


def test_the_retry_of_an_attempt_that_failed_after_deleting_puts_back_its_files(
    offline_aws, mariadb, monkeypatch, tmp_path, capsys
):
    """An attempt deletes a batch and then cannot reach the bioindex (exit 3, its manifest never
    written); the flag changes; the retry finds nothing left to delete, still re-reads the flag,
    and puts back what the failed attempt deleted."""
    from batch_job.bioindex.live_flag import LiveFlag
    from batch_job.errors import BioindexUnreachable

    root, run, originals = converted(tmp_path, capsys)
    bioindex = Bioindex(mariadb, monkeypatch)
    bioindex.set(True, run)
    check = LiveFlag.check
    calls = []

    def unreachable_after_the_batch(self, flag):
        calls.append(flag)
        if len(calls) == 2:
            raise BioindexUnreachable("the bioindex database did not answer")
        check(self, flag)

    with monkeypatch.context() as patch:
        patch.setattr(LiveFlag, "check", unreachable_after_the_batch)
        rc, err = job(capsys, "delete", "--run-folder", run, "--shard", "0")
    assert rc == 3 and "the bioindex database did not answer" in err, err
    assert not (Path(run) / "delete" / "shard-0.json").exists()
    gone = set(originals) - set(files(root))
    assert gone, "the attempt deleted its batch"

    bioindex.db.set_compressed(INDEX, PREFIX, False)
    rc, err = job(capsys, "delete", "--run-folder", run, "--shard", "0")
    assert rc == 2 and f"the {len(gone)} originals this run had deleted are back" in err, err
    assert {k: v for k, v in files(root).items() if k.endswith(".json")} == originals


def test_a_run_by_hand_ends_with_its_own_flag_and_delete(offline_aws, mariadb, monkeypatch, tmp_path, capsys):
    """`bgzip-job flag` sets the flag through the configured backend, as SetCompressed does, reads it
    back, and writes the flag.json its delete step requires: a run by hand needs no hand-written record."""
    root, run, originals = converted(tmp_path, capsys)
    bioindex = Bioindex(mariadb, monkeypatch)
    rc, err = job(capsys, "flag", "--run-folder", run, "--uncompressed")
    assert rc == 2 and "a compress plan: its flag is set with --compressed; nothing was set" in err
    assert bioindex.db.compressed(INDEX, PREFIX) is False
    rc = cli.main(["flag", "--run-folder", run, "--compressed"])
    out = capsys.readouterr().out
    assert rc == 0 and "compressed=true, through mysql, read back (was false" in out, out
    assert f"then: bgzip-job delete --run-folder {run}" in out
    assert bioindex.db.compressed(INDEX, PREFIX) is True
    flag = RunFolder(parse_location(run)).read_flag()
    assert flag.backend == "mysql" and flag.row["id"] == bioindex.row and flag.before is False
    assert job(capsys, "delete", "--run-folder", run)[0] == 0
    assert not any(k.endswith(".json") and k in originals for k in files(root))


def test_flag_by_hand_refuses_before_verify_and_without_a_bioindex_unless_attested(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("BIOINDEX_FLAG_BACKEND", raising=False)
    root = tmp_path / "data" / "associations"
    make_sample_index(root)
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", INDEX, "--prefix", PREFIX, "--run-folder", run)[0] == 0
    assert job(capsys, "compress", "--run-folder", run)[0] == 0
    rc, err = job(capsys, "flag", "--run-folder", run, "--compressed")
    assert rc == 2 and "verify has not passed in every shard" in err and "(0 of 1)" in err
    assert job(capsys, "verify", "--run-folder", run)[0] == 0
    rc, err = job(capsys, "flag", "--run-folder", run, "--compressed")
    assert rc == 2 and "no bioindex configured" in err and "--attest" in err
    assert RunFolder(parse_location(run)).read_flag() is None
    rc = cli.main(["flag", "--run-folder", run, "--compressed", "--attest"])
    assert rc == 0 and "compressed=true, as you attest" in capsys.readouterr().out
    assert RunFolder(parse_location(run)).read_flag().backend == "operator"
    assert job(capsys, "delete", "--run-folder", run)[0] == 0
