"""`bgz` end to end against the offline stack (moto server): start, watch, list, rollback, the errors
an operator meets, and publish-image with docker faked at the process boundary."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import select
import stat
import sys
import time
from pathlib import Path

import pytest

from batch_job.locations import parse_location
from batch_job.locks import Lock, Locks
from bgz import cli
from bgz.publish import DOCKERFILE, ROOT
from offline.deployer import REGION
from tests.stacks import INDEX, PREFIX, Deployment


def bgz(capsys, deployment, *args: str) -> tuple[int, str, str]:
    rc = cli.main([*args, "--stack", deployment.stack.name, "--region", "us-east-1"])
    out, err = capsys.readouterr()
    return rc, out, err


def started(out: str) -> str:
    """The ARN `bgz start` printed, after the plan block it shows first."""
    (line,) = [line for line in out.splitlines() if line.startswith("started ")]
    return line.split()[-1]


def _compress_takes_a_moment(deployment) -> None:
    """A compress job starts in 0.02 s offline (a minute on Fargate): give `--wait`'s 0.3 s polls a
    chance to see the step running, with its progress."""
    deployment.aws.runner.before_job = lambda job: time.sleep(1.0) if job.endswith("-compress") else None


def test_start_wait_list_watch_and_rollback(deployment, capsys):
    _compress_takes_a_moment(deployment)
    rc, out, err = bgz(
        capsys, deployment, "start", "--yes", "--index", INDEX, "--prefix", PREFIX, "--wait", "--interval", "0.3"
    )
    assert rc == 0, out + err
    arn = started(out)
    name = arn.rsplit(":", 1)[-1]
    assert re.fullmatch(rf"{INDEX}-\d{{8}}T\d{{6}}Z", name)
    console = "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/"
    assert f"console: {console}{arn}" in out
    assert "running: Compress" in out and "/5 files" in out, "progress from the run folder's manifests"
    assert "SUCCEEDED: compress of associations associations/: 5 files" in out
    assert deployment.flag() is True

    rc, out, _ = bgz(capsys, deployment, "list")
    assert rc == 0 and name in out and "SUCCEEDED" in out and "compress" in out
    rc, out, _ = bgz(capsys, deployment, "status", INDEX, PREFIX)
    lines = out.splitlines()
    assert rc == 0 and lines[0] == f"{INDEX} {PREFIX} at s3://{deployment.stack.data_bucket}/{PREFIX}", out
    assert lines[1].startswith("  files: 0 .json (0 B), 5 .json.gz (") and lines[1].endswith(": compressed"), out
    assert lines[2].startswith(f"  flag: compressed=true, set by execution {name} at ") and "(mysql)" in lines[2]
    assert lines[3].startswith(f"  last run: {name} (compress) SUCCEEDED, started ") and lines[4] == "  lock: free"
    rc, out, _ = bgz(capsys, deployment, "status", INDEX, PREFIX, "--json")
    record = json.loads(out)
    assert rc == 0 and record["state"] == "compressed" and record["files"][".json.gz"]["count"] == 5
    assert record["flag"]["compressed"] is True and record["lastRun"]["name"] == name and record["lock"] is None
    rc, out, _ = bgz(capsys, deployment, "list", "--json")
    assert rc == 0 and [(r["name"], r["status"], r["index"]) for r in json.loads(out)] == [(name, "SUCCEEDED", INDEX)]
    rc, out, _ = bgz(capsys, deployment, "locks", "--json")
    assert rc == 0 and json.loads(out) == []
    rc, out, _ = bgz(capsys, deployment, "watch", name)
    assert rc == 0 and out.startswith("SUCCEEDED: compress")
    rc, out, _ = bgz(capsys, deployment, "watch", name, "--json")
    record = json.loads(out)
    assert rc == 0 and record["status"] == "SUCCEEDED" and record["outcome"].startswith("SUCCEEDED: compress")
    assert (record["files"], record["shards"], record["secondsLeft"]) == (5, 1, None), record
    rc, out, _ = bgz(capsys, deployment, "stop", name)
    assert rc == 0 and f"{name} had already ended (SUCCEEDED)" in out, out
    assert "the run had finished: all 5 files have their .gz/.gzi, the originals are deleted" in out
    assert "to finish" not in out, "an ended run is not offered a new run to finish it"
    rc, out, _ = bgz(capsys, deployment, "stop", name, "--json")
    record = json.loads(out)
    assert rc == 0 and (record["name"], record["statusBefore"], record["stopped"]) == (name, "SUCCEEDED", False)
    assert record["releasedLock"] is None and "the run had finished" in record["left"], record

    rc, out, err = bgz(
        capsys,
        deployment,
        *("rollback", "--yes", "--index", INDEX, "--prefix", PREFIX, "--wait", "--interval", "0.3", "--json"),
    )
    assert rc == 0, out + err
    record = json.loads(out)  # stdout holds the record alone; the plan block and the progress went to stderr
    assert "SUCCEEDED: rollback of associations" in err and "files" in err
    assert (record["started"], record["mode"], record["bulk"]) == (True, "rollback", False), record
    assert record["end"]["status"] == "SUCCEEDED" and record["end"]["outcome"].startswith("SUCCEEDED: rollback of")
    assert record["executionArn"].endswith(":" + record["name"]) and record["console"].endswith(record["executionArn"])
    rc, out, _ = bgz(capsys, deployment, "logs", record["name"], "--state", "Verify")
    assert rc == 0 and "this is a rollback run; its states: Plan, Decompress, VerifyRestored," in out, out
    assert deployment.originals_intact()
    rc, out, _ = bgz(capsys, deployment, "plan", INDEX, PREFIX, "--json")
    (found,) = json.loads(out)["indexes"]
    assert rc == 0 and (found["mode"], found["files"], found["refused"], found["locked"]) == ("compress", 5, None, None)
    assert found["bytes"] == sum(len(deployment.read(k)) for k in deployment.json_keys) and found["expectedBytes"] > 0
    rc, out, _ = bgz(capsys, deployment, "list", "--index", INDEX)
    assert out.count("SUCCEEDED") == 2
    rc, out, _ = bgz(capsys, deployment, "list", "--index", "other-index")
    assert "no executions" in out


def test_a_refused_pre_flight_starts_nothing_and_a_failed_run_exits_1_with_the_cause(deployment, capsys):
    deployment.bioindex.inject_failures([403])
    rc, out, err = bgz(capsys, deployment, "start", "--yes", "--index", INDEX, "--prefix", PREFIX, "--wait")
    assert rc == 2 and "refused by the pre-flight: BioindexRejected" in err and "nothing was started" in err, err
    assert not deployment.aws.client("stepfunctions").list_executions(stateMachineArn=deployment.stack.compress_arn)[
        "executions"
    ]
    deployment.bioindex.inject_failures([403])  # the bioindex fails after `bgz start` checked it
    execution = deployment.aws.client("stepfunctions").start_execution(
        stateMachineArn=deployment.stack.compress_arn,
        name="by-the-console",
        input=json.dumps({"index": INDEX, "prefix": PREFIX}),
    )
    rc, out, _ = bgz(capsys, deployment, "watch", execution["executionArn"].rsplit(":", 1)[-1], "--interval", "0.3")
    assert rc == 1
    assert "FAILED: PlanFailed: Plan failed. BioindexRejected" in out
    assert "No original was deleted" in out


def test_a_second_start_on_a_running_prefix_is_refused(deployment, capsys):
    rc, out, _ = bgz(capsys, deployment, "start", "--yes", "--index", INDEX, "--prefix", PREFIX)
    assert rc == 0 and "follow it with: bgz watch" in out
    name = started(out).rsplit(":", 1)[-1]
    rc, _, err = bgz(capsys, deployment, "start", "--yes", "--index", INDEX, "--prefix", PREFIX)
    assert rc == 2 and "already being converted" in err and f"hint: follow it with `bgz watch {name}`" in err
    deadline = time.monotonic() + 60
    while not deployment.locks() and time.monotonic() < deadline:
        time.sleep(0.2)  # until Plan has taken the lock
    rc, out, _ = bgz(capsys, deployment, "locks")
    assert rc == 0 and f"/{PREFIX}  locked by execution {name} (compress of index 'associations'" in out
    rc, out, _ = bgz(capsys, deployment, "watch", name, "--interval", "0.3")
    assert rc == 0 and "SUCCEEDED" in out
    rc, out, _ = bgz(capsys, deployment, "locks")
    assert rc == 0 and "is locked" in out and out.startswith("no prefix of s3://")


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["watch", "no-such-run"], "no execution 'no-such-run'", "bgz list"),
        (["start", "--index", INDEX, "--prefix", "no-slash"], "must end with '/'", None),
    ],
)
def test_operator_errors(deployment, capsys, args, message, hint):
    rc, _, err = bgz(capsys, deployment, *args)
    assert rc == 2 and message in err and "Traceback" not in err
    if hint:
        assert "hint: " in err and hint in err


def test_start_checks_what_plan_checks_before_starting_anything(deployment, capsys):
    """Out-of-range inputs, no terminal to confirm on, and a prefix a run by hand holds: each refused in
    one line, with the plan block shown, and no execution started."""
    sfn = deployment.aws.client("stepfunctions")
    one = ["start", "--index", INDEX, "--prefix", PREFIX, "--stack", deployment.stack.name, "--region", "us-east-1"]
    for extra, message in ((["--level", "12"], "must be from -1 to 9, got 12"), (["--shards", "0"], "from 1 to 10000")):
        with pytest.raises(SystemExit) as exited:
            cli.main([*one, *extra])
        assert exited.value.code == 2 and message in capsys.readouterr().err

    rc, out, err = bgz(capsys, deployment, "start", "--index", INDEX, "--prefix", PREFIX)  # stdin: no terminal
    assert rc == 2 and "pre-flight: passed" in out and "lock: free" in out
    assert "this compress run deletes the 5 original .json files of associations/ after every one is verified" in err
    assert "give --yes" in err

    target = parse_location(f"s3://{deployment.stack.data_bucket}/{PREFIX}")
    locks = Locks(target)
    locks.acquire(Lock(locks.key_prefix, target.uri, "s3://elsewhere/runs/by-hand/", mode="rollback", index=INDEX))
    rc, out, err = bgz(capsys, deployment, "start", "--yes", "--index", INDEX, "--prefix", PREFIX)
    assert rc == 2 and "is locked by the run by hand s3://elsewhere/runs/by-hand/" in err, err
    assert "nothing was started" in err
    assert not sfn.list_executions(stateMachineArn=deployment.stack.compress_arn)["executions"]
    locks.folder.store.delete([(locks.key_of(locks.key_prefix), locks.read()[1])])


def _bgz_on_a_terminal(deployment, answer: bytes) -> tuple[bytes, int]:
    """`bgz start` as the foreground process of a pseudo-terminal, answering its question."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        args = ["start", "--index", INDEX, "--prefix", PREFIX, "--stack", deployment.stack.name, "--region", REGION]
        main = "import sys; from bgz.cli import main; sys.exit(main())"
        os.execv(sys.executable, [sys.executable, "-c", main, *args])
    out = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            out += os.read(fd, 4096)
    os.write(fd, answer + b"\n")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def test_start_on_a_terminal_asks_before_a_run_that_deletes(deployment, capsys):
    sfn = deployment.aws.client("stepfunctions")
    out, code = _bgz_on_a_terminal(deployment, b"n")
    assert b"This compress run deletes the 5 original .json files of associations/" in out and code == 1
    assert b"not started" in out
    assert not sfn.list_executions(stateMachineArn=deployment.stack.compress_arn)["executions"]
    out, code = _bgz_on_a_terminal(deployment, b"y")
    assert code == 0 and b"started compress run" in out, out
    (execution,) = sfn.list_executions(stateMachineArn=deployment.stack.compress_arn)["executions"]
    rc, out, _ = bgz(capsys, deployment, "watch", execution["name"], "--interval", "0.3")
    assert rc == 0 and "SUCCEEDED" in out


def test_stack_not_deployed_or_wrong_region(offline_aws, capsys):
    rc = cli.main(["list", "--stack", "never-deployed", "--region", "us-east-1"])
    _, err = capsys.readouterr()
    assert rc == 2 and "stack 'never-deployed' is not deployed in us-east-1" in err and "sam deploy --guided" in err
    rc = cli.main(["plan", "--index", INDEX, "--prefix", PREFIX, "--stack", "never-deployed", "--region", "us-east-1"])
    _, err = capsys.readouterr()
    assert rc == 2 and "stack 'never-deployed' is not deployed in us-east-1" in err, "the stack's parameters too"


def test_wrong_region(deployment, capsys):
    rc = cli.main(["list", "--stack", deployment.stack.name, "--region", "eu-west-3"])
    _, err = capsys.readouterr()
    assert rc == 2 and "is not deployed in eu-west-3" in err


def test_no_credentials(offline_aws, capsys, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    rc = cli.main(["list", "--region", "us-east-1"])
    _, err = capsys.readouterr()
    assert rc == 2 and "no AWS credentials found" in err and "aws sso login" in err


def test_stack_and_region_come_from_samconfig(deployment, capsys, tmp_path):
    config = tmp_path / "samconfig.toml"
    config.write_text(
        f'version = 0.1\n[default.global.parameters]\nstack_name = "{deployment.stack.name}"\nregion = "us-east-1"\n'
    )
    for option in ("--config", "--config-file"):  # bgz's name, and sam's
        rc = cli.main(["list", option, str(config)])
        out, err = capsys.readouterr()
        assert rc == 0 and "no executions" in out, err


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """A `docker` on PATH that records each call (argv and stdin) as a JSON line."""
    log = tmp_path / "docker.log"
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "stdin = sys.stdin.read() if '--password-stdin' in sys.argv else None\n"
        f"open({str(log)!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], 'stdin': stdin}}) + '\\n')\n"
        "sys.exit(int(os.environ.get('FAKE_DOCKER_FAIL_' + sys.argv[1].upper(), '0')))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def test_publish_image_runs_exactly_build_login_push(deployment, capsys, fake_docker, offline_aws):
    rc, out, err = bgz(capsys, deployment, "publish-image", "--tag", "v1")
    assert rc == 0, err
    calls = [json.loads(line) for line in fake_docker.read_text().splitlines()]
    ecr = offline_aws.client("ecr")
    repositories = ecr.describe_repositories(repositoryNames=[f"{deployment.stack.name}-job"])["repositories"]
    uri = repositories[0]["repositoryUri"]
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert calls == [
        {
            "argv": ["build", "--platform", "linux/amd64", "-f", str(DOCKERFILE), "-t", f"{uri}:v1", str(ROOT)],
            "stdin": None,
        },
        {"argv": ["login", "--username", user, "--password-stdin", uri.split("/")[0]], "stdin": password},
        {"argv": ["push", f"{uri}:v1"], "stdin": None},
    ]
    assert f"JobImageUri={uri}:v1" in out
    assert password not in out + err, "the registry password is never printed"


def test_publish_image_stops_when_docker_fails(deployment, capsys, fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_FAIL_BUILD", "1")
    rc, _, err = bgz(capsys, deployment, "publish-image", "--tag", "v2")
    assert rc == 2 and "`docker build` failed" in err
    assert [json.loads(line)["argv"][0] for line in fake_docker.read_text().splitlines()] == ["build"]


def test_docker_is_the_real_dockerfile():
    assert DOCKERFILE == ROOT / "batch_job" / "Dockerfile" and DOCKERFILE.is_file()
    assert Path(ROOT / "pyproject.toml").is_file()


def test_a_profile_is_used_for_every_call_run_folder_reads_included(deployment, capsys, monkeypatch, tmp_path):
    """With credentials only in a named profile, `start --wait --profile p` follows the run to its end:
    the run folder's progress is read with the profile too, not with the default session."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    credentials = tmp_path / "credentials"
    credentials.write_text("[operator]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _compress_takes_a_moment(deployment)
    rc, out, err = bgz(
        capsys, deployment, "start", "--yes", "--index", INDEX, "--prefix", PREFIX, "--wait", "--interval", "0.3",
        "--profile", "operator",
    )  # fmt: skip
    assert rc == 0, out + err
    assert "running: Compress" in out and "/5 files" in out, "progress read from the run folder with the profile"
    assert "SUCCEEDED: compress of associations" in out


def test_stack_options_work_before_the_subcommand(deployment, capsys):
    rc = cli.main(["--stack", deployment.stack.name, "--region", "us-east-1", "list"])
    out, err = capsys.readouterr()
    assert rc == 0 and "no executions" in out, err
    rc = cli.main(["--region", "eu-west-3", "list", "--stack", deployment.stack.name])
    _, err = capsys.readouterr()
    assert rc == 2 and "is not deployed in eu-west-3" in err, "an option after the subcommand still applies"


def test_a_malformed_samconfig_is_one_line_with_what_to_do(tmp_path, capsys):
    config = tmp_path / "samconfig.toml"
    config.write_text("version = 0.1\n[default.global.parameters\nstack_name = 'x'\n")
    rc = cli.main(["list", "--config", str(config)])
    _, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[0].startswith(f"bgz list: {config} is not valid TOML")
    assert "hint: fix it, or pass --config" in err


def test_bgz_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and re.fullmatch(r"bgz \S+\n", capsys.readouterr().out)


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_stop_ends_the_run_and_its_job_frees_the_prefix_and_says_where_it_is(deployment, capsys):
    running, stopped = deployment.hold_job("-compress")
    rc, out, _ = bgz(capsys, deployment, "start", "--yes", "--index", INDEX, "--prefix", PREFIX)
    name = started(out).rsplit(":", 1)[-1]
    assert running.wait(60), "the compress job started"
    try:
        rc, out, err = bgz(capsys, deployment, "stop", name, "--reason", "wrong prefix")
    finally:
        stopped.set()
    assert rc == 0, out + err
    assert f"stopped {name}\nterminated 1 Batch jobs of {name}" in out
    assert f"released the lock of s3://{deployment.stack.data_bucket}/{PREFIX}" in out
    assert "0 of 5 files have their .gz/.gzi written" in out
    assert "The bioindex flag was not changed by this run and no originals were deleted" in out
    assert "Start a new compress run with the same index and prefix to finish" in out
    sfn = deployment.aws.client("stepfunctions")
    arn = f"{deployment.stack.compress_arn.replace(':stateMachine:', ':execution:')}:{name}"
    _wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING")
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    assert not deployment.locks() and deployment.originals_intact() and deployment.flag() is False

    rc, out, _ = bgz(capsys, deployment, "stop", name)
    assert rc == 0 and f"{name} had already ended (ABORTED)" in out and "released" not in out
    rc, out, _ = bgz(capsys, deployment, "stop", name, "--json")
    record = json.loads(out)
    assert (record["statusBefore"], record["stopped"], record["terminatedJobs"]) == ("ABORTED", False, 0)
    assert "0 of 5 files have their .gz/.gzi written" in record["left"], record


def test_stop_after_the_reader_proof_counts_its_canary_and_frees_the_prefix(deployment, capsys, monkeypatch):
    """Stopped while DeleteOriginals waits: the flag is set and the proof's canary is already deleted
    (it stays so: the bioindex reads its .gz), so 1 of 5 originals is gone, said so. A lock S3 would
    not let go of is said in the record, and a second stop frees it."""
    from batch_job.errors import StoreError
    from batch_job.locks import Locks

    waiting, stopped = deployment.hold_job("-delete")
    rc, out, _ = bgz(capsys, deployment, "start", "--yes", INDEX, PREFIX)
    name = started(out).rsplit(":", 1)[-1]
    assert waiting.wait(60), "DeleteOriginals started"

    def refused(self, run: str) -> bool:
        raise StoreError("5 deletes of the lock were refused")

    try:
        with monkeypatch.context() as patch:
            patch.setattr(Locks, "release", refused)
            rc, out, err = bgz(capsys, deployment, "stop", name, "--json")
    finally:
        stopped.set()
    record = json.loads(out)
    assert rc == 0 and record["stopped"] and record["terminatedJobs"] == 1, out + err
    assert record["releasedLock"] is None and "5 deletes of the lock were refused" in record["lockError"], record
    assert deployment.locks(), "still held"
    rc, out, err = bgz(capsys, deployment, "stop", name, "--json")
    record = json.loads(out)
    assert rc == 0 and record["lockError"] is None, out + err
    assert record["releasedLock"] == f"s3://{deployment.stack.data_bucket}/{PREFIX}"
    assert "5 of 5 files have their .gz/.gzi written" in record["left"], record
    assert "The bioindex flag is compressed=true" in record["left"] and "1 of 5 originals deleted" in record["left"]
    assert deployment.flag() is True and not deployment.locks()
    gone = [k for k in deployment.json_keys if k not in deployment.data_keys()]
    assert len(gone) == 1 and gone[0] + ".gz" in deployment.data_keys(), "the canary: deleted, its .gz read"


def test_a_started_run_is_named_on_stdout_even_when_following_it_is_interrupted(deployment, capsys, monkeypatch):
    """`start --wait --json` in a script: Ctrl-C (or an AWS error) while it follows the run still
    prints the record of the run it started, and exits 130; a refusal prints none (exit 2)."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "watch", interrupted)
    rc, out, err = bgz(capsys, deployment, "start", INDEX, PREFIX, "--yes", "--wait", "--json")
    record = json.loads(out)
    assert rc == 130 and record["started"] and record["name"].startswith(f"{INDEX}-"), out + err
    assert "end" not in record and "the run itself goes on" in err
    monkeypatch.undo()
    rc, out, err = bgz(capsys, deployment, "watch", record["name"], "--interval", "0.3")  # it did go on
    assert rc == 0 and "SUCCEEDED: compress of associations associations/" in out, out + err
    rc, out, err = bgz(capsys, deployment, "start", INDEX, "s3://x/", "--yes", "--json")
    assert rc == 2 and out == "" and "is a URI" in err


def test_logs_of_a_run_by_state_and_followed(deployment, capsys):
    rc, out, err = bgz(capsys, deployment, "start", "--yes", "--index", INDEX, "--prefix", PREFIX)
    name = started(out).rsplit(":", 1)[-1]
    rc = cli.main(
        ["logs", name, "--follow", "--interval", "0.3", "--stack", deployment.stack.name, "--region", "us-east-1"]
    )
    followed, err = capsys.readouterr()
    assert rc == 0, err
    assert "[Plan] INFO planned" in followed, "the Lambda's lines, found by the execution's name"
    assert re.search(r"\[Compress\] .*compress: 5 files, .* 0 failed", followed), "the job's own stream"
    assert re.search(r"\[Verify\] .*verify: 5 files", followed) and "[DeleteOriginals]" in followed
    rc, out, _ = bgz(capsys, deployment, "logs", name, "--step", "Verify")  # --state by its older name
    lines = out.splitlines()
    assert rc == 0 and lines and all(line.startswith("[Verify]") for line in lines)
    assert set(lines) <= set(followed.splitlines()), "the same lines, once each"
    rc, out, _ = bgz(capsys, deployment, "logs", name, "--filter", "5 files")
    lines = out.splitlines()
    assert rc == 0 and len(lines) >= 3 and all("5 files" in line for line in lines), out
    assert {line.split("]")[0] for line in lines} >= {"[Compress", "[Verify", "[DeleteOriginals"}, out
    rc, out, _ = bgz(capsys, deployment, "logs", name, "--since", "1d")
    assert rc == 0 and set(out.splitlines()) == set(followed.splitlines()), "every line is from the last day"
    rc, out, _ = bgz(capsys, deployment, "logs", name, "--since", "2099-01-01T00:00:00Z", "--filter", "x")
    assert rc == 0 and out == f"no log lines for {name} since 2099-01-01T00:00:00Z containing 'x'\n", out


def test_bgz_knows_where_the_template_puts_every_log(monkeypatch):
    """bgz logs reads the groups the template creates: the jobs' and each Lambda's."""
    from bgz import logs
    from bgz.stack import Stack
    from offline.cfn_yaml import load_template

    template = load_template()["Resources"]
    stack = Stack("S", "us-east-1")
    groups = {
        r["Properties"]["LogGroupName"]["Fn::Sub"].replace("${AWS::StackName}", "S")
        for r in template.values()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    assert logs.job_log_group(stack) in groups
    for state, suffix in logs.LAMBDA_LOGS.items():
        assert logs.lambda_log_group(stack, suffix) in groups, state
    handlers = {
        r["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for r in template.values()
        if r["Type"] == "AWS::Serverless::Function"
    }
    named = {
        n
        for n, r in template.items()
        if r["Type"] == "AWS::Logs::LogGroup" and r["Properties"]["LogGroupName"]["Fn::Sub"].startswith("/aws/lambda/")
    }
    assert handlers == named, "every Lambda logs to a group bgz knows"


def test_plan_is_a_dry_run_that_starts_nothing(deployment, capsys):
    rc, out, err = bgz(capsys, deployment, "plan", "--index", INDEX, "--prefix", PREFIX)
    assert rc == 0, out + err
    assert f"compress of index {INDEX} prefix {PREFIX} at s3://{deployment.stack.data_bucket}/{PREFIX}" in out
    assert "pre-flight: passed (__Indexes row" in out and "files: 5, 736.65 kB; shards: 1" in out
    ratio = float(
        re.search(r"expected compressed size: [\d.]+ kB \(([\d.]+)%, from 5 files sampled now\)", out).group(1)
    )
    assert 10 < ratio < 25, "the sample compresses about as the real codec does (16 %)"
    assert re.search(r"estimated wall time: \d+ min with 1 jobs of 2 vCPU at once \(MaxvCpus 64\)", out)
    assert re.search(r"estimated cost: \$\d+\.\d\d of Fargate; S3 storage saved", out) and "lock: free" in out
    assert "nothing was started, locked or written" in out
    sfn = deployment.aws.client("stepfunctions")
    assert not sfn.list_executions(stateMachineArn=deployment.stack.compress_arn)["executions"]
    assert not deployment.locks() and deployment.originals_intact()
    runs = deployment.s3.list_objects_v2(Bucket=deployment.stack.run_bucket).get("Contents", [])
    assert runs == [], "no run folder"

    rc, out, _ = bgz(capsys, deployment, "plan", "--index", "genez", "--prefix", PREFIX)
    assert rc == 2 and "refused by the pre-flight: UnknownIndex: the bioindex has no index 'genez'" in out


def test_plan_says_when_the_prefix_is_locked(deployment, capsys):
    """A lock held on the prefix (as a running execution's Plan leaves it) is named, and left as it is."""
    from batch_job.locks import Lock, Locks

    locks = Locks(parse_location(f"s3://{deployment.stack.data_bucket}/{PREFIX}"))
    holder = f"{deployment.stack.compress_arn.replace(':stateMachine:', ':execution:')}:busy-run"
    lock = Lock(
        locks.key_prefix,
        locks.target.uri,
        f"s3://{deployment.stack.run_bucket}/runs/busy-run/",
        holder,
        "compress",
        INDEX,
        PREFIX,
    )
    locks.acquire(lock, alive=lambda _: True)
    rc, out, err = bgz(capsys, deployment, "plan", "--all")
    assert rc == 0, out + err
    assert f"lock: s3://{deployment.stack.data_bucket}/{PREFIX} is locked by execution busy-run" in out
    assert locks.read() is not None, "a dry run clears nothing"

    # The lock of an execution that ended long ago: stale, which the run's own Plan clears, so bgz start
    # goes on (and does not refuse, as for a live holder).
    locks.folder.store.delete([(locks.key_of(locks.key_prefix), locks.read()[1])])
    locks.acquire(Lock(**{**lock.__dict__, "created": "2020-01-01T00:00:00Z"}), alive=lambda _: True)
    rc, out, err = bgz(
        capsys, deployment, "start", "--yes", "--index", INDEX, "--prefix", PREFIX, "--wait", "--interval", "0.3"
    )
    assert rc == 0, out + err
    assert "lock: free (a stale lock of execution busy-run (compress of index 'associations', since 2020" in out


def test_a_run_waiting_for_a_restart_says_what_to_do_and_bgz_confirm_resumes_it(offline_aws, tmp_path, mariadb, capsys):
    """ReaderRefresh=confirm, the default: the run pauses after setting the flag until the operator has
    restarted the bioindex and typed `bgz confirm EXECUTION`."""
    from bgz.stack import Stack
    from bgz.watch import snapshot

    d = Deployment(offline_aws, tmp_path, mariadb, refresh="confirm")
    try:
        d.confirm_automatically = False
        rc, out, _ = bgz(capsys, d, "start", "--yes", "--index", INDEX, "--prefix", PREFIX)
        name = started(out).rsplit(":", 1)[-1]
        rc, _, err = bgz(capsys, d, "confirm", name)
        assert rc == 2 and "is not waiting for a bioindex restart" in err, err
        stack = Stack(d.stack.name, "us-east-1")
        sfn = d.aws.client("stepfunctions")
        description = sfn.describe_execution(
            executionArn=f"{d.stack.compress_arn.replace(':stateMachine:', ':execution:')}:{name}"
        )
        deadline = time.monotonic() + 120
        while "WAITING FOR YOU" not in (line := snapshot(stack, description).line()):
            assert time.monotonic() < deadline, line
            time.sleep(0.3)
        assert "running: RefreshReaders confirmation" in line
        assert "Restart every process of the bioindex serving it" in line and f"type: bgz confirm {name}" in line
        assert all(k in d.data_keys() for k in d.json_keys), "nothing is deleted while it waits"
        rc, out, _ = bgz(capsys, d, "watch", name, "--once")
        assert rc == 0 and out.startswith("running: RefreshReaders confirmation") and "WAITING FOR YOU" in out
        rc, out, _ = bgz(capsys, d, "watch", name, "--json")
        record = json.loads(out)
        waiting = ("RUNNING", "RefreshReaders confirmation", None)
        assert (record["status"], record["state"], record["outcome"]) == waiting
        assert f"type: bgz confirm {name}" in record["waitingForYou"]

        d.bioindex.restart()
        rc, out, _ = bgz(capsys, d, "confirm", name)
        assert rc == 0 and "confirmed that every bioindex process restarted with compressed=true" in out
        rc, out, _ = bgz(capsys, d, "watch", name, "--interval", "0.3")
        assert rc == 0 and "SUCCEEDED" in out and d.flag() is True
        rc, _, err = bgz(capsys, d, "confirm", name)
        assert rc == 2 and "has ended" in err
        rc, _, err = bgz(capsys, d, "confirm")
        assert rc == 2 and "give the waiting run's EXECUTION" in err
    finally:
        d.close()


def test_an_ended_run_without_error_or_cause_is_said_in_words():
    """A run stopped from the console has no error or cause: not 'ABORTED: : '."""
    from bgz.watch import outcome

    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:bgzip-workflow-compress"
    assert outcome({"status": "ABORTED", "stateMachineArn": machine}) == (
        "ABORTED: stopped (from the console, the CLI or bgz stop); bgz stop EXECUTION says what it left"
    )
    assert outcome({"status": "TIMED_OUT", "stateMachineArn": machine}) == "TIMED_OUT: no error or cause given"
    failed = {"status": "FAILED", "stateMachineArn": machine, "error": "PlanFailed", "cause": "Plan failed."}
    assert outcome(failed) == "FAILED: PlanFailed: Plan failed."


def test_start_takes_index_and_prefix_as_words_too():
    """`bgz start INDEX PREFIX/`, as the bioindex CLI takes them, is --index INDEX --prefix PREFIX/."""
    from batch_job.errors import BadInput
    from bgz.cli import _selection, build_parser

    for command in ("start", "rollback", "plan"):
        args = build_parser().parse_args([command, "genes", "genes/"])
        assert _selection(args) is None and (args.index, args.prefix) == ("genes", "genes/")
    for words in (["start", "genes"], ["start", "genes", "genes/", "--index", "genes"]):
        with pytest.raises(BadInput, match=r"give INDEX PREFIX/ pairs \(one: that index; more: a bulk run"):
            _selection(build_parser().parse_args(words))
    args = build_parser().parse_args(["start", "--all", "--exclude", "draft"])
    assert _selection(args) == {"all": True, "exclude": ["draft"]}


def test_watch_says_the_rate_and_the_time_left():
    """Files and bytes done (manifests, and the progress records of shards still working) over the
    time since the step's state was entered."""
    from batch_job.sizes import pace
    from bgz.watch import Snapshot

    snap = Snapshot("RUNNING", "Compress job", job_running=True, shards=4, shards_done=1, files=40, files_done=12)
    snap.bytes_total, snap.bytes_done, snap.seconds = 400_000_000, 100_000_000, 50
    assert snap.line() == (
        "running: Compress job | [#####               ] 1/4 shards, 12/40 files, 100.00 MB/400.00 MB, 0m50s, "
        "2.00 MB/s, about 2m30s left"
    )
    snap.bytes_done = 0
    assert snap.line().endswith("0 B/400.00 MB, 0m50s"), "no rate before a byte is done"
    assert pace(400, 400, 3725) == "0 B/s" and pace(1, 3601, 1) == "1 B/s, about 1h00m00s left"


def test_the_nearest_samconfig_names_the_stack_and_the_refusal_says_where_the_name_came_from(
    offline_aws, capsys, tmp_path, monkeypatch
):
    """bgz run from inside the project reads its samconfig.toml, as sam does from the project's root."""
    from bgz.stack import Stack

    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.deploy.parameters]\nstack_name = "from-samconfig"\nregion = "us-east-1"\n'
    )
    inside = tmp_path / "statemachine" / "deeper"
    inside.mkdir(parents=True)
    monkeypatch.chdir(inside)
    stack = Stack.from_args(None, None, None, None)
    assert (stack.name, stack.region, stack.source) == (
        "from-samconfig",
        "us-east-1",
        f"stack_name in {tmp_path / 'samconfig.toml'}",
    )
    rc = cli.main(["list"])
    _, err = capsys.readouterr()
    assert rc == 2 and "stack 'from-samconfig' is not deployed in us-east-1 (the name: stack_name in " in err, err
    (tmp_path / "samconfig.toml").unlink()
    assert Stack.from_args(None, "us-east-1", None, None).source.startswith("the default name (no samconfig.toml in ")


def test_every_subcommand_shows_examples_that_parse(capsys):
    """`bgz CMD -h` says what CMD does and shows examples; each example is a valid command line."""
    import shlex

    parser = cli.build_parser()
    commands = re.search(r"\{([a-z,-]+)\}", parser.format_usage()).group(1).split(",")
    assert set(commands) == set(cli.EXAMPLES)
    for name in commands:
        with pytest.raises(SystemExit):
            parser.parse_args([name, "-h"])
        text = capsys.readouterr().out
        assert f"examples:\n  bgz {name}" in text and text.split("\n\n")[1][0].isupper(), text
        for line in cli.EXAMPLES[name]:
            command = line.split(" > ")[0]  # the shell's redirection is not bgz's
            assert parser.parse_args(shlex.split(command)[1:]).command == name, line


def test_since_takes_a_span_back_or_a_utc_time():
    from datetime import UTC, datetime, timedelta

    back = datetime.now(UTC) - cli._since("90m")
    assert timedelta(minutes=89) < back < timedelta(minutes=91)
    assert cli._since("2026-12-01T10:05:00Z") == datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    for bad in ("10", "m", "1w", "-5m", "2026-12-01 10:05"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["logs", "RUN", "--since", bad])


def test_bash_completes_subcommands_and_their_options(tmp_path, capsys):
    """`bgz completion bash`, loaded by a real bash, completes what the parser has."""
    import subprocess

    assert cli.main(["completion", "bash"]) == 0
    script = tmp_path / "bgz.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str) -> set[str]:
        line = " ".join(["bgz", *words])
        program = (
            f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; COMP_LINE='{line}'; "
            'COMP_POINT=${#COMP_LINE}; _shtab_bgz; printf "%s\\n" "${COMPREPLY[@]}"'
        )
        shown = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True, check=True)
        return set(shown.stdout.split())

    assert complete("st") == {"start", "stop", "status"}
    assert {"--since", "--state", "--step"} <= complete("logs", "RUN", "--s")
    assert complete("completion", "") == {"bash", "zsh", "tcsh"}


def test_index_prefix_pairs_are_one_index_or_a_bulk_run_of_exactly_those():
    """`bgz start A a/` is one index; `bgz start A a/ B b/` a bulk run of A and B (what a bioindex that
    cannot list its prefixes needs); an odd count, or pairs beside --all, is one line and nothing."""
    from batch_job.errors import BadInput

    parser = cli.build_parser()

    def selection(*args: str):
        return cli._selection(parser.parse_args(["start", *args]))

    assert selection("associations", "associations/") is None
    assert selection("a", "a/", "b", "b/v2/", "--concurrency", "2", "--level", "6") == {
        "indexes": [{"index": "a", "prefix": "a/"}, {"index": "b", "prefix": "b/v2/"}],
        "concurrency": 2,
        "level": 6,
    }
    for bad, words in (
        (("a", "a/", "b"), "pairs"),
        (("a", "a/", "--all"), "not both"),
        (("a", "a/", "b", "b/", "--exclude", "b"), "--exclude and --shards do not go with"),
        (("a", "a/", "b", "s3://x/b/"), "is a URI"),
    ):
        with pytest.raises(BadInput, match=words):
            selection(*bad)
