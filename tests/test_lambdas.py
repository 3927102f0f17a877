"""The Lambdas' own pieces: the bioindex server client and the http flag backend against the
stand-in over real HTTP, schema parsing for sample queries, and the code folder as `sam build`
packages it."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from batch_job.bioindex.errors import (
    BioindexRejected,
    BioindexUnavailable,
    CannotSample,
    FlagAlreadySet,
    FlagNotReadBack,
    IndexNotBuilt,
    IndexNotServed,
    InsecureBioindexUrl,
    NoSetEndpoint,
    UnknownIndex,
)
from batch_job.bioindex.http_flag import HttpBackend
from batch_job.bioindex.rows import IndexRow, query_columns
from batch_job.bioindex.server import BioindexServer
from batch_job.locations import parse_location
from batch_job.records import Flag, RefreshMode
from batch_job.runfolder import Receipts
from offline.bioindex_db import BioindexDatabase
from offline.bioindex_standin import BioindexStandin

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bioindex(tmp_path):
    db = BioindexDatabase(f"sqlite:///{tmp_path / 'bioindex.sqlite'}")
    db.create_tables()
    db.add_index("genes", "genes/", "gene")
    db.add_index("genes", "genes-by-build/", "gene,build")
    db.add_index("variants", "variants/", "varId", built=False)
    standin = BioindexStandin(db, "unused-bucket", workers=1, token="s3cret", set_endpoint=True).start()
    yield standin
    standin.close()


def server(standin: BioindexStandin, **kwargs) -> BioindexServer:
    return BioindexServer(standin.url, token="s3cret", allow_insecure=True, backoff_seconds=0.01, **kwargs)


def backend(standin: BioindexStandin, tmp_path: Path) -> HttpBackend:
    (tmp_path / "receipts").mkdir(exist_ok=True)
    return HttpBackend(server(standin), Receipts(parse_location(str(tmp_path / "receipts"))))


def test_sets_and_reads_back_the_flag(bioindex):
    s = server(bioindex)
    assert s.flags("genes") == [False, False]
    s.set_compressed("genes", "genes/", True)
    assert sorted(s.flags("genes")) == [False, True]
    assert bioindex.db.compressed("genes", "genes/") is True
    assert bioindex.requests[1] == "POST /api/bio/bgcompress/set-compressed/genes/true?prefix=genes%2F"
    assert set(bioindex.authorization) == {"Bearer s3cret"}


def test_retries_transient_errors(bioindex):
    bioindex.inject_failures([500, 429, 503])
    server(bioindex).set_compressed("genes", "genes/", True)
    assert bioindex.db.compressed("genes", "genes/") is True
    assert len(bioindex.requests) == 4


def test_gives_up_on_a_persistent_outage(bioindex):
    bioindex.inject_failures([502] * 10)
    with pytest.raises(BioindexUnavailable, match="502"):
        server(bioindex, attempts=3).set_compressed("genes", "genes/", True)
    assert len(bioindex.requests) == 3


def test_4xx_is_final_and_the_token_stays_out_of_the_error(bioindex):
    other = BioindexServer(bioindex.url, token="wrong-token", allow_insecure=True, backoff_seconds=0.01)
    with pytest.raises(BioindexRejected, match="401") as info:
        other.set_compressed("genes", "genes/", True)
    assert "wrong-token" not in str(info.value)
    assert len(bioindex.requests) == 1


def test_connection_refused_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = BioindexServer(f"http://127.0.0.1:{port}", allow_insecure=True, attempts=2, backoff_seconds=0.01)
    with pytest.raises(BioindexUnavailable):
        c.flags("genes")


def test_plain_http_needs_explicit_permission():
    with pytest.raises(InsecureBioindexUrl, match="InsecureBioindexUrl"):
        BioindexServer("http://bioindex.example.org")
    with pytest.raises(InsecureBioindexUrl):
        BioindexServer("ftp://bioindex.example.org", allow_insecure=True)
    assert BioindexServer("https://bioindex.example.org/").base_url == "https://bioindex.example.org"


def test_every_request_is_a_new_connection(bioindex):
    """So that refreshes and sample queries spread over the server's processes."""
    bioindex.stop()
    bioindex.workers = 3
    bioindex.start()
    server(bioindex).refresh(40)
    assert len(bioindex.pids_answering("/api/bio/indexes")) == 3


def test_http_backend_reads_back_a_changed_listing_and_keeps_no_receipt_itself(bioindex, tmp_path):
    b = backend(bioindex, tmp_path)
    row = b.preflight("genes", "genes-by-build/", "genes-by-build/", rollback=False)
    assert (row.name, row.id) == ("genes", None)
    change = b.set_flag("genes", "genes-by-build/", True)
    assert change.row.compressed is True and change.before is None
    assert bioindex.db.compressed("genes", "genes-by-build/") is True


def test_http_backend_never_takes_an_unchanged_listing_as_proof(bioindex, tmp_path):
    b = backend(bioindex, tmp_path)
    with pytest.raises(FlagNotReadBack, match="unchanged listing proves nothing"):
        b.set_flag("genes", "no-such-prefix/", True)
    bioindex.db.set_compressed("genes", "genes/", True)
    bioindex.db.set_compressed("genes", "genes-by-build/", True)
    with pytest.raises(FlagAlreadySet, match="'other/' may be another index's prefix"):
        b.preflight("genes", "other/", "other/", rollback=False)
    with pytest.raises(FlagNotReadBack):
        b.set_flag("genes", "other/", True)


def test_http_backend_accepts_a_re_run_with_a_receipt_of_the_same_prefix(bioindex, tmp_path):
    b = backend(bioindex, tmp_path)
    bioindex.db.set_compressed("genes", "genes/", True)
    bioindex.db.set_compressed("genes", "genes-by-build/", True)
    b.receipts.write(Flag("genes", "genes/", True, bioindex.url))
    assert b.preflight("genes", "genes/", "genes/", rollback=False).name == "genes"
    assert b.set_flag("genes", "genes/", True).row.compressed is True
    with pytest.raises(FlagAlreadySet):  # the receipt is for genes/, not for another prefix
        b.preflight("genes", "genes-by-build/", "genes-by-build/", rollback=False)


def test_http_backend_pre_flight_refusals(bioindex, tmp_path):
    b = backend(bioindex, tmp_path)
    with pytest.raises(UnknownIndex, match="lists no index named 'nope'"):
        b.preflight("nope", "nope/", "nope/", rollback=False)
    with pytest.raises(IndexNotBuilt, match="'variants'"):
        b.preflight("variants", "variants/", "variants/", rollback=False)


def test_http_backend_refuses_a_bioindex_without_the_set_route(bioindex, tmp_path):
    """Today's bioindex has no set-compressed route: refused at Plan, not after both Batch steps."""
    assert backend(bioindex, tmp_path).preflight("genes", "genes/", "genes/", rollback=False).name == "genes"
    without = BioindexStandin(bioindex.db, "unused-bucket", workers=1, token="s3cret").start()
    try:
        with pytest.raises(NoSetEndpoint, match=r"no set-compressed route .* answers 404.*FlagBackend=mysql"):
            backend(without, tmp_path).preflight("genes", "genes/", "genes/", rollback=False)
        assert not [r for r in without.requests if r.startswith("POST")], "nothing was set to find out"
    finally:
        without.close()


def test_plan_refuses_a_bioindex_url_that_does_not_serve_the_index(bioindex):
    """One stack is one portal: the BioindexUrl must list the index (another portal's would not)."""
    from plan.app import check_served

    check_served(server(bioindex), "genes")
    with pytest.raises(IndexNotServed, match=r"does not list index 'other' .*the portal whose database holds it"):
        check_served(server(bioindex), "other")


def test_reader_refresh_settings_come_from_the_stack(monkeypatch):
    from shared import config

    monkeypatch.delenv("READER_REFRESH", raising=False)
    assert config.reader_refresh().mode == RefreshMode.CONFIRM
    monkeypatch.setenv("READER_REFRESH", "ecs-service")
    monkeypatch.setenv("BIOINDEX_ECS_SERVICES", "a, b,")
    monkeypatch.setenv("READER_REFRESH_POLL_SECONDS", "5")
    settings = config.reader_refresh()
    assert (settings.mode, settings.ecs_services) == (RefreshMode.ECS_SERVICE, ("a", "b"))
    assert settings.state() == {"mode": "ecs-service", "pollSeconds": 5, "confirmTimeoutSeconds": 86400}
    assert [m.restarts for m in RefreshMode] == [True, True, True, False]
    monkeypatch.setenv("READER_REFRESH", "sometimes")
    with pytest.raises(ValueError, match="READER_REFRESH must be one of"):
        config.reader_refresh()


def test_http_samples_need_a_schema_without_a_locus(bioindex, tmp_path):
    b = backend(bioindex, tmp_path)
    row = IndexRow(None, "genes", "genes/", "gene,chromosome:position", "", "2026-11-01", False)
    with pytest.raises(CannotSample, match="lists no loci"):
        b.sample_queries(row, [], 4)


@pytest.mark.parametrize(
    ("schema", "keys", "locus", "step", "query"),
    [
        ("phenotype", ["phenotype"], False, 20_000, ["T2D"]),
        ("phenotype,chromosome:position", ["phenotype"], True, 20_000, ["T2D", "8:40000-59999"]),
        ("chr:start-stop;locus_step=500", [], True, 500, ["8:40000-40499"]),
        # the bioindex refuses a region whose stop is not after its start ("Stop must be > start")
        ("phenotype,chromosome:position;locus_step=1", ["phenotype"], True, 1, ["T2D", "8:40000-40001"]),
    ],
)
def test_sample_queries_from_index_table_values(schema, keys, locus, step, query):
    columns = query_columns(schema)
    assert (columns.keys, columns.locus, columns.step) == (keys, locus, step)
    values = (["T2D"] if keys else []) + (["8", 40000] if locus else [])
    assert columns.query(values) == query


@pytest.mark.parametrize("schema", ["varId=$chr:$pos", "varId|dbSNP", "chromosome:position,phenotype"])
def test_schemas_that_cannot_be_sampled_say_so(schema):
    with pytest.raises(CannotSample):
        query_columns(schema)


def test_the_packaged_handlers_use_the_layers_code_and_never_load_the_codec(tmp_path):
    """A function's package as lambdas/Makefile makes it, beside the engine as EngineLayer carries it
    and the boundary as WorkflowLayer's Makefile builds it: the handlers import the packaged copies
    (make sam-build checks the real layers, wheels included)."""
    package, engine, boundary = tmp_path / "function", tmp_path / "engine", tmp_path / "workflow-layer"
    package.mkdir()
    subprocess.run(
        ["make", "-s", "-C", "lambdas", "build-PlanFunction", f"ARTIFACTS_DIR={package}"], cwd=ROOT, check=True
    )
    subprocess.run(
        ["make", "-s", "-C", "workflow", "build-WorkflowLayer", f"ARTIFACTS_DIR={boundary}"], cwd=ROOT, check=True
    )
    assert not (package / "batch_job").exists(), "the engine comes in the layer, once"
    assert not (package / "workflow").exists(), "the boundary comes in its layer, once"
    assert not (boundary / "python" / "workflow" / "Makefile").exists(), "the layer holds the package alone"
    shutil.copytree(ROOT / "batch_job", engine / "batch_job", ignore=shutil.ignore_patterns("__pycache__"))
    probe = (
        "import sys, plan.app, set_compressed.app, prove_readers.app, refresh_readers.app, report.summary,"
        " report.explain, report.bulk, select_indexes.app, notify.app, batch_job, shared, workflow.events;"
        "print(batch_job.__file__);"
        "print(shared.__file__);"
        "print(workflow.events.__file__);"
        "print(sorted(m for m in ('deflate', 'batch_job.codec', 'batch_job.htslib') if m in sys.modules))"
    )
    path = f"{package}:{engine}:{boundary / 'python'}"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=package,
        env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "POWERTOOLS_TRACE_DISABLED": "true"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(engine)) and out[1].startswith(str(package)), "the handlers use the packaged code"
    assert out[2] == str(boundary / "python" / "workflow" / "events.py"), "every state's event comes in WorkflowLayer"
    assert out[3] == "[]", "the Lambdas never load the codec"


def a_plan(run: str, index: str, prefix: str, target: str) -> dict:
    """Plan's result for a run of one shard, as the state machine hands it on."""
    from workflow.boundary import PlanResult

    return PlanResult(
        run_folder=run,
        index=index,
        prefix=prefix,
        target=target,
        shards=1,
        files=1,
        bytes=3,
        level=-1,
        timeouts={},
        refresh={},
    ).to_json()


def test_explain_says_when_a_canary_is_still_deleted(s3, run_bucket):
    """Should a canary not be restored, the Cause must say where its copy is, never "nothing deleted"."""
    from report.explain import explain

    from batch_job.records import CanaryObject, CanaryRecord, CanaryStatus, ReadersCheck
    from batch_job.runfolder import RunFolder
    from workflow.events import FailureEvent

    run = RunFolder(parse_location(f"s3://{run_bucket}/runs/x/"))
    aside = CanaryObject("data/a.json", "e", 3, "runs/x/canary/data/a.json", "f")
    run.write_readers_check(ReadersCheck("x", canary=CanaryRecord(CanaryStatus.DELETED, "now", [aside])))
    plan = a_plan(run.uri, "i", "a/", "s3://d/data/a/")
    event = FailureEvent(execution="x", mode="compress", state="ProveReaders", plan=plan)
    cause = explain(event)["cause"]
    assert f"The canary is still deleted: restore data/a.json from s3://{run_bucket}/runs/x/canary/data/a.json" in cause
    assert "No original was deleted" not in cause
    assert "index 'i' prefix 'a/' at s3://d/data/a/" in cause


KILLED = {
    "errorType": "Runtime.ExitError",
    "errorMessage": "RequestId: r Error: Runtime exited with error: signal: killed",
}
NOT_IMPORTED = {"errorType": "Runtime.ImportModuleError", "errorMessage": "Unable to import module 'app': No module"}


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            {"Error": "Runtime.ExitError", "Cause": json.dumps(KILLED)},
            "Its Lambda died before answering (Runtime.ExitError: Runtime exited with error: signal: killed).",
        ),
        ({"Error": "Lambda.Unknown", "Cause": '""'}, "Lambda.Unknown, no cause given."),
        ({"Error": "Lambda.Unknown", "Cause": ""}, "Lambda.Unknown, no cause given."),
        ({"Error": "Lambda.Unknown", "Cause": "null"}, "Lambda.Unknown, no cause given."),
        (  # the handler never ran: not a death, said as it is
            {"Error": "Runtime.ImportModuleError", "Cause": json.dumps(NOT_IMPORTED)},
            "Runtime.ImportModuleError: Unable to import module 'app': No module.",
        ),
    ],
    ids=["killed", "quoted-empty", "empty", "null", "import-error"],
)
def test_explain_says_a_killed_prove_readers_died_and_where_the_canary_is(s3, run_bucket, error, said):
    """A ProveReaders killed with its canary set aside: the Cause says the Lambda died and where the
    copy is; an empty or null Cause (no answer at all) is never shown as `""`."""
    from report.explain import explain

    from batch_job.records import CanaryObject, CanaryRecord, CanaryStatus, ReadersCheck
    from batch_job.runfolder import RunFolder
    from workflow.events import FailureEvent

    run = RunFolder(parse_location(f"s3://{run_bucket}/runs/x/"))
    aside = CanaryObject("data/a.json", "e", 3, "runs/x/canary/data/a.json", "f")
    run.write_readers_check(ReadersCheck("x", canary=CanaryRecord(CanaryStatus.SET_ASIDE, "now", [aside])))
    plan = a_plan(run.uri, "i", "a/", "s3://d/data/a/")
    event = FailureEvent(execution="x", mode="compress", state="ProveReaders", plan=plan, error=error)
    text = explain(event)["cause"]
    assert text.startswith(f"ProveReaders failed. {said}") and '""' not in text and "None" not in text, text
    assert f"The canary is still deleted: restore data/a.json from s3://{run_bucket}/runs/x/canary/" in text, text


@pytest.mark.parametrize("path", sorted((ROOT / "events").glob("*.json")), ids=lambda p: p.name)
def test_the_sample_execution_inputs_are_valid(path):
    """events/ holds the inputs the README starts runs with: each is what Plan accepts."""
    from workflow.events import ExecutionInput

    body = json.loads(path.read_text())
    parsed = ExecutionInput.model_validate(body)
    assert parsed.model_dump(exclude_defaults=True) == body


def test_a_run_started_before_an_update_is_still_understood():
    """A running execution keeps its state machine's definition while a stack update replaces the
    Lambdas: the events' renamed fields still take the names an earlier release's machines send."""
    from pydantic import ValidationError

    from workflow.boundary import PlanResult, RunSummary
    from workflow.events import FailureEvent, ProveReadersEvent, RefreshEvent, RunEndEvent, SetCompressedEvent

    events = {
        SetCompressedEvent: {"index": "genes", "prefix": "genes/"},
        RefreshEvent: {"action": "check"},
        ProveReadersEvent: {"refreshMode": "hook"},
    }
    for model, rest in events.items():
        for key in ("runFolder", "run"):
            event = {key: "s3://runs/runs/x/", "execution": "x", "compressed": True, **rest}
            assert model.model_validate(event).run_folder == "s3://runs/runs/x/", (model, key)
    run = {"run": "s3://runs/runs/x/", "execution": "x", "compressed": True}
    for key in ("refreshMode", "refresh"):
        assert ProveReadersEvent.model_validate({**run, key: "hook"}).refresh_mode == RefreshMode.HOOK
    failed = {"execution": "x", "mode": "compress", "error": {"Error": "States.Timeout"}}
    for key in ("state", "step"):
        assert FailureEvent.model_validate({**failed, key: "Verify"}).state == "Verify"
    with pytest.raises(ValidationError, match="stat"):  # and nothing else: a misspelt key is still refused
        FailureEvent.model_validate({**failed, "state": "Verify", "stat": "Verify"})

    # Plan's result in such a run's $.plan, and the output of a run that ended before the update (bgz
    # watch, Notify, a bulk report), name the run folder "run".
    plan = a_plan("s3://runs/runs/x/", "genes", "genes/", "s3://data/genes/")
    older = {("run" if key == "runFolder" else key): value for key, value in plan.items()}
    assert PlanResult.from_json(older) == PlanResult.from_json(plan)
    assert RunEndEvent(execution="x", mode="compress", plan=older).run_folder().uri == "s3://runs/runs/x/"
    partial = {"run": "s3://runs/runs/x/", "index": "genes"}  # a plan of a release before that, not parsed
    assert RunEndEvent(execution="x", mode="compress", plan=partial).run_folder().uri == "s3://runs/runs/x/"
    assert RunSummary.from_json(None) is None and RunSummary.from_json(["run"]) is None, "not a summary"
    summary = {"mode": "compress", "index": "genes", "prefix": "genes/", "files": 2, "bytesUncompressed": 9}
    summary |= {"bytesCompressed": 3, "objectsDeleted": 2, "readersProven": True}
    assert RunSummary.from_json({**summary, "run": "s3://r/runs/x/"}) == RunSummary.from_json(
        {**summary, "runFolder": "s3://r/runs/x/"}
    )
    assert RunSummary.from_json(summary) is None, "without either name it is not a summary"


def test_bgz_s_run_input_is_what_plan_takes():
    """bgz builds an index run's input as a RunInput; Plan checks it as ExecutionInput. Their fields
    are one list (ExecutionInput has the bulk machine's two more), and what bgz sends, Plan reads back."""
    from workflow.boundary import RunInput
    from workflow.events import ExecutionInput

    taken = {field.alias or name for name, field in ExecutionInput.model_fields.items()}
    bulk_only = {"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID", "bulkConcurrency"}
    assert taken == set(RunInput.json_keys()) | bulk_only
    typed = RunInput(index="genes", prefix="genes/", shards=3, level=9)
    assert typed.to_json() == {"index": "genes", "prefix": "genes/", "shards": 3, "level": 9}
    parsed = ExecutionInput.model_validate(typed.to_json())
    assert (parsed.index, parsed.prefix, parsed.shards, parsed.level) == ("genes", "genes/", 3, 9)
    left_to_plan = RunInput(index="genes", prefix="genes/")
    assert left_to_plan.to_json() == {"index": "genes", "prefix": "genes/"}, "unset fields are not sent"
    parsed = ExecutionInput.model_validate(left_to_plan.to_json())
    assert (parsed.shards, parsed.level) == (None, -1)


@pytest.mark.parametrize(
    ("prefix", "said"),
    [("genes", "must end with '/'"), ("", "prefix is empty"), ("a//b/", "empty, '.' or '..' path segment")],
)
def test_a_bulk_runs_explicit_prefix_is_checked_as_plan_checks_one(prefix, said):
    """SelectIndexes refuses a malformed prefix of an explicit list before any index run starts,
    with the words Plan uses for one run's."""
    from pydantic import ValidationError

    from workflow.events import BulkInput, ExecutionInput

    for model, body in (
        (BulkInput, {"mode": "compress", "indexes": [{"index": "genes", "prefix": prefix}]}),
        (ExecutionInput, {"index": "genes", "prefix": prefix}),
    ):
        with pytest.raises(ValidationError) as refused:
            model.model_validate(body)
        (error,) = refused.value.errors()
        assert error["type"] == "value_error" and said in error["msg"], error
        assert error["loc"][-1] == "prefix", error
    accepted = BulkInput.model_validate({"mode": "compress", "indexes": [{"index": "g", "prefix": "g/"}]})
    assert accepted.indexes[0].prefix == "g/"


def test_every_lambda_event_model_refuses_unknown_fields():
    """A misspelt field in a state's payload is an error, never silently ignored: every model of
    workflow/events.py, and of the selftest's event, refuses what it does not know."""
    from plan.selftest import SelfTestEvent
    from pydantic import BaseModel

    from workflow import events

    models = [m for m in vars(events).values() if isinstance(m, type) and issubclass(m, BaseModel)]
    models = [m for m in models if m is not BaseModel]
    assert len(models) == 11, [m.__name__ for m in models]
    for model in (*models, SelfTestEvent):
        assert model.model_config.get("extra") == "forbid", model.__name__


def test_notify_says_a_bulk_runs_table_and_a_timeout_in_plain_words():
    from notify.app import message

    from workflow.boundary import BulkSummary

    table = "compress of 2 indexes: 1 succeeded, 0 failed, 1 skipped\na a/: SUCCEEDED, 5 files"
    subject, body = message(
        {
            "name": "bulk-x",
            "status": "SUCCEEDED",
            "stateMachineArn": "arn:aws:states:r:1:stateMachine:s-bulk",
            "output": json.dumps(
                BulkSummary(
                    mode="compress", converted=1, failed=0, skipped=1, table=table, report="s3://r/runs/bulk-x/"
                ).to_json()
            ),
        }
    )
    assert subject == "bgzip-workflow: bulk-x SUCCEEDED" and body == f"Run bulk-x of s-bulk SUCCEEDED.\n\n{table}"
    subject, body = message(
        {"name": "n", "status": "TIMED_OUT", "stateMachineArn": "arn:aws:states:r:1:stateMachine:s-compress"}
    )
    assert subject.endswith("n TIMED_OUT") and "no error given: no cause given" in body and "bgz logs n" in body
    subject, _ = message({"name": "x" * 80, "status": "SUCCEEDED", "stateMachineArn": "a:b"})
    assert len(subject) == 99, "SNS refuses e-mail subjects of 100 characters or more"


def test_index_runs_get_unique_valid_names_whatever_the_index_names():
    from select_indexes.app import child_names

    from workflow.events import MAX_BULK_NAME

    bulk = "b" * MAX_BULK_NAME
    indexes = ["a" * 40 + "1", "a" * 40 + "2", "x.y", "x-y", "é"]
    names = child_names(indexes, bulk)
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,80}", n) and n.endswith(bulk) for n in names), names
    assert child_names(["genes"], "bulk-compress-20261129T000000Z") == ["genes-bulk-compress-20261129T000000Z"]


def _ecs_service(deployments: list[dict]):
    """moto's ECS with one service whose deployments are as given (as ECS would show them mid-rollout)."""
    import boto3
    from moto.backends import get_backend

    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="bio")
    ecs.register_task_definition(family="bio", containerDefinitions=[{"name": "b", "image": "b", "memory": 512}])
    ecs.create_service(cluster="bio", serviceName="bioindex", taskDefinition="bio", desiredCount=2)
    get_backend("ecs")["123456789012"]["us-east-1"].services["bio:bioindex"].deployments = deployments


@pytest.mark.parametrize(
    ("shown", "outcome"),
    [
        ([("ours", "PRIMARY", "COMPLETED", 2, 0)], "done"),
        ([("ours", "PRIMARY", "IN_PROGRESS", 1, 0), ("old", "ACTIVE", "COMPLETED", 1, -60)], "waiting"),
        ([("ours", "PRIMARY", "COMPLETED", 2, 0), ("old", "ACTIVE", "COMPLETED", 1, -60)], "waiting"),
        ([("newer", "PRIMARY", "COMPLETED", 2, 30), ("ours", "ACTIVE", "COMPLETED", 0, 0)], "done"),
        ([("old", "PRIMARY", "COMPLETED", 2, -60), ("ours", "ACTIVE", "FAILED", 0, 0)], "no longer the primary"),
        ([("ours", "PRIMARY", "FAILED", 0, 0)], "circuit breaker"),
        ([("ours", "PRIMARY", None, 2, 0)], "done"),
    ],
    ids=["completed", "in-progress", "old-tasks-left", "newer-deployment", "rolled-back", "failed", "no-rollout-state"],
)
def test_the_ecs_refresh_is_done_only_when_every_task_started_after_the_flag(monkeypatch, shown, outcome):
    """RefreshReaders' check against ECS's own answers (moto's ECS API): a deployment this run started,
    or a newer one, completed with all its tasks and no older deployment running any."""
    from datetime import UTC, datetime, timedelta

    from moto import mock_aws
    from refresh_readers.app import RefreshFailed, _ecs_waiting

    from batch_job.records import Refresh
    from shared import config

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    started = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    deployments = []
    for name, status, rollout, running, offset in shown:
        deployment = {"id": f"ecs-svc/{name}", "status": status, "desiredCount": 2, "runningCount": running}
        deployment |= {"pendingCount": 0, "createdAt": started + timedelta(seconds=offset)}
        if rollout:
            deployment |= {
                "rolloutState": rollout,
                "rolloutStateReason": "ECS deployment circuit breaker: tasks failed",
            }
        deployments.append(deployment)
    refresh = Refresh(RefreshMode.ECS_SERVICE, True, "run", started="2026-12-01T10:00:00Z")
    refresh.deployments = {"bioindex": "ecs-svc/ours"}
    settings = config.ReaderRefresh(RefreshMode.ECS_SERVICE, "bio", ("bioindex",))
    with mock_aws():
        _ecs_service(deployments)
        if outcome in ("done", "waiting"):
            assert bool(_ecs_waiting(settings, refresh)) is (outcome == "waiting")
        else:
            with pytest.raises(RefreshFailed, match=outcome):
                _ecs_waiting(settings, refresh)


@pytest.mark.parametrize("machine", ["compress", "rollback"])
def test_each_lambda_tasks_result_selector_is_its_answers_record(machine):
    """What a Lambda answers is a boundary record, and its task keeps every field of it (a field the
    Lambda stops answering fails the state, where a hand-written selector would drop it silently)."""
    from workflow import states
    from workflow.boundary import Explanation, FlagReadBack, OldAnswers, ReadersProof, RefreshProgress

    found = json.loads((ROOT / "statemachine" / f"{machine}.asl.json").read_text())["States"]
    flag = states.SET_COMPRESSED if machine == "compress" else states.SET_UNCOMPRESSED
    records = {
        flag: FlagReadBack,
        f"{states.REFRESH_READERS} ECS deployment": RefreshProgress,
        f"{states.REFRESH_READERS} ECS check": RefreshProgress,
        f"{states.RELOAD_OLD_FLAG} ECS check": RefreshProgress,
        states.PROVE_READERS: ReadersProof,
        states.PROVE_OLD_ANSWERS: OldAnswers,
    }
    for state, record in records.items():
        assert found[state]["ResultSelector"] == {f"{k}.$": f"$.Payload.{k}" for k in record.json_keys()}, state
    explained = found[states.EXPLAIN_FAILURE]["ResultSelector"]
    assert explained == {"Error.$": "$.Payload.error", "Cause.$": "$.Payload.cause"}
    assert Explanation.json_keys() == ["error", "cause"]
    proof = ReadersProof(checked=True, proven=True, reason="", canary_objects=["a.json"], queries=3)
    assert ReadersProof.parse(proof.to_json()) == proof


def test_the_boundary_records_round_trip_and_say_sizes_one_way():
    """Plan's result, its preview and the run summary as the state machines carry them (camelCase
    JSON), and back; an output that is not a run summary (a bulk run's) is None, not an error."""
    from batch_job.errors import BadInput
    from workflow.boundary import BulkSummary, PlanPreview, PlanResult, RunSummary, files_sentence

    plan = PlanResult.from_json(a_plan("s3://r/runs/x/", "genes", "genes/", "s3://d/genes/"))
    assert PlanResult.from_json(plan.to_json()) == plan and plan.index == "genes"
    compress = json.loads((ROOT / "statemachine" / "compress.asl.json").read_text())
    selected = compress["States"]["Plan"]["ResultSelector"]
    assert selected == {f"{key}.$": f"$.Payload.{key}" for key in plan.to_json()}, "the ASL keeps all of it"
    with pytest.raises(BadInput, match="Plan's result is malformed"):
        PlanResult.from_json({"run": "s3://r/runs/x/"})
    preview = PlanPreview(
        dry_run=True,
        target="s3://d/genes/",
        row={"id": 3},
        files=5,
        bytes=736_650,
        shards=1,
        sampled_keys=["genes/a.json"],
        locked="",
        stale_lock="",
    )
    assert preview.to_json()["dryRun"] is True and preview.to_json()["staleLock"] == ""
    assert PlanPreview.parse(preview.to_json()) == preview
    older = {("samples" if key == "sampledKeys" else key): value for key, value in preview.to_json().items()}
    assert PlanPreview.parse(older) == preview, "a stack of the release before answers `samples`"
    assert PlanPreview.parse(plan.to_json()) is None, "Plan's result of a run is not a preview"
    summary = RunSummary(
        mode="compress",
        index="genes",
        prefix="genes/",
        run_folder="s3://r/runs/x/",
        files=5,
        bytes_uncompressed=736_650,
        bytes_compressed=117_250,
        objects_deleted=5,
        readers_proven=True,
    )
    body = summary.to_json()
    assert body["bytesUncompressed"] == 736_650 and body["ratio"] == 0.1592 and body["readersProven"] is True
    assert RunSummary.from_json(body) == summary
    bulk = BulkSummary(mode="compress", converted=2, failed=0, skipped=0, table="...", report="s3://r/b.txt")
    assert BulkSummary.from_json(bulk.to_json()) == bulk and RunSummary.from_json(bulk.to_json()) is None
    assert BulkSummary.from_json(body) is None, "a run's summary is not a bulk run's"
    assert summary.sentence() == "5 files, 736.65 kB uncompressed, 117.25 kB compressed (15.9%)"
    assert files_sentence(0, 0, 0) == "0 files, 0 B uncompressed, 0 B compressed", "no ratio of nothing"
