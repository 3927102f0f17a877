"""Benchmark bgzip-job against htslib's bgzip on the same GWAS-like file, in the same run.

    python bench/run.py [--size-mb 2000] [--threads 2] [--repeat 3]

Prints MB/s of our compress, verify and decompress next to `bgzip -i -@T` and `bgzip -d -@T` (and
verify next to the same check done by hand with htslib and coreutils), the ratios, output sizes and
each of our steps' peak RSS. Not part of the test suite: timings belong here.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from offline.sample_index import write_gwas_file  # noqa: E402

BGZIP = shutil.which("bgzip")
MB = 1_000_000


def timed(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, int]:
    """Run cmd; return (seconds, peak RSS in MB) of that process alone (wait4 rusage)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(cmd)}")
    return seconds, usage.ru_maxrss // 1024


def paired(repeat: int, theirs, ours) -> tuple[tuple[float, int], tuple[float, int]]:
    """Alternate htslib's and our run `repeat` times so both meet the same disk and page-cache state;
    keep each side's fastest time (single runs are noisy) and largest peak RSS."""
    runs: dict[str, list[tuple[float, int]]] = {"theirs": [], "ours": []}
    for _ in range(repeat):
        runs["theirs"].append(theirs())
        runs["ours"].append(ours())
    return tuple((min(s for s, _ in r), max(m for _, m in r)) for r in (runs["theirs"], runs["ours"]))


def job(*args: str) -> list[str]:
    return [sys.executable, "-m", "batch_job", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2000, help="input size (default 2000 MB)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "out"))
    parser.add_argument(
        "--restore-dir",
        default="/dev/shm/bgzip-bench" if Path("/dev/shm").is_dir() else None,
        help="where both restores write (default: tmpfs, so the disk's noise does not decide the ratio)",
    )
    args = parser.parse_args()
    if BGZIP is None:
        raise SystemExit("bench needs htslib's bgzip: apt-get install tabix")
    t = str(args.threads)
    work = Path(args.workdir)
    data = work / "data"
    src = data / "gwas.json"
    if not src.exists() or abs(src.stat().st_size - args.size_mb * MB) > MB:
        shutil.rmtree(work, ignore_errors=True)
        data.mkdir(parents=True)
        print(f"writing {args.size_mb} MB of GWAS-like JSON lines to {src} ...", flush=True)
        with src.open("wb") as out:
            write_gwas_file(out, args.size_mb * MB, seed=1)
    for stale in [*data.glob("*.gz*"), work / "ref.gz", work / "ref.gz.gzi"]:
        stale.unlink(missing_ok=True)
    for folder in ("run", "rollback", "restore", "restore-run"):
        shutil.rmtree(work / folder, ignore_errors=True)
    size = src.stat().st_size

    n = args.repeat
    scratch = Path(args.restore_dir) if args.restore_dir else work
    shutil.rmtree(scratch / "restore", ignore_errors=True)
    ref, restored = work / "ref.gz", scratch / "ref.json"
    run, rrun = str(work / "run"), str(work / "restore-run")
    ours, restore = data / "gwas.json.gz", scratch / "restore"
    subprocess.run(job("plan", str(data), "--index", "bench", "--run-folder", run), check=True, capture_output=True)

    def hts_compress() -> tuple[float, int]:
        # Our compress fsyncs both outputs before they count as written; make htslib's durable too.
        gzi = work / "ref.gz.gzi"
        return timed(["sh", "-c", f'"{BGZIP}" -i -I "{gzi}" -@ {t} -c "{src}" > "{ref}" && sync "{ref}" "{gzi}"'])

    def our_compress() -> tuple[float, int]:
        for output in data.glob("*.gz*"):
            output.unlink()
        return timed(job("compress", "--run-folder", run, "--threads", t))

    def our_decompress() -> tuple[float, int]:
        (restore / "gwas.json").unlink(missing_ok=True)
        return timed(job("decompress", "--run-folder", rrun, "--threads", t))

    # The same check by hand: htslib's output compared with X.json while sha256sum hashes X.json.
    check = f'"{BGZIP}" -d -@ {t} -c "{ref}" | cmp -s - "{src}" & sha256sum "{src}" >/dev/null; wait $!'
    hts_check = ["sh", "-c", check]
    # Our restore fsyncs the file before it counts as written; make htslib's durable too.
    hts_restore = ["sh", "-c", f'"{BGZIP}" -d -@ {t} -c "{ref}" > "{restored}" && sync "{restored}"']
    (hts_c, _), (our_c, rss_c) = paired(n, hts_compress, our_compress)
    # Compared in chunks: a parent holding big buffers would inflate the forked children's peak RSS.
    identical = filecmp.cmp(ours, ref, shallow=False)
    (hts_d, _), (our_v, rss_v) = paired(
        n, lambda: timed([BGZIP, "-d", "-@", t, "-c", str(ref)]), lambda: timed(job("verify", "--run-folder", run))
    )
    hts_v = min(timed(hts_check)[0] for _ in range(n))
    restore.mkdir(parents=True)
    shutil.copy(ours, restore / "gwas.json.gz")
    shutil.copy(data / "gwas.json.gz.gzi", restore / "gwas.json.gz.gzi")
    subprocess.run(
        job("plan", str(restore), "--index", "b", "--run-folder", rrun, "--rollback"), check=True, capture_output=True
    )
    (hts_d_file, _), (our_d, rss_d) = paired(n, lambda: timed(hts_restore), our_decompress)
    restored.unlink()
    restored_ok = (restore / "gwas.json").stat().st_size == size
    shutil.rmtree(restore)

    def rate(seconds: float) -> float:
        return size / MB / seconds

    rows = [
        ("compress", rate(our_c), f"bgzip -i -@{t}", rate(hts_c), rss_c),
        ("verify", rate(our_v), f"bgzip -d -@{t}", rate(hts_d), rss_v),
        ("verify", rate(our_v), "-d|cmp,sha256sum", rate(hts_v), rss_v),
        ("decompress", rate(our_d), f"-d -@{t} >f;sync", rate(hts_d_file), rss_d),
    ]
    print(
        f"\ninput: {size / MB:.0f} MB GWAS-like JSON lines, {args.threads} threads, {os.cpu_count()} cores, "
        f"fastest of {n} alternating runs each"
    )
    print(
        "compress is compared with bgzip -i writing, then syncing, its outputs; verify with bgzip -d to /dev/null, "
        "and with the same check by hand (bgzip -d | cmp - X.json, sha256sum X.json beside it); decompress with "
        f"bgzip -d writing the file, then sync, both writing to {scratch}."
    )
    print(f"{'step':<11} {'ours MB/s':>10} {'htslib':>17} {'MB/s':>8} {'ratio':>6} {'peak RSS':>9}")
    for step, mine, name, theirs, rss in rows:
        print(f"{step:<11} {mine:>10.0f} {name:>17} {theirs:>8.0f} {mine / theirs:>5.2f}x {rss:>6} MB")
    print(
        f"output: ours {ours.stat().st_size / MB:.1f} MB, htslib {ref.stat().st_size / MB:.1f} MB "
        f"({ours.stat().st_size / size:.1%} of input); byte-identical to bgzip -i: {identical}; "
        f"decompressed size matches: {restored_ok}"
    )
    return 0 if identical and restored_ok else 1


if __name__ == "__main__":
    sys.exit(main())
