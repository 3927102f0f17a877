"""`bgzip-job`: the command the AWS Batch jobs run, and that works the same on a local folder.

Exit status - what AWS Batch does with it (the job definitions' retry strategy):
    0  every file done
    1  some files failed (they are named); retried, and the retry redoes only those
    2  stopped: bad input, a refused precondition, a malformed run folder, access denied; final
    3  the store or a service could not be reached; retried
  130  interrupted (Ctrl-C); the same command finishes the work
Each error of batch_job/errors.py carries its status.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from botocore.exceptions import BotoCoreError, ClientError

from batch_job import bgzf, version
from batch_job.bgzf import DEFAULT_LEVEL
from batch_job.cancel import STOP, Interrupted, interrupt_now
from batch_job.errors import EngineError, FilesFailed, LeaseExpired, StoreError
from batch_job.locations import check_prefix, parse_location
from batch_job.records import JobError, Mode, Plan, Step
from batch_job.runfolder import RunFolder
from batch_job.sizes import human_bytes, parse_bytes
from batch_job.steps.runner import Batching, default_shard, run_step
from batch_job.stores import is_denied

log = logging.getLogger("bgzip-job")


def _run_folder(uri: str, create: bool = False) -> RunFolder:
    if "://" not in uri and create:
        os.makedirs(uri, exist_ok=True)
    location = parse_location(uri)
    return RunFolder(location)


def cmd_plan(args: argparse.Namespace) -> int:
    from batch_job.steps.plan import make_plan

    plan = make_plan(
        args.target,
        args.index,
        _run_folder(args.run_folder, create=True),
        rollback=args.rollback,
        shards=args.shards,
        shard_bytes=args.shard_bytes,
        bioindex_prefix=args.prefix and check_prefix(args.prefix),
    )
    log.info(
        "plan: %s run of index %s: %d files, %s, %d shards -> %s",
        plan.mode,
        plan.index,
        len(plan.files),
        human_bytes(plan.total_bytes),
        plan.shards,
        args.run_folder,
    )
    print(plan.shards)
    return 0


def _step(args: argparse.Namespace, step: Step, mode: Mode | None, work, **kwargs) -> int:
    progress = run_step(
        _run_folder(args.run_folder),
        step,
        mode,
        default_shard(args.shard),
        work,
        threads=getattr(args, "threads", 1),  # the delete steps run no codec
        parallel_files=args.files_in_parallel,
        **kwargs,
    )
    summary = progress.summary()
    print(json.dumps(progress.record()) if args.json else summary, flush=True)
    if progress.failed:
        raise FilesFailed(summary, progress.failed)
    return 0


# Each step runs as the subcommand of its name.
STEP_COMMANDS = {step.value: step for step in Step}


def _log_stream() -> str:
    """This job's CloudWatch log stream, from the ECS task metadata (Batch on Fargate), if any."""
    base = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not base:
        return ""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}/task", timeout=2) as resp:
            task_arn = json.load(resp)["TaskARN"]
    except (OSError, ValueError, KeyError):
        return ""
    return f"bgzip-job/default/{task_arn.rsplit('/', 1)[-1]}"


def record_error(args: argparse.Namespace, code: int, message: str, failed: list[str]) -> None:
    """Leave RUN/<step>/shard-K.error.json behind a failed step, for the workflow to say why (on AWS
    a failed job's status reason is only "Essential container in task exited"); remove it after a
    success. Best effort: the exit code stands whatever happens here."""
    step = STEP_COMMANDS.get(args.command)
    if step is None:
        return
    try:
        shard = default_shard(args.shard)
        run = _run_folder(args.run_folder)
        if code == 0:
            run.clear_error(step, shard)
            return
        run.write_error(JobError(step, shard, code, message, failed, _log_stream()))
    except Exception as exc:  # the run folder itself may be what failed
        log.warning("could not record the step's outcome in %s: %s", args.run_folder, exc)


def _reach_bioindex(run: RunFolder, plan: Plan) -> None:
    """Before converting: Plan's pre-flight again, from the jobs' own network, which the delete
    step will need to re-read the flag (a run by hand outside a stack has none to reach)."""
    from batch_job.bioindex.live_flag import LiveFlag

    live = LiveFlag.from_environment(run.receipts())
    if live is not None:
        live.preflight(plan)


def cmd_compress(args: argparse.Namespace) -> int:
    from batch_job.bgzf import libdeflate_level
    from batch_job.steps.compress import compress_file

    libdeflate_level(args.level)  # refuse a bad level before touching anything
    return _step(
        args, Step.COMPRESS, Mode.COMPRESS, lambda ctx, f: compress_file(ctx, f, args.level), check=_reach_bioindex
    )


def cmd_decompress(args: argparse.Namespace) -> int:
    from batch_job.steps.decompress import decompress_file

    return _step(args, Step.DECOMPRESS, Mode.ROLLBACK, decompress_file, check=_reach_bioindex)


def cmd_verify(args: argparse.Namespace) -> int:
    from batch_job.steps.verify import fits_a_batch, verify_batch, verify_file

    # Verify serves both directions; small files go many to one htslib process.
    return _step(args, Step.VERIFY, None, verify_file, batching=Batching(fits_a_batch, verify_batch))


def _guarded_delete(args: argparse.Namespace, step: Step, mode: Mode) -> int:
    from batch_job.steps.delete import GuardedDelete, release_when_done

    guard = GuardedDelete()
    try:
        status = _step(args, step, mode, guard.check_file, finish_shard=guard.finish_shard, check=guard.check)
    except FilesFailed:
        if guard.stopped is not None:  # the flag changed: that is the reason, whatever else failed
            raise guard.stopped from None
        if guard.denied is not None:  # S3 refused a delete: final, so Batch does not retry the job
            raise guard.denied from None
        if guard.lease_expired is not None:  # retried: the retry's first lock check decides
            raise guard.lease_expired from None
        raise
    if guard.stopped is not None:
        raise guard.stopped
    run = _run_folder(args.run_folder)
    if status == 0 and release_when_done(run, run.read_plan(), step):
        log.info("%s: every file done; released the lock of the prefix", step)
    return status


def cmd_delete(args: argparse.Namespace) -> int:
    return _guarded_delete(args, Step.DELETE, Mode.COMPRESS)


def cmd_remove_compressed(args: argparse.Namespace) -> int:
    return _guarded_delete(args, Step.REMOVE_COMPRESSED, Mode.ROLLBACK)


def cmd_unlock(args: argparse.Namespace) -> int:
    from batch_job.locks import Locks

    lock = Locks(parse_location(args.target)).unlock(force=args.force)
    if lock is None:
        print(f"{args.target} was not locked")
    else:
        print(f"removed the lock of {lock.target}, held by {lock.holder()}")
    return 0


def cmd_flag(args: argparse.Namespace) -> int:
    from batch_job.bioindex.by_hand import ATTESTED, set_flag

    flag = set_flag(_run_folder(args.run_folder), args.compressed, args.attest)
    how = (
        "as you attest"
        if flag.backend == ATTESTED
        else f"through {flag.backend}, read back (was {str(flag.before).lower()}; row {flag.row})"
    )
    print(f"flag.json: index {flag.index} prefix {flag.prefix} compressed={str(flag.compressed).lower()}, {how}")
    step = "delete" if flag.compressed else "remove-compressed"
    print(f"now restart every process of the bioindex, then: bgzip-job {step} --run-folder {args.run_folder}")
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    """The Batch job of `bgz selftest`: its checks, one line each, and in SCRATCH/selftest.json for bgz."""
    from batch_job import selftest
    from batch_job.bioindex.live_flag import secrets_manager
    from batch_job.steps.selftest import round_trip

    scratch = parse_location(args.run_folder)
    checks = [
        selftest.botocore_check("job"),
        selftest.checked("job compress, verify, restore", lambda: round_trip(scratch, args.threads)),
        *selftest.configured_bioindex_checks("job", secrets_manager()),
    ]
    for check in checks:
        print(check.line())
    scratch.store.write_bytes(scratch.key(selftest.RESULT), json.dumps(selftest.to_json(checks)).encode())
    return 0 if all(c.ok for c in checks) else 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _size(text: str) -> int:
    try:
        value = parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text!r}")
    return value


class _HelpWithDefaults(argparse.HelpFormatter):
    """Shows each option's default, unless it has none or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return text + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    formatter = _HelpWithDefaults
    parser = argparse.ArgumentParser(
        prog="bgzip-job",
        description="Convert the JSON-lines files of a bioindex prefix to BGZF (.gz + .gzi) and back, safely.",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()} ({bgzf.CODEC})")
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser(
        "plan", help="list the target and write RUN/plan.json; prints the shard count", formatter_class=formatter
    )
    plan.add_argument("target", help="s3://bucket/prefix/ or a local folder")
    plan.add_argument("--index", required=True, help="bioindex index name")
    plan.add_argument(
        "--prefix", help="the index's prefix in the bioindex, if not the target's key prefix (BIOINDEX_S3_SUBDIR)"
    )
    plan.add_argument(
        "--run-folder", "--run", required=True, help="run folder: s3://bucket/runs/NAME/ or a local folder"
    )
    plan.add_argument("--rollback", action="store_true", help="plan a rollback: every X.json.gz with its .gzi")
    plan.add_argument("--shards", type=int, help="number of shards (Batch array size)")
    plan.add_argument(
        "--shard-bytes", type=_size, help="aim for this many bytes per shard, e.g. 20GiB (default: 20GiB)"
    )
    plan.set_defaults(func=cmd_plan)

    unlock = sub.add_parser(
        "unlock",
        help="remove the lock of a prefix whose holder has stopped (when you know better)",
        formatter_class=formatter,
    )
    unlock.add_argument("target", help="s3://bucket/prefix/ or a local folder")
    unlock.add_argument(
        "--force",
        action="store_true",
        help="also while the holder's lease is live or its execution runs; then wait till nothing it sent is in flight",
    )
    unlock.set_defaults(func=cmd_unlock)

    flag = sub.add_parser(
        "flag",
        help="set the bioindex flag of a run by hand after verify, as the workflow does, and write RUN/flag.json",
        formatter_class=formatter,
    )
    flag.add_argument(
        "--run-folder", "--run", required=True, help="run folder holding plan.json and the verify manifests"
    )
    which = flag.add_mutually_exclusive_group(required=True)
    which.add_argument("--compressed", action="store_true", help="a compress run: compressed=true")
    which.add_argument("--uncompressed", dest="compressed", action="store_false", help="a rollback: compressed=false")
    flag.add_argument(
        "--attest", action="store_true", help="no bioindex configured: record that you set the flag yourself"
    )
    flag.set_defaults(func=cmd_flag)

    check = sub.add_parser(
        "selftest",
        help="what `bgz selftest` runs as a Batch job: the image's codec and htslib in a scratch folder, the bioindex",
        formatter_class=formatter,
    )
    check.add_argument(
        "--run-folder", "--run", required=True, help="scratch folder: s3://RUN_BUCKET/runs/selftest-NAME/"
    )
    check.add_argument("--threads", type=_positive, default=os.cpu_count() or 1, help="codec threads")
    check.set_defaults(func=cmd_selftest)

    steps = [
        ("compress", cmd_compress, "X.json -> X.json.gz + X.json.gz.gzi, originals kept"),
        ("verify", cmd_verify, "check every pair with htslib, SHA-256, the .gzi and random access"),
        ("delete", cmd_delete, "delete verified originals; needs RUN/flag.json with compressed=true"),
        ("decompress", cmd_decompress, "rollback: restore X.json from X.json.gz"),
        ("remove-compressed", cmd_remove_compressed, "rollback: delete .gz/.gzi; needs flag.json compressed=false"),
    ]
    for name, func, text in steps:
        step = sub.add_parser(name, help=text, formatter_class=formatter)
        step.add_argument("--run-folder", "--run", required=True, help="run folder holding plan.json")
        step.add_argument("--shard", type=int, help="shard to work on (default: $AWS_BATCH_JOB_ARRAY_INDEX, else all)")
        deleting = name in ("delete", "remove-compressed")
        if not deleting:  # deletion runs no codec
            step.add_argument("--threads", type=_positive, default=os.cpu_count() or 1, help="codec threads")
        # Deletion only checks and deletes (latency-bound); the codec steps hold buffers per file.
        parallel = 16 if deleting else 2
        step.add_argument(
            "--files-in-parallel",
            type=_positive,
            default=parallel,
            help="files worked on at once (on S3, files under 1 MiB: at least 16)",
        )
        step.add_argument("--json", action="store_true", help="the summary line as a JSON record, for scripts")
        if name == "compress":
            step.add_argument("--level", type=int, default=DEFAULT_LEVEL, help="as bgzip -l: -1 (default) or 0..9")
        step.set_defaults(func=func)
    return parser


def _on_interrupt(signum: int, frame: object) -> None:
    STOP.set()  # the file workers stop at their next chunk, so the pools below wind down at once
    if interrupt_now():  # else a shard's deletions are being recorded: they finish first
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    failed: list[str] = []
    STOP.clear()
    in_main_thread = threading.current_thread() is threading.main_thread()
    # Ctrl-C, and the SIGTERM with which Batch stops a job: every worker cleans up and stops.
    previous = (
        {sig: signal.signal(sig, _on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    )
    try:
        code, message = args.func(args), ""
    except EngineError as exc:
        code, message = exc.exit_code, str(exc)
        failed = exc.failed if isinstance(exc, FilesFailed) else []
        if isinstance(exc, StoreError) and code == 3 and not isinstance(exc, LeaseExpired):
            message = f"cannot access storage: {exc}"
    except (BotoCoreError, ClientError) as exc:
        code, message = (2, f"access denied: {exc}") if is_denied(exc) else (3, f"cannot access storage: {exc}")
    except (KeyboardInterrupt, Interrupted):  # Interrupted: the workers stopped while the main thread waited
        print(f"\nbgzip-job {args.command}: interrupted; run the same command again to finish", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code >= 2:
        print(f"bgzip-job {args.command}: error: {message}", file=sys.stderr)
    record_error(args, code, message, failed)
    return code
