"""Many small files: bgzip-job's whole run against a shell loop of htslib's bgzip over the same files.

    python bench/many_files.py [--small 10000] [--medium 1000] [--s3 [--s3-latency-ms 20]]

Bioindex prefixes are hundreds to thousands of Spark part files, so what each file costs besides its
bytes decides the run. For each set (`--small` files of 4 KiB, `--medium` files of 1 MiB) this prints:
- our compress + verify against `for f: bgzip -i -k f && bgzip -t f.gz` in the same run (ratio > 1:
  we are faster), and the same bytes as one file through our compress + verify (the per-file cost);
- each step's milliseconds per file: plan, compress, verify, delete, and the rollback's plan,
  decompress, verify, remove-compressed; and what the filesystem alone takes a file to create the
  two outputs, the part of a compress no code of ours can remove;
- with --s3, the same run through the moto server (loopback S3 with the project's hooks); with
  --s3-latency-ms, its every answer that much late, as S3's are (moto's are not).
Not part of the test suite: timings belong here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch_job.locations import parse_location  # noqa: E402
from batch_job.records import Flag  # noqa: E402
from batch_job.runfolder import RunFolder  # noqa: E402
from offline.sample_index import gwas_lines  # noqa: E402

BGZIP = shutil.which("bgzip")
KIB = 1024


def make_files(folder: Path, count: int, size: int) -> int:
    """`count` GWAS-like files of about `size` bytes each, in folders of 1,000 as Spark writes them."""
    total = 0
    for i in range(count):
        path = folder / f"part-{i // 1000:03d}" / f"part-{i:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = gwas_lines(size, seed=i)
        path.write_bytes(data)
        total += len(data)
    return total


def step(env: dict, *args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "batch_job", *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"bgzip-job {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - started


def flag(run: str, index: str, prefix: str, compressed: bool) -> None:
    """What SetCompressed records; a run by hand writes it once the bioindex flag is set."""
    RunFolder(parse_location(run)).write_flag(Flag(index, prefix, compressed, "bench"))


def whole_run(env: dict, target: str, runs: Path, count: int) -> dict[str, float]:
    """Every step of a compress run and of its rollback, seconds each."""
    compress, rollback = str(runs / "compress"), str(runs / "rollback")
    times = {"plan": step(env, "plan", target, "--index", "bench", "--run-folder", compress, "--prefix", "bench/")}
    times["compress"] = step(env, "compress", "--run-folder", compress)
    times["verify"] = step(env, "verify", "--run-folder", compress)
    flag(compress, "bench", "bench/", True)
    times["delete"] = step(env, "delete", "--run-folder", compress)
    times["rollback plan"] = step(
        env, "plan", target, "--index", "bench", "--run-folder", rollback, "--prefix", "bench/", "--rollback"
    )
    times["decompress"] = step(env, "decompress", "--run-folder", rollback)
    times["verify restored"] = step(env, "verify", "--run-folder", rollback)
    flag(rollback, "bench", "bench/", False)
    times["remove-compressed"] = step(env, "remove-compressed", "--run-folder", rollback)
    return times


def shell_loop(folder: Path) -> float:
    """htslib by hand: one bgzip to compress with its index, one to test, per file."""
    script = 'find "$1" -name "*.json" | while read -r f; do bgzip -i -k -f "$f" && bgzip -t "$f.gz" || exit 1; done'
    started = time.perf_counter()
    subprocess.run(["sh", "-c", script, "sh", str(folder)], check=True)
    seconds = time.perf_counter() - started
    for output in folder.rglob("*.json.gz*"):
        output.unlink()
    return seconds


def filesystem_floor(folder: Path) -> float:
    """What the filesystem alone asks of a compress: each file's two outputs written under temporary
    names, fsynced and renamed into place (as LocalStore.write does), with no reading or compressing."""
    sources = sorted(folder.rglob("*.json"))
    started = time.perf_counter()
    for source in sources:
        for suffix, size in ((".floor-gz", source.stat().st_size // 4), (".floor-gzi", 8)):
            tmp = source.with_name(f".{source.name}{suffix}.tmp")
            with tmp.open("wb") as out:
                out.write(bytes(size))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, source.with_name(source.name + suffix))
    seconds = time.perf_counter() - started
    for output in folder.rglob("*.floor-gz*"):
        output.unlink()
    return seconds


def one_file(folder: Path, runs: Path, sources: Path, env: dict) -> float:
    """The same bytes as one file, through our compress and verify."""
    with (folder / "all.json").open("wb") as out:
        for path in sorted(sources.rglob("*.json")):
            out.write(path.read_bytes())
    run = str(runs / "one")
    step(env, "plan", str(folder), "--index", "bench", "--run-folder", run, "--prefix", "bench/")
    return step(env, "compress", "--run-folder", run) + step(env, "verify", "--run-folder", run)


def s3_target(folder: Path, bucket: str, latency: float) -> tuple[str, dict]:
    """The files in a bucket of a moto server on loopback (the project's hooks installed), which
    answers each request `latency` seconds late, as S3 answers a small request in 10-30 ms."""
    from moto.core.utils import convert_to_flask_response

    from offline.aws import OfflineAWS

    answer = getattr(convert_to_flask_response, "_answer_at_once", convert_to_flask_response.__call__)
    convert_to_flask_response._answer_at_once = answer  # set once: each set's server wraps moto's own

    def late(self, *args, **kwargs):
        time.sleep(latency)
        return answer(self, *args, **kwargs)

    convert_to_flask_response.__call__ = late
    aws = OfflineAWS().start()
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    for path in sorted(folder.rglob("*.json")):
        s3.upload_file(str(path), bucket, f"bench/{path.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/bench/", {**os.environ, **aws.env}


def bench_set(name: str, count: int, size: int, work: Path, s3: bool, latency: float) -> None:
    folder = work / name / "bench"
    shutil.rmtree(work / name, ignore_errors=True)
    folder.mkdir(parents=True)
    total = make_files(folder, count, size)
    env = dict(os.environ)
    print(f"\n{name}: {count} files of {size // KIB} KiB, {total / 1e6:.1f} MB", flush=True)
    loop = shell_loop(folder)
    floor = filesystem_floor(folder)
    runs = work / name / "runs"
    times = whole_run(env, str(folder), runs, count)
    ours = times["compress"] + times["verify"]
    (work / name / "one").mkdir()
    single = one_file(work / name / "one", runs, folder, env)
    print(f"  local compress + verify: {ours:.1f} s; bgzip -i, -t loop: {loop:.1f} s: {loop / ours:.2f}x")
    print(f"  the same bytes as one file: {single:.1f} s: {ours / single:.1f}x of it (target: within 2x)")
    print("  per file, ms: " + ", ".join(f"{k} {v * 1000 / count:.2f}" for k, v in times.items()))
    print(f"  the filesystem alone (two outputs written, fsynced, renamed): {floor * 1000 / count:.2f} ms a file")
    if s3:
        uri, s3_env = s3_target(folder, f"bench-{name}", latency)
        s3_times = whole_run(s3_env, uri, work / name / "s3-runs", count)
        s3_ours = s3_times["compress"] + s3_times["verify"]
        late = f", each request answered {latency * 1000:.0f} ms late" if latency else ""
        print(f"  moto S3{late}: compress + verify {s3_ours:.1f} s: {loop / s3_ours:.2f}x the local shell loop")
        per_file = ", ".join(f"{k} {v * 1000 / count:.2f}" for k, v in s3_times.items())
        print(f"  per file through moto, ms: {per_file}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000, help="files of 4 KiB (default 10,000)")
    parser.add_argument("--medium", type=int, default=1_000, help="files of 1 MiB (default 1,000)")
    parser.add_argument("--s3", action="store_true", help="also through a moto server on loopback")
    parser.add_argument("--s3-latency-ms", type=float, default=0, help="with --s3: the server answers this late")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    args = parser.parse_args()
    if BGZIP is None:
        raise SystemExit("bench needs htslib's bgzip: apt-get install tabix")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bgzip-many-"))
    print(f"{os.cpu_count()} cores; each of our steps runs as a process of its own, as a Batch job does")
    try:
        if args.small:
            bench_set("small", args.small, 4 * KIB, work, args.s3, args.s3_latency_ms / 1000)
        if args.medium:
            bench_set("medium", args.medium, KIB * KIB, work, args.s3, args.s3_latency_ms / 1000)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
