"""The offline stack's process start-up (offline/warm_start.py): a zygote's child is the fresh
process a job or a Lambda invoke would be, and a new botocore session reads nothing from disk
that an earlier one of the same process read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from botocore import loaders

from offline.warm_start import Zygote, share_botocore_data

CHILD = """
import json, os, sys, time
import boto3
kind = sys.argv[1]
marker = getattr(boto3, "_set_by_a_child", None)
boto3._set_by_a_child = kind  # a change to what the zygote imported: no sibling may see it
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": os.environ.get("RUN_VALUE"), "seen": marker}))
print("to stderr", file=sys.stderr)
sys.stdout.flush()  # a child's streams are the zygote's objects: buffered unless PYTHONUNBUFFERED is set
if kind == "exit-3":
    sys.exit(3)
if kind == "message":
    sys.exit("refused: a message")
if kind == "killed":
    os.kill(os.getpid(), 9)
"""


@pytest.fixture(scope="module")
def zygote():
    started = Zygote()
    yield started
    started.close()


def test_each_child_is_a_fresh_process_with_its_own_run(zygote, tmp_path):
    """argv, working folder, environment and streams are the run's; the exit status is the script's,
    as `python SCRIPT ARGS` would end; what one child changes, the next does not see."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    codes, outputs = {}, {}
    for kind in ("ok", "exit-3", "message", "killed", "again"):
        cwd = tmp_path / kind
        cwd.mkdir()
        out, err = cwd / "out", cwd / "err"
        env = {"RUN_VALUE": f"value of {kind}", "PATH": "/usr/bin:/bin"}
        codes[kind] = zygote.run(script, [kind, "x y"], env, cwd, "/dev/null", str(out), str(err)).code
        outputs[kind] = (json.loads(out.read_text().splitlines()[0]), err.read_text())
    assert codes == {"ok": 0, "exit-3": 3, "message": 1, "killed": -9, "again": 0}
    for kind, (said, err) in outputs.items():
        assert said == {"argv": [kind, "x y"], "cwd": str(tmp_path / kind), "env": f"value of {kind}", "seen": None}
        assert err.startswith("to stderr\n")
    assert outputs["message"][1] == "to stderr\nrefused: a message\n"


def test_a_new_session_lists_and_parses_botocore_data_once(monkeypatch, tmp_path):
    """A job or a Lambda makes its clients in new sessions: after the first, no data file is read
    again and the data folder is not listed again; the services found are botocore's own list, and
    a session with another search path (AWS_DATA_PATH) lists its own."""
    share_botocore_data()
    first = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    first.client("s3").get_paginator("list_objects_v2")
    own = subprocess.run(  # botocore's answer in a process without the sharing
        [sys.executable, "-c", "import boto3; print(repr(boto3.session.Session().get_available_services()))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    class Refusing:  # botocore's loaders module sees an `os` that may not list folders; no one else does
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def listdir(path):
            raise AssertionError(f"listed botocore's data folder again: {path}")

    def refuse(*args, **kwargs):
        raise AssertionError(f"read botocore's data folder again: {args}")

    monkeypatch.setattr(loaders, "os", Refusing())
    monkeypatch.setattr(loaders, "open", refuse, raising=False)
    second = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    second.client("s3").get_paginator("list_objects_v2")
    assert repr(second.get_available_services()) == own.strip()

    monkeypatch.undo()
    (tmp_path / "zz-extra" / "2020-01-01").mkdir(parents=True)
    (tmp_path / "zz-extra" / "2020-01-01" / "service-2.json").write_text("{}")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    extra = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    assert "zz-extra" in extra.get_available_services() and "zz-extra" not in second.get_available_services()
