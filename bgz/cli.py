"""`bgz`: day-to-day operation of a deployed bgzip-workflow stack.

    bgz start    --index NAME --prefix PREFIX/ [--wait]   start a compress run
    bgz start    --all | --include A,B [--exclude C]      compress many indexes in one (bulk) execution
    bgz rollback --index NAME --prefix PREFIX/ [--wait]   start a rollback run (or --all, --include)
    bgz plan     --index NAME --prefix PREFIX/ | --all ...  dry run: pre-flight, size, time, cost; starts nothing
    bgz watch EXECUTION                                    follow a run to its end
    bgz confirm EXECUTION | --bulk NAME --restarted-at T   the bioindex was restarted: a waiting run goes on
    bgz stop EXECUTION                                     stop a run and its jobs, free its prefix
    bgz logs EXECUTION [--state S] [--follow]              the CloudWatch lines of its jobs and Lambdas
    bgz list [--index NAME]                                recent runs of both state machines
    bgz status INDEX PREFIX/                               its files, flag, last run and lock
    bgz locks                                              which runs hold which prefixes
    bgz publish-image [--tag TAG]                          build and push the job image
    bgz selftest                                           after a deploy: roles, image, bioindex, quota

Stack name and region come from --stack/--region (before or after the subcommand), else
samconfig.toml, as for `sam deploy`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from batch_job import version
from batch_job.errors import BadInput
from batch_job.locations import check_prefix
from batch_job.records import Mode, parse_time
from batch_job.sizes import human_bytes
from bgz import runs
from bgz.errors import explain
from bgz.stack import Stack
from bgz.watch import outcome, snapshot, watch, where_it_is
from workflow.boundary import RunInput
from workflow.states import EXPLAIN_FAILURE, SEQUENCE, SUMMARIZE


def _selection(args: argparse.Namespace) -> dict | None:
    """The bulk machine's selection (INDEX PREFIX/ pairs, --all, --include, --exclude), or None for one index."""
    if args.names:  # `bgz start INDEX PREFIX/`, the bioindex CLI's habit; more pairs: a bulk run of them
        if len(args.names) % 2 or args.index or args.prefix or args.all or args.include:
            raise BadInput(
                "give INDEX PREFIX/ pairs (one: that index; more: a bulk run of exactly those), or --index INDEX "
                "--prefix PREFIX/, --all or --include NAME,NAME; not both"
            )
        pairs = list(zip(args.names[::2], args.names[1::2], strict=True))
        if len(pairs) > 1:
            return _explicit(args, pairs)
        args.index, args.prefix = pairs[0]
    chosen = [
        flag for flag, given in (("--index", args.index), ("--all", args.all), ("--include", args.include)) if given
    ]
    if len(chosen) != 1:
        raise BadInput("give one of --index NAME --prefix PREFIX/, --all, or --include NAME,NAME...")
    if args.index:
        if not args.prefix:
            raise BadInput("--index needs --prefix: the index's prefix as __Indexes has it, ending in /")
        if args.exclude or args.concurrency:
            raise BadInput("--exclude and --concurrency go with --all or --include")
        return None
    if args.prefix or getattr(args, "shards", None):
        raise BadInput("--prefix and --shards go with --index: a bulk run takes each index's own prefix and size")
    selection: dict = {"all": True} if args.all else {"include": _names(args.include)}
    if args.exclude:
        selection["exclude"] = _names(args.exclude)
    return _with_run_options(args, selection)


def _with_run_options(args: argparse.Namespace, selection: dict) -> dict:
    """A bulk selection with what applies to each of its index runs: --concurrency and --level."""
    if args.concurrency:
        selection["concurrency"] = args.concurrency
    if getattr(args, "level", None) is not None:
        selection["level"] = args.level
    return selection


def _explicit(args: argparse.Namespace, pairs: list[tuple[str, str]]) -> dict:
    """A bulk run of exactly these (index, prefix) pairs: what a bioindex that cannot list its
    prefixes (FlagBackend=http) needs, and what a script that knows them may prefer."""
    if args.exclude or getattr(args, "shards", None):
        raise BadInput("--exclude and --shards do not go with INDEX PREFIX/ pairs: name only the indexes to run")
    return _with_run_options(args, {"indexes": [{"index": i, "prefix": check_prefix(p)} for i, p in pairs]})


def _print_json(record: object) -> None:
    """A --json answer: one document, times as text (boto3 gives datetimes)."""
    print(json.dumps(record, default=str, indent=1))


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _checked_before_starting(args: argparse.Namespace, stack: Stack, mode: str, selection: dict | None) -> str:
    """What `bgz plan` checks, before anything starts: one index's pre-flight, listing and lock (the
    Plan Lambda invoked with dryRun, which locks and writes nothing; the plan block printed), or a bulk
    run's selection. Returns what the run will delete, in words; raises BadInput (nothing started) on
    any refusal."""
    from bgz.dryrun import preview, select, sizing

    spent = "original .json files" if mode == "compress" else ".json.gz files and their .gzi"
    if selection is not None:
        pairs, skipped = select(stack, mode, selection)
        for line in skipped:
            print(line)
        if not pairs:
            raise BadInput(f"no index to {mode}: every one selected is skipped; nothing was started")
        print(f"bulk {mode} run of {len(pairs)} indexes: {', '.join(index for index, _ in pairs)}")
        return f"deletes the {spent} of each of these {len(pairs)} indexes, each after its files are verified"
    check_prefix(args.prefix)
    runs.check_not_busy(stack, args.index, args.prefix)
    found = preview(stack, mode, args.index, args.prefix, getattr(args, "shards", None), sizing(stack))
    print("\n".join(found.lines))
    if found.refused:
        raise BadInput(f"{args.index} {args.prefix}: refused by the pre-flight: {found.refused}; nothing was started")
    if found.locked:
        raise BadInput(f"{found.locked}; nothing was started")
    return f"deletes the {found.files} {spent} of {args.prefix} after every one is verified"


def _agreed(args: argparse.Namespace, mode: str, deletes: str) -> bool:
    """Ask before a run that ends by deleting (as `sam deploy` asks before a change set); --yes answers."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise BadInput(f"this {mode} run {deletes}: give --yes to start it where no terminal can answer")
    answer = input(f"This {mode} run {deletes}. Start it? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _start(args: argparse.Namespace, stack: Stack, mode: str) -> int:
    record: dict = {"started": False}
    if not args.json:
        return _run(args, stack, mode, record)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the plan block, the question, the progress: for people
            code = _run(args, stack, mode, record)
    except BaseException:  # a run that started is named, even when following it failed or was interrupted
        if record["started"]:
            _print_json(record)
        raise
    _print_json(record)
    return code


def _run(args: argparse.Namespace, stack: Stack, mode: str, record: dict) -> int:
    """Check, ask, start, and with --wait follow to the end; fills `record` (what --json prints) as it goes."""
    selection = _selection(args)
    deletes = _checked_before_starting(args, stack, mode, selection)
    if not _agreed(args, mode, deletes):
        print("not started")
        return 1
    if selection is not None:
        started = runs.start_bulk(stack, mode, selection)
        what = f"bulk {mode} run"
    else:
        run_input = RunInput(
            index=args.index,
            prefix=args.prefix,
            shards=getattr(args, "shards", None),
            level=getattr(args, "level", None),
        )
        started = runs.start(stack, mode, run_input)  # named <index>-<UTC time>; not while one runs on it
        what = f"{mode} run"
    arn = started["executionArn"]
    name = arn.rsplit(":", 1)[-1]
    console = runs.console_url(stack.region_name, arn)
    record.update(started=True, mode=mode, bulk=selection is not None, name=name, executionArn=arn, console=console)
    print(f"started {what} {arn}")
    print(f"console: {console}")
    if not args.wait:
        print(f"follow it with: bgz watch {name}")
        return 0
    final = watch(stack, runs.find(stack, arn), interval=args.interval)
    record["end"] = where_it_is(stack, final)
    return 0 if final["status"] == "SUCCEEDED" else 1


def cmd_start(args: argparse.Namespace, stack: Stack) -> int:
    return _start(args, stack, "compress")


def cmd_rollback(args: argparse.Namespace, stack: Stack) -> int:
    return _start(args, stack, "rollback")


def cmd_watch(args: argparse.Namespace, stack: Stack) -> int:
    description = runs.find(stack, args.execution)
    if args.json:
        _print_json(where_it_is(stack, description))
        return 0 if description["status"] in ("RUNNING", "SUCCEEDED") else 1
    if description["status"] != "RUNNING":
        print(outcome(description))
    elif args.once:
        print(snapshot(stack, description).line())
        return 0
    else:
        description = watch(stack, description, interval=args.interval)
    return 0 if description["status"] == "SUCCEEDED" else 1


def cmd_plan(args: argparse.Namespace, stack: Stack) -> int:
    from bgz.dryrun import preview, select, sizing

    mode = "rollback" if args.rollback else "compress"
    selection = _selection(args)
    size = sizing(stack)
    skipped: list[str] = []
    if selection is None:
        check_prefix(args.prefix)
        pairs = [(args.index, args.prefix)]
    else:
        pairs, skipped = select(stack, mode, selection)
    previews = [preview(stack, mode, index, prefix, getattr(args, "shards", None), size) for index, prefix in pairs]
    if args.json:
        _print_json({"indexes": [p.record(mode) for p in previews], "skipped": skipped})
        return 2 if any(p.refused for p in previews) else 0
    for line in skipped:
        print(line)
    for found in previews:
        print("\n".join(found.lines))
    if len(previews) > 1:
        before, after = sum(p.source_bytes for p in previews), sum(p.expected_bytes for p in previews)
        cost = sum(p.cost for p in previews)
        print(f"all {len(previews)} indexes: {human_bytes(before)} -> {human_bytes(after)}, about ${cost:.2f}")
    print("nothing was started, locked or written (a dry run)")
    return 2 if any(p.refused for p in previews) else 0


def _within(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`, as the state machines' input allows."""

    def number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return number


def _utc_time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UTC time like 2026-12-01T10:05:00Z") from None


def _since(text: str) -> datetime:
    """A time the operator gives: a span back from now (30s, 10m, 2h, 1d) or a UTC time."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a span like 10m, 2h, 1d nor a UTC time") from None


def cmd_confirm(args: argparse.Namespace, stack: Stack) -> int:
    from bgz.confirm import confirm, confirm_bulk

    if bool(args.execution) == bool(args.bulk):
        raise BadInput("give the waiting run's EXECUTION, or --bulk NAME for every waiting index run of a bulk run")
    if args.bulk and args.restarted_at is None:
        raise BadInput(
            "--bulk needs --restarted-at TIME (UTC, e.g. 2026-12-01T10:05:00Z): when the restart began; runs that "
            "asked later are left waiting"
        )
    if args.bulk:
        lines = confirm_bulk(stack, args.bulk, args.restarted_at)
    else:
        lines = [confirm(stack, runs.find(stack, args.execution))]
    for line in lines:
        print(line)
    return 0


def cmd_stop(args: argparse.Namespace, stack: Stack) -> int:
    from bgz.stop import stop

    done = stop(stack, runs.find(stack, args.execution), reason=f"bgz stop: {args.reason}")
    if args.json:
        _print_json(done.record())
    else:
        print("\n".join(done.lines()))
    return 0


def cmd_logs(args: argparse.Namespace, stack: Stack) -> int:
    from bgz import logs

    description = runs.find(stack, args.execution)
    only = logs.Only(args.state, args.since, args.filter)
    if args.follow:
        logs.follow(stack, description, only, args.interval, sys.stdout)
        return 0
    found = logs.lines(stack, description, only, set())
    for line in found:
        print(line)
    if not found:
        also = [f"in state {args.state}"] if args.state else []
        also += [f"since {args.since:%Y-%m-%dT%H:%M:%SZ}"] if args.since else []
        also += [f"containing {args.filter!r}"] if args.filter else []
        print(f"no log lines for {description['name']}" + "".join(f" {words}" for words in also))
        if args.state:
            rollback = description.get("stateMachineArn", "").endswith("-rollback")
            mode = Mode.ROLLBACK if rollback else Mode.COMPRESS
            names = (*SEQUENCE[mode], SUMMARIZE, EXPLAIN_FAILURE)
            if args.state not in names:
                print(f"this is a {mode} run; its states: {', '.join(names)}")
    return 0


def cmd_list(args: argparse.Namespace, stack: Stack) -> int:
    rows = runs.recent(stack, args.index, args.max)
    if args.json:
        keys = ("name", "mode", "status", "startDate", "stopDate", "index", "prefix", "executionArn")
        _print_json([{k: row.get(k) for k in keys} for row in rows])
        return 0
    if not rows:
        print("no executions" + (f" for index {args.index!r}" if args.index else ""))
        return 0
    print(f"{'EXECUTION':<44} {'RUN':<9} {'STATUS':<10} {'STARTED (UTC)':<17} {'DURATION':>10}  INDEX PREFIX")
    for row in rows:
        print(
            f"{row['name']:<44} {row['mode']:<9} {row['status']:<10} {row['startDate']:%Y-%m-%d %H:%M} "
            f"{runs.duration(row):>10}  {row['index']} {row['prefix']}"
        )
    return 0


def cmd_status(args: argparse.Namespace, stack: Stack) -> int:
    from bgz.status import found, lines

    if args.names:  # `bgz status INDEX PREFIX/`
        if len(args.names) != 2 or args.index or args.prefix:
            raise BadInput("give INDEX PREFIX/ (two words) or --index INDEX --prefix PREFIX/, not both")
        args.index, args.prefix = args.names
    if not (args.index and args.prefix):
        raise BadInput("give the index and its prefix: bgz status INDEX PREFIX/")
    record = found(stack, args.index, check_prefix(args.prefix))
    if args.json:
        _print_json(record)
    else:
        print("\n".join(lines(record)))
    return 0


def cmd_locks(args: argparse.Namespace, stack: Stack) -> int:
    from batch_job.locations import Location
    from batch_job.locks import Locks
    from batch_job.stores import S3Store

    bucket = stack.outputs().get("DataBucketName")
    if not bucket:
        raise BadInput(f"stack {stack.name!r} has no DataBucketName output: deploy this version of it first")
    held = Locks(Location(S3Store(bucket, client=stack.client("s3")), "", f"s3://{bucket}/")).held()
    if args.json:
        _print_json([{**lock.to_dict(), "holder": lock.holder()} for lock, _ in held])
        return 0
    if not held:
        print(f"no prefix of s3://{bucket}/ is locked")
        return 0
    for lock, _ in sorted(held, key=lambda found: found[0].target):
        print(f"{lock.target}  locked by {lock.holder()}")
    return 0


def cmd_publish_image(args: argparse.Namespace, stack: Stack) -> int:
    from bgz.publish import publish

    image = publish(stack, args.tag)
    print(f"\nJobImageUri={image}")
    print(f"deploy it: sam deploy --parameter-overrides JobImageUri={image}")
    print("(sam deploy replaces the whole parameter_overrides list: keep your other values in samconfig.toml)")
    return 0


def cmd_selftest(args: argparse.Namespace, stack: Stack) -> int:
    from bgz.selftest import selftest

    return 0 if selftest(stack, poll_seconds=args.interval) else 1


def _stack_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--stack, --region, --profile, --config: on `bgz` itself with their defaults, and on every
    subcommand without (so that one given before the subcommand is not reset by it)."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--stack", default=default(None), help="stack name (default: samconfig.toml, else bgzip-workflow)"
    )
    parser.add_argument(
        "--region", default=default(None), help="AWS region (default: samconfig.toml, else your profile's)"
    )
    parser.add_argument("--profile", default=default(None), help="AWS named profile")
    parser.add_argument(
        "--config",
        "--config-file",
        dest="config",
        type=Path,
        default=default(None),
        help="samconfig.toml to read stack and region from (default: the nearest, here or above)",
    )


EXIT_STATUS = """exit status:
  0    done: the run started, succeeded (--wait, watch), or the answer was printed
  1    the run failed or was stopped (--wait, watch, watch --json); not started at the question; a selftest failed
  2    refused or could not do it: bad input, a pre-flight refusal, a lock, AWS said no; a refusal starts nothing
  130  interrupted (Ctrl-C); a started run goes on, and bgz watch follows it again"""

RUN = "associations-20261201T120000Z"  # a run's name, as bgz start makes them
EXAMPLES = {
    "start": [
        "bgz start --index associations --prefix associations/ --wait",
        "bgz start associations associations/ --yes --shards 8",
        "bgz start --all --exclude draft-index --wait",
        "bgz start associations associations/ genes genes/ --concurrency 2",
    ],
    "rollback": ["bgz rollback --index associations --prefix associations/ --wait"],
    "plan": ["bgz plan associations associations/", "bgz plan --all --rollback --json"],
    "watch": [f"bgz watch {RUN}", f"bgz watch {RUN} --json"],
    "confirm": [
        f"bgz confirm {RUN}",
        "bgz confirm --bulk bulk-compress-20261201T120000Z --restarted-at 2026-12-01T12:30:00Z",
    ],
    "stop": [f"bgz stop {RUN} --reason 'wrong prefix'"],
    "logs": [f"bgz logs {RUN} --state Verify", f"bgz logs {RUN} --follow", f"bgz logs {RUN} --since 1h --filter ERROR"],
    "list": ["bgz list --index associations", "bgz list --json"],
    "status": ["bgz status associations associations/", "bgz status associations associations/ --json"],
    "locks": ["bgz locks"],
    "publish-image": ["bgz publish-image", "bgz publish-image --tag v1.2.0"],
    "selftest": ["bgz selftest --stack bgzip-workflow --region us-east-1"],
    "completion": [
        "bgz completion bash > ~/.local/share/bash-completion/completions/bgz",
        "bgz completion zsh > ~/.zfunc/_bgz",
    ],
}


def _add(sub, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose -h says what it does and shows examples."""
    examples = "\n".join(f"  {line}" for line in EXAMPLES[name])
    return sub.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=f"examples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bgz",
        description=__doc__.split("\n\n")[0],
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    _stack_options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _stack_options(common, defaults=False)
    # Which indexes a run, or a dry run, is for: one (--index, --prefix) or many (a bulk run).
    selection = argparse.ArgumentParser(add_help=False)
    selection.add_argument(
        "names",
        nargs="*",
        metavar="INDEX PREFIX",
        help="as --index INDEX --prefix PREFIX; more pairs: a bulk run of exactly those indexes",
    )
    selection.add_argument("--index", help="bioindex index name (one index)")
    selection.add_argument("--prefix", help="with --index: its prefix as __Indexes has it, ending in /")
    selection.add_argument("--all", action="store_true", help="every index of the bioindex (bulk; mysql backend)")
    selection.add_argument("--include", metavar="NAME,NAME", help="these indexes of the bioindex (bulk)")
    selection.add_argument("--exclude", metavar="NAME,NAME", help="with --all or --include: leave these out")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("start", cmd_start, "start a compress run of one index, or of many (--all, --include, or pairs)"),
        ("rollback", cmd_rollback, "start a rollback run of one index, or of many (--all, --include, or pairs)"),
    ):
        p = _add(sub, name, parents=[common, selection], help=text)
        p.add_argument(
            "--concurrency", type=_within(1, 40), help="bulk: indexes converted at once (default: the stack's)"
        )
        p.add_argument("--wait", action="store_true", help="follow the run to its end; exit 1 if it fails")
        p.add_argument(
            "--json", action="store_true", help="the started run (with --wait: how it ended) as a record, for scripts"
        )
        p.add_argument("--yes", action="store_true", help="start without asking (needed where no terminal is)")
        p.add_argument("--interval", type=float, default=5.0, help=argparse.SUPPRESS)
        p.add_argument("--shards", type=_within(1, 10_000), help="number of shards (default: one per 20 GiB)")
        if name == "start":
            p.add_argument("--level", type=_within(-1, 9), help="compression level as bgzip -l: -1 (default) or 0..9")
        p.set_defaults(func=func)
    p = _add(
        sub, "plan", parents=[common, selection], help="dry run: pre-flight, files, bytes, expected size, time, cost"
    )
    p.add_argument("--rollback", action="store_true", help="a rollback instead of a compress run")
    p.add_argument("--shards", type=_within(1, 10_000), help="number of shards (default: one per 20 GiB)")
    p.add_argument("--json", action="store_true", help="the previews as records, for scripts")
    p.set_defaults(func=cmd_plan, concurrency=None)
    p = _add(sub, "watch", parents=[common], help="follow a run: state, Batch children, files and bytes")
    p.add_argument("execution", help="execution name or ARN")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between updates")
    p.add_argument("--once", action="store_true", help="print where the run is now, and exit")
    p.add_argument("--json", action="store_true", help="where the run is now as a record, for scripts")
    p.set_defaults(func=cmd_watch)
    p = _add(
        sub,
        "confirm",
        parents=[common],
        help="after restarting every bioindex process: let a run waiting for that go on (ReaderRefresh=confirm)",
    )
    p.add_argument("execution", nargs="?", help="the waiting run's execution name or ARN")
    p.add_argument("--bulk", metavar="NAME", help="every waiting index run of this bulk run, after one restart")
    p.add_argument(
        "--restarted-at",
        type=_utc_time,
        metavar="TIME",
        help="with --bulk: when the restart began (UTC, 2026-12-01T10:05:00Z); only runs that asked before it go on",
    )
    p.set_defaults(func=cmd_confirm)
    p = _add(sub, "stop", parents=[common], help="stop a run and its Batch jobs, free its prefix, say where it is")
    p.add_argument("execution", help="execution name or ARN (a bulk run: its index runs too)")
    p.add_argument("--reason", default="stopped by the operator", help="recorded as the execution's cause")
    p.add_argument("--json", action="store_true", help="what was done and where the prefix is, as a record")
    p.set_defaults(func=cmd_stop)
    p = _add(sub, "logs", parents=[common], help="the CloudWatch lines of a run's jobs and Lambdas")
    p.add_argument("execution", help="execution name or ARN")
    p.add_argument(
        "--state",
        "--step",  # its older name, kept for scripts
        dest="state",
        help="only this state's lines, e.g. Plan, Compress, Verify, DeleteOriginals",
    )
    p.add_argument(
        "--since",
        type=_since,
        metavar="WHEN",
        help="only lines from then on: 10m, 2h, 1d back, or a UTC time like 2026-12-01T10:05:00Z",
    )
    p.add_argument("--filter", metavar="TEXT", help="only lines containing TEXT (as grep -F)")
    p.add_argument("--follow", action="store_true", help="keep printing new lines until the run ends")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between polls with --follow")
    p.set_defaults(func=cmd_logs)
    p = _add(sub, "list", parents=[common], help="recent runs of both state machines")
    p.add_argument("--index", help="only runs of this index")
    p.add_argument("--max", type=int, default=20, help="how many (default 20)")
    p.add_argument("--json", action="store_true", help="the runs as records, for scripts")
    p.set_defaults(func=cmd_list)
    p = _add(
        sub,
        "status",
        parents=[common],
        help="one index's prefix: its files, the flag its last run set, that run, the lock",
    )
    p.add_argument("names", nargs="*", metavar="INDEX PREFIX", help="as --index INDEX --prefix PREFIX")
    p.add_argument("--index", help="bioindex index name")
    p.add_argument("--prefix", help="its prefix as __Indexes has it, ending in /")
    p.add_argument("--json", action="store_true", help="the record, for scripts")
    p.set_defaults(func=cmd_status)
    p = _add(sub, "locks", parents=[common], help="which runs hold which prefixes of the data bucket")
    p.add_argument("--json", action="store_true", help="the locks as records, for scripts")
    p.set_defaults(func=cmd_locks)
    p = _add(sub, "publish-image", parents=[common], help="build the job image and push it to the stack's ECR")
    p.add_argument("--tag", help="image tag (default: UTC timestamp; the repository's tags are immutable)")
    p.set_defaults(func=cmd_publish_image)
    p = _add(
        sub,
        "selftest",
        parents=[common],
        help="after a deploy: the lock primitives as the roles, the image, the bioindex over TLS, the vCPU quota",
    )
    p.add_argument("--interval", type=float, default=10.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_selftest)
    p = _add(sub, "completion", help="print the shell completion script for bgz (bash, zsh or tcsh)")
    p.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    return parser


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(build_parser(), args.shell))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "completion":  # needs no stack, nor a readable samconfig.toml
        return cmd_completion(args)
    try:
        stack = Stack.from_args(args.stack, args.region, args.profile, args.config)
        return args.func(args, stack)
    except BadInput as exc:
        print(f"bgz {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; the run itself goes on (bgz watch follows it again)", file=sys.stderr)
        return 130
    except Exception as exc:
        error = explain(exc)
        if error is None:
            raise
        print(f"bgz {args.command}: {error}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return 2
