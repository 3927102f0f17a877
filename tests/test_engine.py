"""bgzip-job end to end on a local folder and on S3 (moto server): plan, compress, verify, delete,
rollback, and every refusal the safety rules ask for."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import threading
import time
import zlib
from pathlib import Path

import pytest

from batch_job import bgzf, cli, errors, provenance, stores
from batch_job.errors import StoreError
from batch_job.locations import parse_location
from batch_job.locks import LEASE_ENV, LOCAL_LOCK_NAME
from batch_job.records import Step
from batch_job.steps import verify
from batch_job.stores import S3Store
from offline.sample_index import gwas_lines, make_sample_index, upload_tree
from tests.conftest import write_flag

PREFIX = "associations/"


class Target:
    """The same test body against a local folder or an S3 prefix."""

    def __init__(self, kind: str, tmp_path: Path, request) -> None:
        self.kind = kind
        self.local_root = tmp_path / "data"
        self.local_root.mkdir()
        make_sample_index(self.local_root)
        if kind == "local":
            self.uri = str(self.local_root)
            self.run_folder = str(tmp_path / "run")
            self.prefix = "data/"
        else:
            s3 = request.getfixturevalue("s3")
            self.bucket = request.getfixturevalue("bucket")
            self.s3 = s3
            upload_tree(s3, self.bucket, self.local_root, PREFIX)
            self.uri = f"s3://{self.bucket}/{PREFIX}"
            self.run_folder = f"s3://{request.getfixturevalue('run_bucket')}/runs/test-run/"
            self.prefix = PREFIX

    def names(self) -> set[str]:
        """The data's files (locally, a run's lock lives beside them: not one of them)."""
        if self.kind == "local":
            files = (p for p in self.local_root.rglob("*") if p.is_file() and not p.name.startswith(LOCAL_LOCK_NAME))
            return {p.relative_to(self.local_root).as_posix() for p in files}
        resp = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=PREFIX)
        return {o["Key"][len(PREFIX) :] for o in resp.get("Contents", [])}

    def read(self, name: str) -> bytes:
        if self.kind == "local":
            return (self.local_root / name).read_bytes()
        return self.s3.get_object(Bucket=self.bucket, Key=PREFIX + name)["Body"].read()

    def write(self, name: str, data: bytes) -> None:
        if self.kind == "local":
            (self.local_root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.local_root / name).write_bytes(data)
        else:
            self.s3.put_object(Bucket=self.bucket, Key=PREFIX + name, Body=data)

    def run_json(self, name: str) -> dict:
        if self.kind == "local":
            return json.loads((Path(self.run_folder) / name).read_text())
        bucket, _, key = self.run_folder[len("s3://") :].partition("/")
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key + name)["Body"].read())

    def originals(self) -> dict[str, bytes]:
        return {k: self.read(k) for k in sorted(self.names()) if k.endswith(".json")}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def target(request, tmp_path) -> Target:
    return Target(request.param, tmp_path, request)


def job(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli.main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def compress_and_verify(target: Target, capsys, *plan_args: str) -> None:
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder, *plan_args)[0] == 0
    assert job(capsys, "compress", "--run-folder", target.run_folder)[0] == 0
    assert job(capsys, "verify", "--run-folder", target.run_folder)[0] == 0


def test_compress_verify_delete_and_rollback(target, capsys, tmp_path):
    originals = target.originals()
    assert len(originals) == 5
    rc, out, err = job(
        capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder, "--shards", "2"
    )
    assert rc == 0 and out.strip() == "2"
    plan = target.run_json("plan.json")
    assert sorted(f["key"].removeprefix(PREFIX) for f in plan["files"]) == sorted(originals)

    rc, out, _ = job(capsys, "compress", "--run-folder", target.run_folder)
    assert rc == 0 and out.startswith("compress: 5 files") and "0 failed" in out
    for name, data in originals.items():
        gz, gzi = target.read(name + ".gz"), target.read(name + ".gz.gzi")
        (tmp_path / "x.gz").write_bytes(gz)
        assert subprocess.run(["bgzip", "-d", "-c", str(tmp_path / "x.gz")], capture_output=True).stdout == data
        assert len(gzi) == 8 + 16 * (-(-len(data) // 65280) - 1)
    assert set(target.originals()) == set(originals), "compress keeps the originals"

    # --run, the flag's name before --run-folder, is still taken: scripts written for it go on working.
    rc, out, _ = job(capsys, "verify", "--run", target.run_folder, "--json")  # the summary line as a record
    summary = json.loads(out)
    assert rc == 0 and (summary["step"], summary["files"], summary["filesFailed"], summary["failed"]) == (
        "verify",
        5,
        0,
        [],
    )
    assert summary["bytesIn"] >= sum(map(len, originals.values())) and summary["seconds"] >= 0
    verified = target.run_json("verify/shard-0.json")["files"] + target.run_json("verify/shard-1.json")["files"]
    assert {r["key"].removeprefix(PREFIX) for r in verified if r["ok"]} == set(originals)
    assert all(r["sha256"] == hashlib.sha256(originals[r["key"].removeprefix(PREFIX)]).hexdigest() for r in verified)

    write_flag(target.run_folder, "genes", target.prefix, True)
    rc, out, _ = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 0
    assert not any(k.endswith(".json") for k in target.names())
    assert {"README.txt", "T2D/_SUCCESS"} <= target.names(), "nothing outside the plan is deleted"
    assert job(capsys, "delete", "--run-folder", target.run_folder)[0] == 0, "re-running delete is harmless"

    rollback = target.run_folder.rstrip("/") + "-rollback/"
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", rollback, "--rollback")[0] == 0
    assert job(capsys, "decompress", "--run-folder", rollback)[0] == 0
    assert job(capsys, "verify", "--run-folder", rollback)[0] == 0
    rc, _, err = job(capsys, "remove-compressed", "--run-folder", rollback)
    assert rc == 2 and "flag.json" in err, "removal needs the flag confirmed false"
    write_flag(rollback, "genes", target.prefix, False)
    assert job(capsys, "remove-compressed", "--run-folder", rollback)[0] == 0
    assert target.originals() == originals
    assert not any(k.endswith((".gz", ".gzi")) for k in target.names())


def test_small_files_on_s3_are_worked_on_many_at_once(target, capsys, monkeypatch):
    """A small file on S3 takes its requests' latency, not its bytes' time: 16 are worked on at once
    there, where a local folder's stay at --files-in-parallel (2). Each file is held 50 ms here, as
    S3's latency would hold it."""
    from batch_job.steps import compress

    for n in range(40):
        target.write(f"small/part-{n:02d}.json", gwas_lines(2000, seed=n))
    working, most = [0], [0]
    lock = threading.Lock()
    real = compress.compress_file

    def held(ctx, planned, level):
        with lock:
            working[0] += 1
            most[0] = max(most[0], working[0])
        time.sleep(0.05)
        try:
            return real(ctx, planned, level)
        finally:
            with lock:
                working[0] -= 1

    monkeypatch.setattr(compress, "compress_file", held)
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0
    assert job(capsys, "compress", "--run-folder", target.run_folder)[0] == 0
    assert most[0] >= 12 if target.kind == "s3" else most[0] == 2, most


def test_shards_cover_every_file_once_and_balance_bytes(target, capsys):
    assert (
        job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder, "--shards", "3")[1]
        == "3\n"
    )
    plan = target.run_json("plan.json")
    assert plan["shards"] == 3 and len(plan["files"]) == len({f["key"] for f in plan["files"]}) == 5
    loads = [sum(f["size"] for f in plan["files"] if f["shard"] == k) for k in range(3)]
    assert all(loads) and max(loads) <= plan["total_bytes"] - min(loads)
    for k in range(3):
        assert job(capsys, "compress", "--run-folder", target.run_folder, "--shard", str(k))[0] == 0
        compressed = target.run_json(f"compress/shard-{k}.json")["files"]
        assert {r["key"] for r in compressed} == {f["key"] for f in plan["files"] if f["shard"] == k}
    assert job(capsys, "compress", "--run-folder", target.run_folder, "--shard", "3")[0] == 2


def test_array_index_selects_the_shard(target, capsys, monkeypatch):
    job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder, "--shards", "2")
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "1")
    rc, out, _ = job(capsys, "compress", "--run-folder", target.run_folder)
    plan = target.run_json("plan.json")
    assert rc == 0
    assert out.startswith(f"compress: {sum(1 for f in plan['files'] if f['shard'] == 1)} files")


def test_corrupted_output_is_caught_by_verify_and_blocks_delete(target, capsys):
    compress_and_verify(target, capsys)
    name = "T2D/part-00000.json.gz"
    data = bytearray(target.read(name))
    data[len(data) // 2] ^= 0xFF
    target.write(name, bytes(data))
    rc, out, _ = job(capsys, "verify", "--run-folder", target.run_folder)
    assert rc == 1 and "1 failed" in out and "T2D/part-00000.json" in out
    write_flag(target.run_folder, "genes", target.prefix, True)
    rc, out, _ = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 1
    assert "T2D/part-00000.json" in target.names(), "an original whose output failed verify is kept"
    assert sum(k.endswith(".json") for k in target.names()) == 1


def test_a_gz_htslib_cannot_read_fails_alone_among_many(tmp_path, capsys):
    """Verify reads each .gz through htslib's bgzip: three .gz it cannot read among 60 files each fail
    with htslib's reason, and every other file passes."""
    root = tmp_path / "data"
    for n in range(60):
        (root / "p").mkdir(parents=True, exist_ok=True)
        (root / "p" / f"f{n:02d}.json").write_bytes(gwas_lines(20 + n, seed=n))
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", "x", "--run-folder", run)[0] == 0
    assert job(capsys, "compress", "--run-folder", run)[0] == 0
    gz = {n: root / "p" / f"f{n:02d}.json.gz" for n in (7, 23, 41)}
    for n, where in zip(gz, (3, 2, 1.5), strict=True):  # corrupted in place, its ETag (size, mtime) kept
        before = os.stat(gz[n])
        spoiled = bytearray(gz[n].read_bytes())
        spoiled[int(len(spoiled) / where)] ^= 0xFF
        gz[n].write_bytes(bytes(spoiled))
        os.utime(gz[n], ns=(before.st_atime_ns, before.st_mtime_ns))
    rc, out, _ = job(capsys, "verify", "--run-folder", run)
    assert rc == 1 and "3 failed" in out, out
    manifest = json.loads((Path(run) / "verify" / "shard-0.json").read_text())
    failed = sorted(r["key"].rsplit("/", 1)[-1] for r in manifest["files"] if not r["ok"])
    assert failed == ["f07.json", "f23.json", "f41.json"], failed
    errors = {r["key"].rsplit("/", 1)[-1]: r["error"] for r in manifest["files"] if not r["ok"]}
    assert all("htslib cannot decompress it" in e for e in errors.values()), errors


def test_small_files_are_verified_many_to_one_htslib_process(tmp_path, capsys, monkeypatch):
    """No process a file: 150 small files go through 3 `bgzip -d` (batches of 64), and each record
    is the file's own (its SHA-256, its spot checks); a larger file still gets a bgzip of its own."""
    root = tmp_path / "data"
    (root / "p").mkdir(parents=True)
    for n in range(150):
        (root / "p" / f"f{n:03d}.json").write_bytes(gwas_lines(3000 + 10 * n, seed=n))
    (root / "p" / "large.json").write_bytes(gwas_lines(verify.BATCHED_BELOW + 1, seed=999))
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", "x", "--run-folder", run)[0] == 0
    assert job(capsys, "compress", "--run-folder", run)[0] == 0
    calls = tmp_path / "bgzip-calls"
    wrapper = tmp_path / "bin" / "bgzip"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {shutil.which("bgzip")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")

    rc, out, _ = job(capsys, "verify", "--run-folder", run)
    assert rc == 0 and "151 files" in out, out
    assert calls.read_text().splitlines() == ["-d -c"] * 4, "3 batches and the large file, each read by htslib"
    records = json.loads((Path(run) / "verify" / "shard-0.json").read_text())["files"]
    for record in records:
        original = (root / record["key"]).read_bytes()
        assert record["ok"] and record["sha256"] == hashlib.sha256(original).hexdigest(), record
        assert record["original_size"] == len(original) and record["random_access_offsets_checked"] >= 2


def test_a_large_file_between_small_ones_keeps_the_manifest_in_plan_order(tmp_path, capsys):
    """Small files go in batches and a large one alone, yet the records stay in the plan's order."""
    root = tmp_path / "data"
    (root / "p").mkdir(parents=True)
    for name, size in (("a", 2000), ("b", 2000), ("c", verify.BATCHED_BELOW + 1), ("d", 2000), ("e", 2000)):
        (root / "p" / f"{name}.json").write_bytes(gwas_lines(size, seed=ord(name)))
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", "x", "--run-folder", run)[0] == 0
    assert job(capsys, "compress", "--run-folder", run)[0] == 0
    assert job(capsys, "verify", "--run-folder", run)[0] == 0
    planned = [f["key"] for f in json.loads((Path(run) / "plan.json").read_text())["files"]]
    recorded = [r["key"] for r in json.loads((Path(run) / "verify" / "shard-0.json").read_text())["files"]]
    assert recorded == planned and planned[2] == "p/c.json", (recorded, planned)


def test_a_stop_during_a_batch_ends_verify_with_130_and_the_same_command_finishes(tmp_path, capsys, monkeypatch):
    """Ctrl-C (STOP) while a batch of small files goes through htslib: the step stops at the next
    file, records nothing for the shard, exits 130; run again, it verifies every file."""
    from batch_job.cancel import STOP

    root = tmp_path / "data"
    (root / "p").mkdir(parents=True)
    for n in range(150):
        (root / "p" / f"f{n:03d}.json").write_bytes(gwas_lines(2000, seed=n))
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", "x", "--run-folder", run)[0] == 0
    assert job(capsys, "compress", "--run-folder", run)[0] == 0
    real, calls = verify._matches, []

    def interrupted_at_the_fifth(*args):
        calls.append(1)
        if len(calls) == 5:
            STOP.set()  # what Ctrl-C's handler does
        return real(*args)

    monkeypatch.setattr(verify, "_matches", interrupted_at_the_fifth)
    rc, _, err = job(capsys, "verify", "--run-folder", run)
    assert rc == 130 and "interrupted; run the same command again to finish" in err, err
    assert not (Path(run) / "verify" / "shard-0.json").exists(), "a stopped shard records nothing"
    assert len(calls) < 150, "the step stopped before every file was read"
    monkeypatch.setattr(verify, "_matches", real)
    rc, out, _ = job(capsys, "verify", "--run-folder", run)
    assert rc == 0 and "150 files" in out and "0 failed" in out, out


def _forge_output(gz: Path, data: bytes) -> None:
    """Make X.json.gz other BGZF bytes with a matching .gzi, as if written so: the provenance kept."""
    before = os.stat(gz)
    block = bgzf.encode_block(data, 6)
    gz.write_bytes(block + bgzf.EOF_BLOCK)
    index = bgzf.BlockIndex()
    index.add_block(len(block), len(data))
    gzi = gz.with_name(gz.name + ".gzi")
    gzi.write_bytes(index.to_gzi())
    after = os.stat(gz)
    assert after.st_size != before.st_size
    name = next(n for n in os.listxattr(gzi) if n.endswith(provenance.GZ_ETAG))
    os.setxattr(gzi, name, f"{after.st_mtime_ns:x}-{after.st_size:x}".encode())


def test_in_a_batch_a_gz_holding_a_line_more_than_its_original_fails(tmp_path, capsys):
    """Batched files are told apart by a marker after each, not by their sizes: split by sizes alone,
    a .gz holding X.json and one line more would pass (its spot checks all lie within X.json), the
    line being taken for the next file's."""
    root = tmp_path / "data"
    (root / "p").mkdir(parents=True)
    first, second, more = b'{"a": 1}\n', b'{"b": 2}\n', b'{"c": 3}\n'
    (root / "p" / "a.json").write_bytes(first + second)
    (root / "p" / "b.json").write_bytes(more + second)
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", "x", "--run-folder", run)[0] == 0
    assert job(capsys, "compress", "--run-folder", run)[0] == 0
    _forge_output(root / "p" / "a.json.gz", first + second + more)
    assert subprocess.run(["bgzip", "-t", str(root / "p" / "a.json.gz")]).returncode == 0

    rc, out, _ = job(capsys, "verify", "--run-folder", run)
    assert rc == 1 and "1 failed" in out, out
    records = {r["key"]: r for r in json.loads((Path(run) / "verify" / "shard-0.json").read_text())["files"]}
    assert records["p/a.json"]["error"] == "FileFailed: size: p/a.json.gz holds 27 bytes, p/a.json 18", records
    assert records["p/b.json"]["ok"], records


def test_a_gz_of_other_bytes_fails_at_the_first_byte_that_differs(tmp_path, capsys):
    """A .gz htslib reads without complaint that holds other bytes than X.json (a stored block with one
    byte changed and its CRC made right; size and ETag kept) fails, naming the first differing byte."""
    root = tmp_path / "data"
    (root / "p").mkdir(parents=True)
    (root / "p" / "f.json").write_bytes(gwas_lines(6_000_000, seed=3))  # more than the pipes hold: bgzip is stopped
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", "x", "--run-folder", run)[0] == 0
    assert job(capsys, "compress", "--run-folder", run, "--level", "0")[0] == 0
    gz = root / "p" / "f.json.gz"
    before = os.stat(gz)
    data = bytearray(gz.read_bytes())
    second = bgzf.block_size_from_header(bytes(data[: bgzf.HEADER_SIZE]))  # where the second block starts
    end = second + bgzf.block_size_from_header(bytes(data[second : second + bgzf.HEADER_SIZE]))
    stored = second + bgzf.HEADER_SIZE + 5  # a stored deflate block: BFINAL/BTYPE, LEN, NLEN, then the bytes
    data[stored + 100] ^= 0x01
    data[end - 8 : end - 4] = zlib.crc32(bytes(data[stored : end - 8])).to_bytes(4, "little")
    gz.write_bytes(bytes(data))
    os.utime(gz, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert subprocess.run(["bgzip", "-t", str(gz)]).returncode == 0, "htslib reads the changed .gz"

    rc, _, _ = job(capsys, "verify", "--run-folder", run)
    assert rc == 1
    (record,) = json.loads((Path(run) / "verify" / "shard-0.json").read_text())["files"]
    assert (
        record["error"]
        == f"FileFailed: content: p/f.json.gz differs from p/f.json at byte {bgzf.BLOCK_DATA_SIZE + 100}"
    )


@pytest.mark.parametrize(
    ("decoded", "size", "decoded_size", "first_difference", "hashed"),
    [
        (b"abcdef", 6, 6, None, True),
        (b"abcdXf", 4, None, 4, False),  # stops at the difference
        (b"abc", 4, 3, None, False),  # htslib's output ends inside the first chunk
        (b"abcdefgh", 6, 8, None, True),  # longer: read to its end to say by how much
    ],
)
def test_compare_reads_both_sides_until_they_differ(decoded, size, decoded_size, first_difference, hashed):
    advanced: list[int] = []
    compared = verify.compare(iter([b"abcd", b"ef"]), io.BytesIO(decoded), advanced.append)
    assert (compared.size, compared.decoded_size, compared.first_difference) == (size, decoded_size, first_difference)
    assert compared.sha256 == (hashlib.sha256(b"abcdef").hexdigest() if hashed else "")
    assert sum(advanced) == (6 if hashed else 4 if first_difference else 0)


def test_a_step_rewrites_its_progress_record_while_it_works(tmp_path, capsys, monkeypatch):
    """A long step says how far it has got before its manifest: bgz watch counts these records for
    the shards still working. Each file here takes 20 ms, and the step reports every 10 ms."""
    from batch_job.runfolder import RunFolder
    from batch_job.steps import compress

    root = tmp_path / "data"
    for n in range(30):
        (root / "p").mkdir(parents=True, exist_ok=True)
        (root / "p" / f"f{n:02d}.json").write_bytes(gwas_lines(2000, seed=n))
    run = str(tmp_path / "run")
    assert job(capsys, "plan", str(root), "--index", "x", "--run-folder", run)[0] == 0
    slow = compress.compress_file

    def compress_slowly(ctx, planned, level):
        time.sleep(0.02)
        return slow(ctx, planned, level)

    written = []
    write = RunFolder.write_progress
    monkeypatch.setattr(compress, "compress_file", compress_slowly)
    monkeypatch.setattr(RunFolder, "write_progress", lambda self, p: (written.append(p), write(self, p)))
    monkeypatch.setenv("BGZIP_JOB_PROGRESS_SECONDS", "0.01")
    assert job(capsys, "compress", "--run-folder", run, "--shard", "0")[0] == 0

    total = sum(p.stat().st_size for p in (root / "p").glob("*.json"))
    assert len(written) >= 3, "records while the step worked"
    assert all((r.step, r.shard, r.total_files, r.total_bytes) == ("compress", 0, 30, total) for r in written)
    assert [r.files for r in written] == sorted(r.files for r in written) and written[0].files < 30
    folder = RunFolder(parse_location(run))
    assert folder.read_progress(Step.COMPRESS, 0) == written[-1]
    assert folder.read_progresses(Step.COMPRESS, {0}) == {0: written[-1]}
    assert folder.read_progresses(Step.COMPRESS, set()) == {}, "a shard with its manifest is counted from it"

    monkeypatch.setenv("BGZIP_JOB_PROGRESS_SECONDS", "soon")
    rc, _, err = job(capsys, "verify", "--run-folder", run)
    assert rc == 2 and "BGZIP_JOB_PROGRESS_SECONDS must be a number of seconds, not 'soon'" in err


def test_spot_check_windows_keep_the_bytes_at_their_offsets_across_chunks(monkeypatch):
    """Verify keeps X.json's bytes at the spot-check offsets as it streams by, instead of ranged reads."""
    monkeypatch.setattr(verify, "SPOT_LENGTH", 5)
    data = bytes(range(40))
    windows = verify.Windows([0, 3, 12, 38], len(data))
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]  # windows cross chunk boundaries
    assert list(windows.through(iter(chunks))) == chunks
    assert windows.kept == {o: bytearray(data[o : o + 5]) for o in (0, 3, 12, 38)}
    assert windows.spans[-1] == (38, 2), "the last window stops at the end of the file"


def test_a_gzi_that_does_not_match_is_caught(target, capsys):
    compress_and_verify(target, capsys)
    name = "T2D/part-00000.json.gz.gzi"
    data = target.read(name)
    target.write(name, data[:-16])
    rc, out, _ = job(capsys, "verify", "--run-folder", target.run_folder)
    assert rc == 1 and "T2D/part-00000.json" in out


def test_original_modified_after_verify_is_not_deleted(target, capsys):
    compress_and_verify(target, capsys)
    target.write("BMI/part-00001.json", b'{"changed": true}\n')
    write_flag(target.run_folder, "genes", target.prefix, True)
    rc, out, _ = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 1 and "BMI/part-00001.json" in out
    assert target.read("BMI/part-00001.json") == b'{"changed": true}\n'


def test_delete_refuses_without_a_matching_flag(target, capsys):
    compress_and_verify(target, capsys)
    before = target.names()
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and "no flag.json" in err
    write_flag(target.run_folder, "other-index", target.prefix, True)
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and "other-index" in err
    write_flag(target.run_folder, "genes", target.prefix, False)
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and "compressed=false" in err
    assert target.names() == before


def test_delete_by_hand_refuses_a_workflow_run_whose_refresh_or_reader_proof_did_not_pass(target, capsys):
    """A workflow run that failed at RefreshReaders or ProveReaders cannot be finished by starting its
    delete step by hand: the step reads the run's own refresh and reader-proof records."""
    from batch_job.locations import parse_location
    from batch_job.records import CanaryRecord, CanaryStatus, ReadersCheck, Refresh, RefreshMode
    from batch_job.runfolder import RunFolder

    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    before = target.names()
    run = RunFolder(parse_location(target.run_folder))
    run.write_refresh(Refresh(RefreshMode.CONFIRM, True, "test-run", task_token="t"))  # never confirmed
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and "never restarted" in err
    run.write_refresh(Refresh(RefreshMode.CONFIRM, True, "test-run", task_token="t", done_at="2026-12-01T10:00:00Z"))
    restored = ReadersCheck("test-run", checked=True, finished=None, canary=CanaryRecord(CanaryStatus.RESTORED, "now"))
    run.write_readers_check(restored)
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and "reader proof of this run did not pass (canary restored" in err
    run.write_readers_check(ReadersCheck("test-run", checked=True, unreadable="500", reverted="now", finished=None))
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and "flag set back: True" in err
    assert target.names() == before
    passed = ReadersCheck("test-run", checked=True, finished="now", canary=CanaryRecord(CanaryStatus.RELEASED, "now"))
    run.write_readers_check(passed)
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 0, err
    deleted = before - target.names()
    assert deleted and all(n.endswith(".json") for n in deleted), "the originals, and only they, were deleted"


def test_delete_refuses_files_not_verified(target, capsys):
    job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)
    job(capsys, "compress", "--run-folder", target.run_folder)
    write_flag(target.run_folder, "genes", target.prefix, True)
    before = target.names()
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and "verify has not run in" in err and "bgzip-job verify --run-folder" in err, "final, not retried"
    assert target.names() == before


def test_source_changed_after_plan_fails_that_file_only(target, capsys):
    job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)
    target.write("BMI/part-00000.json", gwas_lines(1000, seed=99))
    rc, out, _ = job(capsys, "compress", "--run-folder", target.run_folder)
    assert rc == 1 and "1 failed: " in out and "BMI/part-00000.json" in out
    assert "BMI/part-00000.json.gz" not in target.names()
    assert "T2D/part-00000.json.gz" in target.names()


def test_compress_is_idempotent(target, capsys):
    compress_and_verify(target, capsys)
    first = target.run_json("compress/shard-0.json")["files"]
    assert {r["status"] for r in first} == {"compressed"}
    assert job(capsys, "compress", "--run-folder", target.run_folder)[0] == 0
    again = target.run_json("compress/shard-0.json")["files"]
    assert {r["status"] for r in again} == {"already-done"}
    assert [r["gz_etag"] for r in again] == [r["gz_etag"] for r in first]


def test_a_gz_without_its_gzi_is_redone(target, capsys):
    """A run killed between writing the .gz and the .gzi leaves a .gz that must not count as done."""
    compress_and_verify(target, capsys)
    if target.kind == "local":
        (target.local_root / "BMI/part-00000.json.gz.gzi").unlink()
    else:
        target.s3.delete_object(Bucket=target.bucket, Key=PREFIX + "BMI/part-00000.json.gz.gzi")
    rc, _, _ = job(capsys, "verify", "--run-folder", target.run_folder)
    assert rc == 1
    assert job(capsys, "compress", "--run-folder", target.run_folder)[0] == 0
    statuses = {r["key"].removeprefix(PREFIX): r["status"] for r in target.run_json("compress/shard-0.json")["files"]}
    assert statuses["BMI/part-00000.json"] == "compressed"
    assert list(statuses.values()).count("already-done") == 4
    assert job(capsys, "verify", "--run-folder", target.run_folder)[0] == 0


def test_stale_output_from_another_source_version_is_replaced(target, capsys):
    target.write("BMI/part-00001.json.gz", b"left over from an old tool")
    target.write("BMI/part-00001.json.gz.gzi", b"\0" * 8)
    compress_and_verify(target, capsys)


@pytest.mark.slow  # waits out a lock's lease
def test_rollback_keeps_existing_originals_and_checks_them(target, capsys, monkeypatch):
    """Rolling back a run whose originals were never deleted: they are verified, not overwritten."""
    monkeypatch.setenv(LEASE_ENV, "4")  # `unlock --force` below waits out the compress run's lease
    compress_and_verify(target, capsys)
    target.write("BMI/part-00001.json", b'{"not": "the same"}\n')
    rollback = target.run_folder.rstrip("/") + "-rb/"
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", rollback, "--rollback")
    assert rc == 2 and "is locked by the run by hand" in err and "compress of index 'genes'" in err
    rc, out, _ = job(capsys, "unlock", "--force", target.uri)  # the operator abandons the unfinished compress run
    assert rc == 0 and "removed the lock" in out
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", rollback, "--rollback")[0] == 0
    assert job(capsys, "decompress", "--run-folder", rollback)[0] == 0
    rc, out, _ = job(capsys, "verify", "--run-folder", rollback)
    assert rc == 1 and "BMI/part-00001.json" in out
    write_flag(rollback, "genes", target.prefix, False)
    assert job(capsys, "remove-compressed", "--run-folder", rollback)[0] == 1
    assert "BMI/part-00001.json.gz" in target.names()
    assert "T2D/part-00000.json.gz" not in target.names()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "s3://bucket/no-slash", "--index", "g", "--run-folder", "/tmp/x"], "must end with '/'"),
        (["plan", "s3://bucket/a/../b/", "--index", "g", "--run-folder", "/tmp/x"], "'..'"),
        (["plan", "s3://Bad_Bucket/a/", "--index", "g", "--run-folder", "/tmp/x"], "bucket name"),
        (["plan", "s3://bucket/", "--index", "g", "--run-folder", "/tmp/x"], "empty"),
        (["plan", "/nonexistent/folder", "--index", "g", "--run-folder", "/tmp/x"], "not an existing folder"),
        (["compress", "--run-folder", "/nonexistent/run"], "not an existing folder"),
        (["compress", "--run-folder", "s3://bucket/runs//x/"], "empty"),
        (["plan", "s3://bucket/v2/a/", "--index", "g", "--run-folder", "/tmp/x", "--prefix", "a"], "must end with '/'"),
    ],
)
def test_bad_input_is_a_one_line_error(capsys, args, message):
    rc, _, err = job(capsys, *args)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_plan_refusals(target, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    rc, _, err = job(capsys, "plan", str(empty), "--index", "g", "--run-folder", str(tmp_path / "r1"))
    assert rc == 2 and "nothing to do" in err
    assert job(capsys, "compress", "--run-folder", str(tmp_path / "r1"))[0] == 2, "no plan, nothing runs"
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder)[0] == 0
    rc, _, err = job(capsys, "plan", target.uri, "--index", "other", "--run-folder", target.run_folder)
    assert rc == 2 and "already holds" in err
    rc, _, err = job(capsys, "decompress", "--run-folder", target.run_folder)
    assert rc == 2 and "compress plan" in err
    inside = target.uri.rstrip("/") + "/runs/" if target.kind == "s3" else str(target.local_root / "runs")
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", inside)
    assert rc == 2 and "inside the target" in err


def test_plan_records_the_bioindex_prefix_of_a_subdir(target, capsys):
    """Under BIOINDEX_S3_SUBDIR the bioindex's prefix is not the key prefix: the plan keeps both."""
    assert (
        job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder, "--prefix", "genes/")[0]
        == 0
    )
    plan = target.run_json("plan.json")
    expected = target.uri if target.kind == "s3" else str(Path(target.uri).resolve()) + "/"
    assert (plan["prefix"], plan["target"]) == ("genes/", expected)


def test_rollback_plan_refuses_gz_without_gzi(target, capsys):
    target.write("T2D/extra.json.gz", b"x")
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder, "--rollback")
    assert rc == 2 and "no .gzi" in err


def test_unreadable_source_is_a_named_failure(tmp_path, capsys):
    data = tmp_path / "data"
    make_sample_index(data)
    run = str(tmp_path / "run")
    job(capsys, "plan", str(data), "--index", "g", "--run-folder", run)
    shutil.rmtree(data / "LDL")
    rc, out, _ = job(capsys, "compress", "--run-folder", run)
    assert rc == 1 and "LDL/with space ü/part-00000.json" in out


def test_s3_multipart_upload_and_crash_leftovers(s3, bucket, run_bucket, capsys, monkeypatch, tmp_path):
    """Outputs over one part go up as streaming multipart; a killed attempt's upload is aborted."""

    monkeypatch.setattr(stores, "PART_SIZE", 5 * 1024 * 1024)
    big = gwas_lines(70 * 1024 * 1024, seed=11)
    s3.put_object(Bucket=bucket, Key="big/part-0.json", Body=big)
    stale = s3.create_multipart_upload(Bucket=bucket, Key="big/part-0.json.gz")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="big/part-0.json.gz", UploadId=stale, PartNumber=1, Body=b"x" * 100)
    run = f"s3://{run_bucket}/runs/big/"
    assert job(capsys, "plan", f"s3://{bucket}/big/", "--index", "big", "--run-folder", run)[0] == 0
    assert job(capsys, "compress", "--run-folder", run)[0] == 0
    head = s3.head_object(Bucket=bucket, Key="big/part-0.json.gz")
    assert "-" in head["ETag"], "written as a multipart upload"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert job(capsys, "verify", "--run-folder", run)[0] == 0


def test_failed_upload_is_aborted_and_leaves_no_object(s3, bucket, monkeypatch):

    monkeypatch.setattr(stores, "PART_SIZE", 5 * 1024 * 1024)
    store = S3Store(bucket)

    def chunks():
        yield b"x" * (6 * 1024 * 1024)
        raise OSError("killed mid-upload")

    with pytest.raises(OSError):
        store.write("a/x.json.gz", chunks(), {})
    assert store.head("a/x.json.gz") is None
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_edge_sizes_end_to_end(target, capsys, tmp_path):
    """An empty file, exactly one block and one block + 1 byte: compressed, verified, deleted, restored."""
    block = 65280
    edge = {"edge/empty.json": b"", "edge/one-block.json": gwas_lines(2 * block)[:block]}
    edge["edge/one-block-plus-one.json"] = gwas_lines(2 * block, seed=5)[: block + 1]
    for name, data in edge.items():
        if target.kind == "local":
            (target.local_root / name).parent.mkdir(exist_ok=True)
        target.write(name, data)
    compress_and_verify(target, capsys)
    for name, data in edge.items():
        (tmp_path / "x.gz").write_bytes(target.read(name + ".gz"))
        subprocess.run(["bgzip", "-t", str(tmp_path / "x.gz")], check=True)
        assert subprocess.run(["bgzip", "-dc", str(tmp_path / "x.gz")], capture_output=True).stdout == data
    write_flag(target.run_folder, "genes", target.prefix, True)
    assert job(capsys, "delete", "--run-folder", target.run_folder)[0] == 0
    rollback = target.run_folder.rstrip("/") + "-rb/"
    assert job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", rollback, "--rollback")[0] == 0
    assert job(capsys, "decompress", "--run-folder", rollback)[0] == 0
    assert job(capsys, "verify", "--run-folder", rollback)[0] == 0
    assert {name: target.read(name) for name in edge} == edge


def test_s3_reads_large_objects_as_parallel_ranges_of_one_version(s3, bucket, monkeypatch):

    monkeypatch.setattr(stores, "RANGE_SIZE", 1024 * 1024)
    data = gwas_lines(5 * 1024 * 1024 + 123, seed=4)
    s3.put_object(Bucket=bucket, Key="r/big.json", Body=data)
    s3.put_object(Bucket=bucket, Key="r/empty.json", Body=b"")
    store = S3Store(bucket)
    info = store.head("r/big.json")
    with store.open("r/big.json", info.etag) as stream:
        assert isinstance(stream, stores._RangedReader)
        parts = []
        while chunk := stream.read(777_777):
            parts.append(chunk)
    assert b"".join(parts) == data
    with store.open("r/empty.json", store.head("r/empty.json").etag) as stream:
        assert stream.read() == b""
    with pytest.raises(stores.ObjectChanged), store.open("r/big.json", info.etag) as stream:
        stream.read(10)
        s3.put_object(Bucket=bucket, Key="r/big.json", Body=data + b"x")
        while stream.read(1 << 20):
            pass


def test_a_local_write_returns_what_a_head_of_it_returns(tmp_path):
    """LocalStore.write answers from the file it wrote, without reading it back: the same ETag, size
    and metadata a later head gives, in a folder it had to make."""
    store = stores.LocalStore(tmp_path)
    written = store.write("new/folder/x.json.gz", [b"abc", b"def"], {"source-etag": "e1", "source-size": "6"})
    head = store.head("new/folder/x.json.gz")
    assert (written.key, written.size, written.etag, written.metadata) == (head.key, 6, head.etag, head.metadata)
    assert head.metadata == {"source-etag": "e1", "source-size": "6"}


def test_read_object_gives_the_version_it_read_and_at_most_its_limit(target):
    """One read (one GET on S3) gives a small object's bytes and what a head of that version says;
    a larger object only its first `limit` bytes, its size saying there is more; no object, None."""
    location = parse_location(target.uri)
    store, key = location.store, location.key("T2D/part-00000.json")
    whole = target.read("T2D/part-00000.json")
    info, data = store.read_object(key, len(whole) + 10)
    head = store.head(key)
    assert data == whole and (info.size, info.etag, info.metadata) == (head.size, head.etag, head.metadata)
    info, data = store.read_object(key, 100)
    assert data == whole[:100] and info.size == len(whole)
    assert store.read_object(location.key("none.json"), 100) is None
    target.write("empty.json", b"")
    info, data = store.read_object(location.key("empty.json"), 100)
    assert (info.size, data) == (0, b"")


def test_deletes_are_conditional_on_the_etag(tmp_path):
    """The last guard: a file changed between the checks and the delete call is not deleted."""
    import os

    from batch_job.stores import LocalStore

    store = LocalStore(tmp_path)
    (tmp_path / "a.json").write_text("a\n")
    (tmp_path / "b.json").write_text("b\n")
    a, b = store.head("a.json"), store.head("b.json")
    os.utime(tmp_path / "b.json", ns=(1, 1))  # b changes after it was checked
    with pytest.raises(StoreError, match=r"b\.json"):
        store.delete([("a.json", a.etag), ("b.json", b.etag), ("gone.json", "x")])
    assert not (tmp_path / "a.json").exists() and (tmp_path / "b.json").exists()


def test_s3_deletes_are_conditional_on_the_etag(s3, bucket):
    """Through the S3 API (the offline stack honours DeleteObjects' per-object ETag as S3 does):
    an object changed after its check is kept, and the call names it."""
    store = S3Store(bucket)
    for name in ("a.json", "b.json"):
        s3.put_object(Bucket=bucket, Key=name, Body=name.encode())
    a, b = store.head("a.json"), store.head("b.json")
    s3.put_object(Bucket=bucket, Key="b.json", Body=b"changed after the check")
    with pytest.raises(StoreError, match=r"b\.json \(PreconditionFailed\)"):
        store.delete([("a.json", a.etag), ("b.json", b.etag), ("gone.json", "0" * 32)])
    assert store.head("a.json") is None
    assert s3.get_object(Bucket=bucket, Key="b.json")["Body"].read() == b"changed after the check"


def test_a_delete_the_bucket_policy_refuses_is_final_and_recorded(tmp_path, request, capsys):
    """S3 checks DeleteObjects key by key: a key a bucket policy protects comes back AccessDenied
    inside a successful response. The step exits 2 (Batch does not retry it; retrying cannot help),
    says access was denied, and its manifest says which files are not deleted."""
    target = Target("s3", tmp_path, request)
    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    protected = f"{PREFIX}BMI/part-00001.json"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeepThisOne",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteObject",
                "Resource": f"arn:aws:s3:::{target.bucket}/{protected}",
            }
        ],
    }
    target.s3.put_bucket_policy(Bucket=target.bucket, Policy=json.dumps(policy))
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2, err
    assert "access denied" in err and f"{protected} (AccessDenied)" in err and "not retried" in err
    assert protected.removeprefix(PREFIX) in target.names()
    manifest = target.run_json("delete/shard-0.json")
    kept = [r for r in manifest["files"] if not r["ok"]]
    assert [r["key"] for r in kept] == [protected] and kept[0]["error"] == f"not deleted: {protected} (AccessDenied)"
    gone = [r for r in manifest["files"] if r["ok"]]
    assert len(gone) == 4 and all(r["status"] == "deleted" for r in gone), "each key's own outcome"
    assert not any(r["key"].removeprefix(PREFIX) in target.names() for r in gone)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.BGZFError("corrupt deflate data"), 1),
        (errors.FilesFailed("verify: 1 failed", ["a.json"]), 1),
        (errors.BadInput("bad prefix"), 2),
        (errors.Refused("no flag.json"), 2),
        (errors.ObjectChanged("a.json changed"), 2),
        (errors.StoreError("connection reset"), 3),
    ],
)
def test_each_engine_error_exits_with_its_own_status(tmp_path, monkeypatch, capsys, error, code):
    """cli.main maps every engine error by its class, so a BGZF error escaping a step says a file
    failed (1, retried), not that nothing was done (2, final)."""

    def raising(args):
        raise error

    monkeypatch.setattr(cli, "cmd_verify", raising)
    assert cli.main(["verify", "--run-folder", str(tmp_path)]) == code
    body = json.loads((tmp_path / "verify" / "shard-all.error.json").read_text())
    assert body["exit"] == code and str(error) in body["message"]


def test_part_sizes_stay_within_s3s_multipart_limits():
    """Small objects use PART_SIZE; any object S3 can hold fits in its part count with room to spare."""
    assert stores.part_size_for(0) == stores.PART_SIZE >= stores.S3_MIN_PART_SIZE
    for size in (10 * stores.GiB, 200 * stores.GiB, 5 * 1024 * stores.GiB):
        part = stores.part_size_for(size)
        assert stores.S3_MIN_PART_SIZE <= part <= stores.S3_MAX_PART_SIZE
        assert -(-size // part) <= stores.S3_MAX_PARTS - stores.PARTS_SPARE
    with pytest.raises(errors.StoreError, match="S3's limit"):
        stores.part_size_for(100 * 1024 * stores.GiB)


def test_access_denied_is_final_at_once_not_retried(tmp_path, monkeypatch, capsys, caplog):
    """A role that may not write the outputs: the step stops with exit 2 (Batch does not retry it) at
    the first refusal, without per-file retries, and says access was denied. moto's mock enforces IAM."""
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def user(iam, name: str, actions: list[str]) -> dict[str, str]:
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    @set_initial_no_auth_action_count(6)  # the IAM calls that create the two users
    @mock_aws
    def scenario() -> None:
        import boto3

        iam = boto3.client("iam")
        admin = user(iam, "admin", ["s3:*"])
        reader = user(iam, "reader", ["s3:ListBucket", "s3:GetObject"])
        for name, value in admin.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.session.Session().client("s3")  # a new session reads the admin's keys
        s3.create_bucket(Bucket="data")
        for name in ("a", "b"):
            s3.put_object(Bucket="data", Key=f"genes/{name}.json", Body=gwas_lines(50_000, seed=ord(name)))
        run = str(tmp_path / "run")
        assert cli.main(["plan", "s3://data/genes/", "--index", "genes", "--run-folder", run]) == 0
        for name, value in reader.items():
            monkeypatch.setenv(name, value)
        assert cli.main(["compress", "--run-folder", run]) == 2
        _, err = capsys.readouterr()
        assert "access denied" in err and "AccessDenied" in err
        assert "retrying" not in caplog.text, "a refusal is not transient"
        record = json.loads((tmp_path / "run" / "compress" / "shard-all.error.json").read_text())
        assert record["exit"] == 2

    scenario()


def test_version_and_help_with_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and re.fullmatch(
        r"bgzip-job \S+ \((system libdeflate|deflate wheel)\)\n", capsys.readouterr().out
    )
    with pytest.raises(SystemExit):
        cli.main(["compress", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "files worked on at once (on S3, files under 1 MiB: at least 16) (default: 2)" in text
    assert "(default: None)" not in text
    with pytest.raises(SystemExit):
        cli.main(["delete", "--help"])
    text = capsys.readouterr().out
    assert "--threads" not in text, "deletion runs no codec: no option that does nothing"
    assert "(default: 16)" in text


@pytest.mark.parametrize(("text", "size"), [("20GiB", 20 * 1024**3), ("500 MB", 500 * 10**6), ("1.5TiB", 3 * 2**39)])
def test_shard_bytes_takes_units(tmp_path, capsys, text, size):
    from batch_job import sizes

    assert sizes.parse_bytes(text) == size
    target = tmp_path / "genes"
    target.mkdir()
    (target / "a.json").write_bytes(gwas_lines(10_000))
    assert (
        cli.main(
            ["plan", str(target), "--index", "genes", "--run-folder", str(tmp_path / "run"), "--shard-bytes", text]
        )
        == 0
    )
    with pytest.raises(SystemExit) as refused:
        cli.main(
            ["plan", str(target), "--index", "genes", "--run-folder", str(tmp_path / "r2"), "--shard-bytes", "20XB"]
        )
    assert refused.value.code == 2 and "'20XB' is not a size" in capsys.readouterr().err


def test_a_corrupted_gz_is_named_as_the_problem_not_its_original(tmp_path, capsys, caplog):
    target = tmp_path / "genes"
    target.mkdir()
    (target / "a.json").write_bytes(gwas_lines(200_000))
    run = str(tmp_path / "run")
    assert cli.main(["plan", str(target), "--index", "genes", "--run-folder", run]) == 0
    assert cli.main(["compress", "--run-folder", run]) == 0
    gz = target / "a.json.gz"
    corrupt = bytearray(gz.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0x55
    gz.write_bytes(bytes(corrupt))
    assert cli.main(["verify", "--run-folder", run]) == 1
    assert "a.json.gz changed after its .gzi was written (modified or corrupted)" in caplog.text
    assert "not made from the current a.json" not in caplog.text
    assert cli.main(["compress", "--run-folder", run]) == 0 and cli.main(["verify", "--run-folder", run]) == 0, (
        "compress rewrites it"
    )


def test_an_interrupt_waits_for_a_shards_deletions_and_their_record():
    """Ctrl-C or SIGTERM while a shard's deletions are made and recorded: they finish, then it stops."""
    from batch_job import cancel

    cancel.STOP.clear()
    finished = []
    with pytest.raises(KeyboardInterrupt), cancel.uninterrupted():
        assert not cancel.interrupt_now()
        cancel.STOP.set()  # what the signal handler does, without raising, here
        finished.append("manifest written")
    assert finished == ["manifest written"] and cancel.interrupt_now()
    cancel.STOP.clear()


def test_the_reader_check_record_keeps_its_json_form():
    from batch_job.records import CanaryObject, CanaryRecord, CanaryStatus, ReadersCheck

    check = ReadersCheck("x", canary=CanaryRecord(CanaryStatus.DELETED, "t", [CanaryObject("k", "e", 3, "a", "f")]))
    body = json.loads(check.to_json())
    assert body["canary"] == {
        "status": "deleted",
        "at": "t",
        "objects": [{"key": "k", "etag": "e", "size": 3, "aside": "a", "aside_etag": "f"}],
    }
    assert ReadersCheck.from_json(check.to_json()) == check
    reverted = ReadersCheck("x", old_answers_back_at="t")
    older = {k: v for k, v in json.loads(reverted.to_json()).items() if k != "old_answers_back_at"}
    assert ReadersCheck.from_json(json.dumps(older | {"old_answers_back": "t"}).encode()) == reverted, (
        "readers-check.json of a run of the release before: the time was `old_answers_back`"
    )


def test_the_originals_etag_has_one_name_and_older_compress_manifests_still_read():
    from batch_job.records import FileRecord

    written = FileRecord("a.json", True, original_etag="e", original_size=3).to_dict()
    assert written == {"key": "a.json", "ok": True, "original_etag": "e", "original_size": 3}
    older = {"key": "a.json", "ok": True, "source_etag": "e", "source_size": 3, "gz_etag": "g"}
    assert FileRecord.from_dict(older) == FileRecord("a.json", True, original_etag="e", original_size=3, gz_etag="g")


def test_refresh_json_says_when_the_refresh_was_done_as_done_at_and_an_older_runs_done_still_reads():
    """`done` is RefreshProgress's yes/no; the time in refresh.json is `done_at`. A run started by the
    release before wrote that time as `done`: a delete step reaching it still sees the refresh done."""
    from batch_job.records import Refresh, RefreshMode

    refresh = Refresh(RefreshMode.CONFIRM, True, "test-run", started="s", task_token="t", done_at="d")
    assert json.loads(refresh.to_json())["done_at"] == "d"
    older = {k: v for k, v in json.loads(refresh.to_json()).items() if k != "done_at"} | {"done": "d"}
    assert Refresh.from_json(json.dumps(older).encode()) == refresh


def test_flag_json_says_when_the_flag_was_read_back_and_an_older_receipts_confirmed_at_still_reads():
    """A receipt outlives releases: one written by the release before says `confirmed_at`, and a
    later run relying on it (or a delete step of a run started before) reads it as `read_back_at`."""
    from batch_job.records import Flag

    flag = Flag("genes", "genes/", True, "https://bioindex.test", execution="e", read_back_at="t")
    assert json.loads(flag.to_json())["read_back_at"] == "t"
    older = {k: v for k, v in json.loads(flag.to_json()).items() if k != "read_back_at"} | {"confirmed_at": "t"}
    assert Flag.from_json(json.dumps(older).encode()) == flag


def test_the_baseline_is_written_as_baseline_json_and_an_older_runs_readers_json_still_reads(tmp_path):
    """A run planned by the release before wrote readers.json with its answers under `samples` and the
    canary's key under `canary`: a ProveReaders or delete step of the new release, reaching that run,
    reads it as the baseline."""
    from batch_job.records import Answer, Baseline
    from batch_job.runfolder import RunFolder

    (tmp_path / "new").mkdir()
    (tmp_path / "older").mkdir()
    run = RunFolder(parse_location(str(tmp_path / "new")))
    baseline = Baseline("genes", 1, "genes/a.json", [Answer(["SLC30A8"], 3, "ab")], True, captured_at="t")
    run.write_baseline(baseline)
    assert json.loads((tmp_path / "new" / "baseline.json").read_text())["answers"][0]["q"] == ["SLC30A8"]
    assert run.read_baseline() == baseline

    older = RunFolder(parse_location(str(tmp_path / "older")))
    body = {**json.loads(baseline.to_json()), "samples": [{"q": ["SLC30A8"], "count": 3, "sha256": "ab"}]}
    body["canary"] = body.pop("canary_key")
    del body["answers"]
    (tmp_path / "older" / "readers.json").write_text(json.dumps(body))
    assert older.read_baseline() == baseline
    (tmp_path / "older" / "readers.json").write_text(json.dumps({**body, "samples": None}))
    with pytest.raises(errors.BadInput, match=r"readers\.json is malformed"):
        older.read_baseline()


def test_an_sdk_without_conditional_requests_is_refused_before_any_call():
    """The Lambdas use the runtime's botocore: one older than 1.36 would send deletes and lock writes
    without their conditions (or fail on them); refused with the reason, exit 2."""
    stores.check_botocore("1.36.0")
    stores.check_botocore("1.44.8")
    with pytest.raises(errors.Refused, match=r"botocore 1\.35\.99 is older than 1\.36") as refused:
        stores.check_botocore("1.35.99")
    assert refused.value.exit_code == 2


def test_a_bucket_that_does_not_exist_is_final_and_named(s3, run_bucket, capsys):
    """A typo in the bucket is not a storage hiccup: exit 2 (Batch does not retry), naming the bucket."""
    rc, _, err = job(
        capsys, "plan", "s3://no-such-bucket-here/genes/", "--index", "genes", "--run-folder", f"s3://{run_bucket}/r/"
    )
    assert rc == 2 and "bucket 'no-such-bucket-here' does not exist" in err, err


def test_bad_array_index_and_flag_values_are_one_line_refusals(tmp_path, capsys, monkeypatch):
    target = Target("local", tmp_path, None)
    compress_and_verify(target, capsys)
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "abc")
    rc, _, err = job(capsys, "verify", "--run-folder", target.run_folder)
    assert rc == 2 and "AWS_BATCH_JOB_ARRAY_INDEX is 'abc', not a shard number" in err and "Traceback" not in err
    monkeypatch.delenv("AWS_BATCH_JOB_ARRAY_INDEX")
    flag = {"index": "genes", "prefix": target.prefix, "compressed": "true", "bioindex_url": ""}
    (Path(target.run_folder) / "flag.json").write_text(json.dumps(flag))
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and "flag.json is malformed: compressed must be true or false, found 'true'" in err, err
    (Path(target.run_folder) / "flag.json").write_text("[]")
    rc, _, err = job(capsys, "delete", "--run-folder", target.run_folder)
    assert rc == 2 and err.count("is malformed") == 1, err
    assert len(target.originals()) == 5, "nothing deleted"
    plan = json.loads((Path(target.run_folder) / "plan.json").read_text())
    (Path(target.run_folder) / "plan.json").write_text(json.dumps(plan | {"shards": 0}))
    for step in ("verify", "delete"):
        rc, _, err = job(capsys, step, "--run-folder", target.run_folder)
        assert rc == 2 and "plan.json is malformed: shards must be a number of at least 1, found 0" in err, err


def test_plan_says_which_way_a_prefix_converts_and_that_a_uri_is_not_a_prefix(tmp_path, capsys):
    from batch_job.locations import check_prefix

    target = Target("local", tmp_path, None)
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", target.run_folder, "--rollback")
    assert rc == 2 and "no *.json.gz with a .gzi" in err and "it is not compressed (its *.json are there)" in err
    compress_and_verify(target, capsys)
    write_flag(target.run_folder, "genes", target.prefix, True)
    assert job(capsys, "delete", "--run-folder", target.run_folder)[0] == 0
    rc, _, err = job(capsys, "plan", target.uri, "--index", "genes", "--run-folder", str(tmp_path / "again"))
    assert rc == 2 and "it is compressed already" in err and "a rollback converts it back" in err, err
    with pytest.raises(errors.BadInput, match=r"'s3://b/genes/' is a URI: give the prefix as the bioindex has it"):
        check_prefix("s3://b/genes/")
