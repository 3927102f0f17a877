"""One run per prefix: the lock taken by `plan`, checked by the destructive steps, released at the end -
on a local folder and on S3 (moto), including the races the lock exists for."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from batch_job.locations import parse_location
from batch_job.locks import LEASE_ENV, Lease, Lock, Locks
from offline.sample_index import make_sample_index
from tests.conftest import write_flag
from tests.test_engine import PREFIX, Target, compress_and_verify, job

ROOT = Path(__file__).resolve().parent.parent
LONG_AGO = "2026-01-01T00:00:00Z"  # a lock older than JUST_STARTED_SECONDS


@pytest.fixture(autouse=True)
def _short_leases(monkeypatch):
    """Locks taken here carry 4 s leases: `unlock --force` waits one out."""
    monkeypatch.setenv(LEASE_ENV, "4")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def target(request, tmp_path) -> Target:
    return Target(request.param, tmp_path, request)


def _inside(target: Target, folder: str) -> str:
    return str(target.local_root / folder) if target.kind == "local" else target.uri + folder + "/"


def _other_run(target: Target, name: str) -> str:
    return target.run_folder.rstrip("/") + f"-{name}/"


def _drop_lock(uri: str) -> None:
    """The test's own cleanup between attempts (an operator would `unlock --force` and wait the lease out)."""
    locks = Locks(parse_location(uri))
    found = locks.read()
    if found is not None:
        locks.folder.store.delete([(locks.key_of(locks.key_prefix), found[1])])


def _lock_of(uri: str) -> Lock | None:
    found = Locks(parse_location(uri)).read()
    return found[0] if found else None


def test_plan_takes_the_lock_and_overlapping_plans_are_refused_naming_the_holder(target, capsys):
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0
    lock = _lock_of(target.uri)
    assert lock is not None and lock.run_folder == parse_location(target.run_folder).uri and lock.mode == "compress"
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0, (
        "a re-plan keeps it"
    )

    rc, _, err = job(
        capsys, "plan", target.uri, "--index", "genes", "--run-folder", _other_run(target, "b"), "--rollback"
    )
    assert rc == 2 and "is locked by the run by hand" in err and "compress of index 'genes'" in err
    assert f"if that run is no longer going on, `bgzip-job unlock {parse_location(target.uri).uri}` frees" in err, err
    rc, _, err = job(capsys, "plan", _inside(target, "T2D"), "--index", "t2d", "--run-folder", _other_run(target, "c"))
    assert rc == 2 and "lies inside" in err and "compress of index 'genes'" in err
    assert not any(k.endswith(".gz") for k in target.names())


def test_a_plan_above_a_locked_prefix_is_refused(target, capsys):
    inner = _inside(target, "T2D")
    assert job(capsys, "plan", inner, "--index", "t2d", "--run-folder", target.run_folder)[0] == 0
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", _other_run(target, "b"))
    assert rc == 2 and "contains" in err and "index 't2d'" in err
    assert _lock_of(target.uri) is None, "the refused run gave its own lock up"


def test_a_stale_lock_of_an_ended_execution_is_cleared(target, capsys, caplog, moto_server):
    """Step Functions (moto) says the holder's execution does not exist: its lock is stale."""
    target_location = parse_location(target.uri)
    locks = Locks(target_location)
    gone = "arn:aws:states:us-east-1:123456789012:execution:bgzip-workflow-compress:gone"
    stale = Lock(
        locks.key_prefix, target_location.uri, "s3://runs/runs/gone/", gone, "compress", "genes", created=LONG_AGO
    )
    assert locks.folder.store.create(locks.key_of(locks.key_prefix), stale.to_json())
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)
    assert rc == 0, err
    assert "clearing the stale lock" in caplog.text and "held by execution gone" in caplog.text
    assert _lock_of(target.uri).run_folder == parse_location(target.run_folder).uri


def test_a_running_execution_in_another_region_holds_its_lock(moto_server, monkeypatch):
    """The holder is asked in its execution's own region: from a caller in us-west-2, a RUNNING
    us-east-1 execution was once taken for ended, and its prefix taken."""
    import boto3

    from batch_job.locks import execution_is_running

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    waits = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 300, "End": True}}}
    machine = sfn.create_state_machine(
        name="holder", definition=json.dumps(waits), roleArn="arn:aws:iam::123456789012:role/holder"
    )["stateMachineArn"]
    running = sfn.start_execution(stateMachineArn=machine, name="running")["executionArn"]
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    lock = Lock("p/", "s3://d/p/", "s3://runs/runs/running/", running, "compress", "genes")
    try:
        assert execution_is_running(lock)
        missing = running.replace(":running", ":gone")
        gone = Lock("p/", "s3://d/p/", "s3://r/", missing, "compress", "genes", created=LONG_AGO)
        assert not execution_is_running(gone)
        # DescribeExecution is eventually consistent: an execution that took its lock moments ago
        # and is not found yet is taken as running, not as ended.
        assert execution_is_running(Lock("p/", "s3://d/p/", "s3://r/", missing, "compress", "genes"))
    finally:
        sfn.stop_execution(executionArn=running)


def test_a_run_by_hand_releases_its_lock_when_its_last_destructive_step_is_done(target, capsys):
    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    assert _lock_of(target.uri) is not None
    assert job(capsys, "delete", "--run-folder", target.run_folder)[0] == 0
    assert _lock_of(target.uri) is None
    assert job(capsys, "delete", "--run-folder", target.run_folder)[0] == 0, (
        "a re-run deletes nothing, so needs no lock"
    )
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0, (
        "re-runs exit 0"
    )
    assert _lock_of(target.uri) is None, "a plan re-run in a finished run folder takes no lock nothing would release"
    assert (
        job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", _other_run(target, "next"), "--rollback")[0]
        == 0
    )


@pytest.mark.slow  # waits out a lock's lease
def test_delete_refuses_unless_its_run_holds_the_lock(target, capsys):
    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    assert job(capsys, "unlock", "--force", target.uri)[0] == 0
    assert (
        job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", _other_run(target, "b"), "--rollback")[0]
        == 0
    )
    before = target.originals()
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and "not by this run" in err and "rollback of index 'genes'" in err
    assert target.originals() == before


def _job(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batch_job", *args], env=env, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow  # waits out a lock's lease
def test_delete_and_remove_compressed_racing_on_one_prefix_lose_nothing(target, capsys):
    """The fault that lost both sides: a compress run's delete and a rollback's remove-compressed at once.
    Only the run holding the lock deletes; the other refuses before deleting anything."""
    originals = target.originals()
    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    rollback = _other_run(target, "rollback")
    assert job(capsys, "unlock", "--force", target.uri)[0] == 0  # the operator forces the rollback in
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", rollback, "--rollback")[0] == 0
    assert job(capsys, "decompress", "--run-folder", rollback)[0] == 0
    assert job(capsys, "verify", "--run-folder", rollback)[0] == 0
    write_flag(rollback, "genes", target.prefix, False)

    results = _at_once(
        delete=["delete", "--run-folder", target.run_folder], remove=["remove-compressed", "--run-folder", rollback]
    )
    # The delete either refuses at the lock (2), or first finds the .gz it would keep already removed (1).
    delete = results["delete"]
    assert delete.returncode in (1, 2), delete.stderr
    # ... or, once remove-compressed is done and has released the lock, finds no lock at all (2).
    assert any(
        why in delete.stderr
        for why in ("not by this run", "missing or changed since it was verified", "no run holds the lock")
    ), delete.stderr
    assert results["remove"].returncode == 0, results["remove"].stderr
    assert target.originals() == originals, "every original is there, byte for byte"
    assert not any(k.endswith((".gz", ".gzi")) for k in target.names())


def _at_once(**commands: list[str]) -> dict[str, subprocess.CompletedProcess]:
    """Run bgzip-job commands in parallel processes; their results by name."""
    env = dict(os.environ)
    results: dict[str, subprocess.CompletedProcess] = {}
    threads = [
        threading.Thread(target=lambda n=name, a=args: results.update({n: _job(env, *a)}))
        for name, args in commands.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_racing_plans_on_nested_prefixes_never_both_go_on(target, capsys):
    inner = _inside(target, "BMI")
    for attempt in range(6):
        results = _at_once(
            outer=["plan", target.uri, "--index", "g", "--run-folder", _other_run(target, f"outer{attempt}")],
            inner=["plan", inner, "--index", "b", "--run-folder", _other_run(target, f"inner{attempt}")],
        )
        went_on = [name for name, r in results.items() if r.returncode == 0]
        assert len(went_on) <= 1, {n: r.stderr for n, r in results.items()}
        refused = [r for r in results.values() if r.returncode != 0]
        assert all(r.returncode == 2 and "locked by" in r.stderr for r in refused)
        for uri in (target.uri, inner):
            _drop_lock(uri)


def test_the_lock_lives_with_the_data(target, capsys):
    """S3: outside every prefix (the bioindex reads every object under one); locally: in the target
    folder itself, on its own filesystem, where every run on it finds it."""
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0
    uri = Locks(parse_location(target.uri)).uri
    if target.kind == "s3":
        assert uri == f"s3://{target.bucket}/.bgzip-workflow/locks/{PREFIX}.lock"
        assert not any(".lock" in k for k in target.names())
    else:
        assert uri == f"{target.local_root}/.bgzip-workflow.lock"
        lock = json.loads(Path(uri).read_text())
        assert lock["target"].startswith(str(target.local_root)) and lock["lease_seconds"] == 4


def test_a_re_plan_still_meets_the_overlap_check_and_gives_its_lock_up(target, capsys):
    """A run that holds its lock and plans again is refused, and lets go, if a live run holds an
    overlapping prefix (here put there behind its back)."""
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0
    inner = Locks(parse_location(_inside(target, "T2D")))
    other = Lock(inner.key_prefix, inner.target.uri, _other_run(target, "b"), "", "compress", "t2d")
    assert inner.folder.store.create(inner.key_of(inner.key_prefix), other.to_json())
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)
    assert rc == 2 and "contains" in err and "index 't2d'" in err
    assert _lock_of(target.uri) is None


def _plant(uri: str, body: bytes) -> str:
    """A lock object written as-is at `uri`'s prefix; its URI."""
    locks = Locks(parse_location(uri))
    locks.folder.store.write_bytes(locks.key_of(locks.key_prefix), body)
    return locks.uri


@pytest.mark.slow  # waits out a lock's lease
def test_an_unreadable_lock_holds_only_its_own_prefixes_and_unlock_removes_it(target, capsys, tmp_path):
    """One unparseable object among the locks once made every plan in the bucket fail, unnamed, and
    `unlock` could not remove it. Now it blocks only the prefixes it overlaps, named, until unlocked."""
    elsewhere = str(tmp_path / "elsewhere") if target.kind == "local" else target.uri.replace(PREFIX, "elsewhere/")
    if target.kind == "local":
        (tmp_path / "elsewhere").mkdir()
    _plant(elsewhere, b"{not json")
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0, (
        "a disjoint prefix"
    )
    assert job(capsys, "unlock", "--force", target.uri)[0] == 0

    inner = _inside(target, "T2D")
    where = _plant(inner, b'["a list"]')
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", _other_run(target, "b"))
    assert rc == 2 and f"the unreadable lock object {where}" in err and "bgzip-job unlock" in err, err
    rc, out, _ = job(capsys, "unlock", inner)
    assert rc == 0 and "removed the lock of" in out and "unreadable lock object" in out
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", _other_run(target, "b"))[0] == 0
    assert job(capsys, "unlock", "--force", target.uri)[0] == 0

    newer = Lock(Locks(parse_location(inner)).key_prefix, inner, "s3://runs/runs/newer/", "", "compress", "t2d")
    _plant(inner, json.dumps(newer.to_dict() | {"lease_until": "2026-12-01T00:00:00Z"}).encode())
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", _other_run(target, "c"))
    assert rc == 2 and "contains" in err and "index 't2d'" in err and "unreadable lock object" not in err, (
        "a newer version's lock"
    )


def test_a_lock_keeps_the_holder_keys_every_version_reads():
    """`Lock.execution_arn` and `Lock.run_folder` are written as "execution" and "run", the keys every
    version looks for: one that did not find them would take a running workflow's lock for a lapsed
    run by hand's, or not know its own lock."""
    arn = "arn:aws:states:us-west-2:123456789012:execution:bgzip-compress:genes-20261201T000000Z"
    lock = Lock("p/", "s3://d/p/", "s3://runs/runs/r/", execution_arn=arn, mode="compress", index="genes")
    body = json.loads(lock.to_json())
    assert body["execution"] == arn and "execution_arn" not in body
    assert body["run"] == "s3://runs/runs/r/" and "run_folder" not in body
    read = Lock.from_json(lock.to_json())
    assert read == lock and "execution genes-20261201T000000Z" in read.holder()


def test_runs_by_hand_with_their_own_temp_folders_meet_one_lock(tmp_path, capsys):
    """The route that lost all 106 originals: two operators on one folder, each with a lock folder of
    their own (one with BGZIP_JOB_LOCKS set, one without; equally two TMPDIRs, two hosts on one NFS
    mount). The lock lives in the folder now: whatever their environments, the rollback is refused
    while the compress run holds it, and the racing steps lose nothing."""
    root = tmp_path / "data"
    root.mkdir()
    make_sample_index(root)
    originals = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.json")}
    envs = {}
    for who in ("a", "b"):
        (tmp_path / who).mkdir()
        envs[who] = {**os.environ, "TMPDIR": str(tmp_path / who)}
    envs["a"]["BGZIP_JOB_LOCKS"] = str(tmp_path / "a" / "locks")  # the old setting: ignored
    compress_run, rollback_run = str(tmp_path / "run-a"), str(tmp_path / "run-b")
    for args in (
        ["plan", str(root), "--index", "genes", "--run-folder", compress_run],
        ["compress", "--run-folder", compress_run],
    ):
        assert _job(envs["a"], *args).returncode == 0
    assert _job(envs["a"], "verify", "--run-folder", compress_run).returncode == 0
    write_flag(compress_run, "genes", "data/", True)
    refused = _job(envs["b"], "plan", str(root), "--index", "genes", "--run-folder", rollback_run, "--rollback")
    assert refused.returncode == 2 and "is locked by the run by hand" in refused.stderr, refused.stderr

    # At once: the compress run's delete, and the second operator's whole rollback.
    rollback = [
        ["plan", str(root), "--index", "genes", "--run-folder", rollback_run, "--rollback"],
        ["decompress", "--run-folder", rollback_run],
        ["verify", "--run-folder", rollback_run],
    ]
    results: dict[str, list[subprocess.CompletedProcess]] = {"a": [], "b": []}

    def second_operator() -> None:
        for args in rollback:
            results["b"].append(_job(envs["b"], *args))
            if results["b"][-1].returncode:
                return
        write_flag(rollback_run, "genes", "data/", False)
        results["b"].append(_job(envs["b"], "remove-compressed", "--run-folder", rollback_run))

    other = threading.Thread(target=second_operator)
    other.start()
    results["a"].append(_job(envs["a"], "delete", "--run-folder", compress_run))
    other.join()
    assert results["a"][0].returncode == 0, results["a"][0].stderr
    # Every record is still there, as X.json or in its verified X.json.gz.
    for name, data in originals.items():
        path = root / name
        kept = path.read_bytes() if path.exists() else gzip.decompress((root / f"{name}.gz").read_bytes())
        assert kept == data, name


HELD_DELETE = """
import pathlib, sys, time
from batch_job import stores
kind, marker, release, *args = sys.argv[1:]
store = stores.S3Store if kind == "s3" else stores.LocalStore
original = store.delete

def held(self, objects):  # a slow request, a paused container: between the lock check and the send
    pathlib.Path(marker).touch()
    deadline = time.monotonic() + 60
    while not pathlib.Path(release).exists() and time.monotonic() < deadline:  # until the test lets go
        time.sleep(0.05)
    return original(self, objects)

store.delete = held
from batch_job.cli import main
sys.exit(main(args))
"""


@pytest.mark.slow  # waits out a lock's lease
def test_a_delete_held_past_its_lease_is_not_sent(target, capsys, tmp_path):
    """The route that lost every original and its .gz: a compress run's delete held 55 s, meanwhile
    `unlock` and a whole rollback by hand; then the held delete landed. Now `unlock` refuses the live
    lease; forced, it takes the lock away and waits the lease out; the rollback runs; the held delete
    finds its lease gone and sends nothing. Every original is there."""
    originals = target.originals()
    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    marker, release = tmp_path / "held", tmp_path / "release"
    held = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HELD_DELETE,
            target.kind,
            str(marker),
            str(release),
            "delete",
            "--run-folder",
            target.run_folder,
        ],
        env=dict(os.environ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert held.poll() is None and time.monotonic() < deadline, held.communicate()
            time.sleep(0.05)
        time.sleep(1.5)  # the holder renews its lease while it is held
        rc, _, err = job(capsys, "unlock", target.uri)
        assert rc == 2 and "its lease is live for" in err and "--force" in err, err
        started = time.monotonic()
        rc, out, _ = job(capsys, "unlock", "--force", target.uri)
        assert rc == 0 and "may still have a delete request in flight until its lease ends: waiting" in out, out
        assert time.monotonic() - started >= 3, "the lease was waited out"

        rollback = _other_run(target, "rollback")
        assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", rollback, "--rollback")[0] == 0
        assert job(capsys, "decompress", "--run-folder", rollback)[0] == 0
        assert job(capsys, "verify", "--run-folder", rollback)[0] == 0
        write_flag(rollback, "genes", target.prefix, False)
        assert job(capsys, "remove-compressed", "--run-folder", rollback)[0] == 0
        assert held.poll() is None, "the held delete is still to come"
        release.touch()
        _, err = held.communicate(timeout=60)
    finally:
        if held.poll() is None:
            held.kill()
    assert held.returncode == 3, err
    assert "this run's lock was removed or taken over while the step worked; this delete was not sent" in err
    assert target.originals() == originals, "every original is there, byte for byte"
    assert not any(k.endswith((".gz", ".gzi")) for k in target.names())


@pytest.mark.slow  # waits out a lock's lease
def test_a_step_renews_its_lease_while_it_works_and_a_lapsed_run_by_hand_is_taken_over(target, capsys, caplog):
    """A run by hand holds its prefix while a step works (here: longer than its lease) and for one lease
    after; then its lock is stale, and another run takes the prefix."""
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0
    locks = Locks(parse_location(target.uri))
    first, _ = locks.read()
    lease = Lease(locks, parse_location(target.run_folder).uri)
    with lease:
        time.sleep(5)  # longer than the 4 s lease
        rc, _, err = job(
            capsys, "plan", target.uri, "--index", "genes", "--run-folder", _other_run(target, "b"), "--rollback"
        )
        assert rc == 2 and "is locked by the run by hand" in err and "lease renewed" in err, err
        assert lease.check() is None
    renewed, _ = locks.read()
    assert renewed.renewed > first.created and renewed.run_folder == first.run_folder
    time.sleep(renewed.lease_left() + 0.5)
    other = _other_run(target, "b")
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", other)
    assert rc == 0 and "clearing the stale lock" in caplog.text, err
    assert _lock_of(target.uri).run_folder == parse_location(other).uri


@pytest.mark.slow  # waits out a lock's lease
def test_the_array_jobs_of_one_run_renew_one_lease_side_by_side(target, capsys):
    """Each shard of a step is its own Batch job: their renewals of the one lock overwrite each
    other's versions, and none may take that for losing the lock (a workflow run failed so)."""
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0
    locks = Locks(parse_location(target.uri))
    shards = [Lease(Locks(parse_location(target.uri)), parse_location(target.run_folder).uri) for _ in range(3)]
    for lease in shards:
        lease.__enter__()
    try:
        time.sleep(4)  # four beats each at a 4 s lease
        for lease in shards:
            assert not lease.lost
            lease.check()
    finally:
        for lease in shards:
            lease.__exit__(None, None, None)
    assert locks.read()[0].run_folder == parse_location(target.run_folder).uri


def test_a_lock_being_renewed_is_never_seen_free(tmp_path):
    """A local lock's renewal replaced the file by renaming it away and linking the new one in: in
    between, another run's plan found no lock, took the prefix, and the holder lost it (seen under
    load in the suite). Now the new version is renamed over the old: 300 renewals in one thread,
    and another thread's creates and reads never find the key free."""
    from batch_job.stores import LocalStore

    store = LocalStore(tmp_path, guarded=True)
    info = store.create("x/.bgzip-workflow.lock", b'{"run": "a"}')
    done, seen_free, taken = threading.Event(), [], []

    def renew() -> None:
        etag = info.etag
        for n in range(300):
            renewed = store.replace("x/.bgzip-workflow.lock", b'{"run": "a", "n": %d}' % n, etag)
            assert renewed is not None
            etag = renewed.etag
        done.set()

    holder = threading.Thread(target=renew)
    holder.start()
    while not done.is_set():
        if store.create("x/.bgzip-workflow.lock", b'{"run": "b"}') is not None:
            taken.append(True)
        if store.read_bytes("x/.bgzip-workflow.lock") is None:
            seen_free.append(True)
    holder.join()
    assert not taken and not seen_free, (len(taken), len(seen_free))
    assert store.read_bytes("x/.bgzip-workflow.lock") == b'{"run": "a", "n": 299}'


def test_a_release_while_the_holder_renews_reads_the_lock_again(target, capsys):
    """`bgz stop` releases a lock whose stopped step may still renew it: a delete that names the
    version read before a renewal is refused by the store, and the release reads it again."""
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0
    locks = Locks(parse_location(target.uri))
    delete, renewals = locks.folder.store.delete, []

    def renewed_first(objects):
        if len(renewals) < 2:  # the holder renews between each of the first two reads and deletes
            lock, etag = locks.read()
            renewals.append(locks.renew(lock, etag))
        return delete(objects)

    locks.folder.store.delete = renewed_first
    assert locks.release(parse_location(target.run_folder).uri) is True
    assert len(renewals) == 2 and all(renewals) and locks.read() is None, "renewed twice, then released"


def test_a_release_gives_up_only_what_is_its_own_and_says_when_it_cannot(target, capsys):
    """A lock that became another run's is left alone (False); a delete refused for access is final
    at once; a lock that keeps changing is given up after a few reads, with an error naming it."""
    from batch_job.errors import DeletesRefused, NotDeleted, StoreError
    from batch_job.locks import RELEASE_ATTEMPTS

    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0
    locks = Locks(parse_location(target.uri))
    ours = parse_location(target.run_folder).uri
    assert locks.release(_other_run(target, "b")) is False and locks.read() is not None, "not its lock"
    delete, attempts = locks.folder.store.delete, []

    def refused(objects):
        attempts.append(objects)
        raise DeletesRefused("access denied", {objects[0][0]: "AccessDenied"})

    locks.folder.store.delete = refused
    with pytest.raises(DeletesRefused):
        locks.release(ours)
    assert len(attempts) == 1, "access denied is not retried"

    def changing(objects):
        attempts.append(objects)
        raise NotDeleted("changed", {objects[0][0]: "PreconditionFailed"})

    attempts.clear()
    locks.folder.store.delete = changing
    with pytest.raises(StoreError, match=f"{RELEASE_ATTEMPTS} deletes of the lock of .* were refused"):
        locks.release(ours)
    assert len(attempts) == RELEASE_ATTEMPTS and locks.read() is not None
    locks.folder.store.delete = delete
    assert locks.release(ours) is True and locks.read() is None
