"""Shared fixtures: a moto S3 server on loopback, buckets, sample data, MariaDB, a deployed stack.

Every test that uses the moto server or MariaDB, or waits out a lock's lease, is marked `slow`:
`make test-fast` leaves them out (codec, plan, runner, CLI and template checks on local folders),
`make test` runs everything.

Where each part of the code is tested:

    batch_job/bgzf.py, codec.py, htslib.py      test_bgzf (against the real bgzip), test_engine
    batch_job/steps/, stores.py, cli.py        test_engine, test_reruns, test_terminal
    batch_job/locks.py                         test_locks, test_workflow (stale locks, parallel runs)
    batch_job/bioindex/                        test_mysql_backend, test_database_tls, test_http_backend,
                                               test_live_flag
    batch_job/rates.py                         test_rates
    lambdas/                                   test_lambdas (models, packaging), test_workflow,
                                               test_bioindex_safety, test_reader_refresh, test_notifications
    lambdas/select_indexes, the bulk machine   test_bulk, test_bulk_scale
    workflow/states.py, events.py              test_asl_source (the names; each state's payload its event),
                                               test_lambdas (each event refuses unknown keys)
    workflow/boundary.py                       test_lambdas (each selector its record), test_workflow,
                                               test_run_scale
    statemachine/                              test_asl_source, test_template (the graph: no path deletes
                                               before the flag), test_workflow (executed by moto)
    template.yaml (roles)                      test_template, test_iam (every call against its role)
    bgz/                                       test_bgz, test_selftest, test_demo (the demo and sandbox)
    offline/                                   test_offline_aws (the moto hooks), and every slow test
    offline/sample_stack.py                    every test with a Deployment, test_demo (the same stack)
    offline/warm_start.py                      test_warm_start (a zygote's children, botocore's data shared)
    offline/bioindex_standin.py                test_bioindex_standin (one zygote, each stand-in's arguments)
    README.md, docs/                           test_docs
    the image, pyproject, layer Makefiles      test_packaging, test_lambdas, check_build.py (after `sam build`)
"""

from __future__ import annotations

import compileall
import uuid
from pathlib import Path

import boto3
import pytest

from batch_job.locations import parse_location
from batch_job.records import Flag
from batch_job.runfolder import RunFolder
from offline.aws import OfflineAWS
from offline.warm_start import freeze_imported, share_botocore_data
from tests.mariadb import MariaDB
from tests.stacks import Deployment

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parent.parent
SLOW_FIXTURES = {"offline_aws", "mariadb"}


def pytest_configure(config: pytest.Config) -> None:
    share_botocore_data()  # the harness, moto's server and `bgz` make hundreds of clients
    if not hasattr(config, "workerinput"):  # once, before pytest-xdist starts its workers
        _compile_project()


def _compile_project() -> None:
    """Each job, Lambda invoke and `bgz` of the suite is a new process that imports the project's
    code. Where PYTHONDONTWRITEBYTECODE is set no process writes what it compiled, and each compiled
    every module again: half of a Lambda invoke's imports. Compiled once here (the .pyc files are
    still checked against their sources at each import)."""
    for package in ("batch_job", "workflow", "bgz", "lambdas", "offline", "demo"):
        compileall.compile_dir(ROOT / package, quiet=1)


# The modules whose tests take longest (20-60 s each, `make test` prints the slowest), run first so
# that the workers of `pytest -n 4` end together instead of one waiting on the last long test.
LONGEST_FIRST = ("test_demo", "test_reader_refresh", "test_bulk", "test_bulk_scale", "test_bioindex_safety")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))


@pytest.fixture(scope="session")
def offline_aws():
    """One moto server on loopback for the whole run, with the offline-stack hooks installed.

    Every boto3 client and child process in the tests (jobs, Lambda handlers) uses it.
    """
    aws = OfflineAWS()
    with pytest.MonkeyPatch.context() as mp:
        for name, value in aws.env.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            mp.delenv(name, raising=False)
        aws.start()
        freeze_imported()  # moto's backends and the libraries: left out of every later collection
        yield aws
    aws.stop()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    """One real MariaDB server on loopback for the whole run; each stack gets its own schema."""
    server = MariaDB(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server(offline_aws) -> str:
    return offline_aws.endpoint


@pytest.fixture
def deployment(offline_aws, tmp_path, mariadb):
    """A fresh offline stack with the sample index built in its bioindex (tests/stacks.py)."""
    d = Deployment(offline_aws, tmp_path, mariadb)
    yield d
    d.close()


@pytest.fixture
def s3(moto_server):
    return boto3.client("s3", region_name=REGION)


@pytest.fixture
def bucket(s3) -> str:
    name = f"data-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def run_bucket(s3) -> str:
    name = f"runs-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def write_flag(run_uri: str, index: str, prefix: str, compressed: bool) -> None:
    """What the set-compressed Lambda writes after reading the flag back."""
    RunFolder(parse_location(run_uri)).write_flag(Flag(index, prefix, compressed, "https://bioindex.test"))


@pytest.fixture(autouse=True)
def _not_an_array_child(monkeypatch):
    """Steps read the Batch array index from the environment; tests choose shards explicitly."""
    monkeypatch.delenv("AWS_BATCH_JOB_ARRAY_INDEX", raising=False)
