"""The ASL files come from statemachine/build.py: the committed files must be what it writes, the
states that run a step or a Lambda must be the names in workflow/states.py, and what each Lambda
state sends must be what its handler's event model takes."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from batch_job.records import Mode
from workflow import states

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "statemachine" / "build.py"
ASL = {
    Mode.COMPRESS: ROOT / "statemachine" / "compress.asl.json",
    Mode.ROLLBACK: ROOT / "statemachine" / "rollback.asl.json",
}
RUNS_SOMETHING = {"Task", "Choice", "Wait"}
FAILED_SUFFIX = " failed"


@pytest.fixture(scope="module")
def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("statemachine_build", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def asl(mode: Mode) -> dict:
    return json.loads(ASL[mode].read_text())


@pytest.mark.parametrize("mode", Mode)
def test_committed_file_is_what_build_writes(build, mode):
    stale = f"{ASL[mode].name} is stale: run python statemachine/build.py and commit it"
    assert asl(mode) == build.definition(mode), stale
    assert ASL[mode].read_text() == build.text(mode), stale  # the same formatting too


def test_committed_bulk_file_is_what_build_writes(build):
    path = ROOT / "statemachine" / "bulk.asl.json"
    assert path.read_text() == build.text(None), f"{path.name} is stale: run python statemachine/build.py"


def test_build_writes_both_files_and_check_names_the_stale_one(build, tmp_path, monkeypatch, capsys):
    files = {mode: tmp_path / path.name for mode, path in ASL.items()}
    monkeypatch.setattr(build, "FILES", files)
    monkeypatch.setattr(build, "BULK_FILE", tmp_path / "bulk.asl.json")

    monkeypatch.setattr(sys, "argv", ["build.py"])
    assert build.main() == 0
    for mode, path in files.items():
        assert path.read_text() == ASL[mode].read_text()

    monkeypatch.setattr(sys, "argv", ["build.py", "--check"])
    assert build.main() == 0
    files[Mode.ROLLBACK].write_text(files[Mode.ROLLBACK].read_text().replace(states.DECOMPRESS, "Unzip"))
    capsys.readouterr()
    assert build.main() == 1
    err = capsys.readouterr().err
    assert files[Mode.ROLLBACK].name in err and files[Mode.COMPRESS].name not in err


@pytest.mark.parametrize("mode", Mode)
def test_states_that_run_something_are_named_in_batch_job_states(mode):
    machine = asl(mode)
    expected = set(states.SEQUENCE[mode]) | set(states.AFTER_UNREADABLE) | {states.SUMMARIZE, states.EXPLAIN_FAILURE}
    assert machine["StartAt"] == states.SEQUENCE[mode][0]

    # Tasks, Choices and Waits, with the Batch helpers (" array job", " job") and the refresh helpers
    # (" hook", " confirmation", ...) taken back to their step state
    running = {states.main_state(name) for name, state in machine["States"].items() if state["Type"] in RUNS_SOMETHING}
    assert running == expected

    # every other state is a "<state> failed" record, or ends the run
    for name, state in machine["States"].items():
        if state["Type"] in RUNS_SOMETHING:
            continue
        if name.endswith(FAILED_SUFFIX):
            assert state["Type"] == "Pass", name
        else:
            assert state["Type"] in {"Succeed", "Fail"}, name


@pytest.mark.parametrize("mode", Mode)
def test_batch_jobs_run_exactly_the_engine_step_states(mode):
    machine = asl(mode)
    batch = {
        states.main_state(name)
        for name, state in machine["States"].items()
        if state["Type"] == "Task" and ":batch:" in state["Resource"]
    }
    assert batch == set(states.SEQUENCE[mode]) & set(states.STATE_STEPS)
    for name, state in machine["States"].items():
        if state["Type"] == "Task" and ":lambda:" in state["Resource"]:
            assert name not in states.STATE_STEPS, name
            payload = state["Parameters"]["Payload"]
            if "mode" in payload:
                assert payload["mode"] == mode.value, name


@pytest.mark.parametrize("mode", Mode)
def test_each_step_records_its_failure_under_its_state_name(mode):
    machine = asl(mode)
    recorded = {}
    for name, state in machine["States"].items():
        if state["Type"] == "Pass":
            failed_in = state["Parameters"]["state"]
            assert name == failed_in + FAILED_SUFFIX
            assert state["Next"] == states.EXPLAIN_FAILURE
            recorded[name] = failed_in
    assert set(recorded.values()) == set(states.SEQUENCE[mode]) | set(states.AFTER_UNREADABLE)

    # and each step's Tasks (a Lambda, or the Batch jobs) catch into that step's own record - but
    # ProveReaders, which goes to ReloadOldFlag first when it had to set the flag back
    for name, state in machine["States"].items():
        step = states.main_state(name)
        if state["Type"] == "Task" and step in recorded.values():
            nexts = [catch["Next"] for catch in state["Catch"]]
            if step == states.PROVE_READERS:
                assert nexts == [states.RELOAD_OLD_FLAG, step + FAILED_SUFFIX], name
                assert state["Catch"][0]["ErrorEquals"] == ["ConvertedFilesUnreadable"]
            else:
                assert nexts == [step + FAILED_SUFFIX], name


def _lambda_payloads(states_: dict) -> list[tuple[str, str, dict]]:
    """(state, function substitution, Payload) of every Lambda task, Map iterators included."""
    found = []
    for name, state in states_.items():
        parameters = state.get("Parameters", {})
        if str(state.get("Resource", "")).startswith("arn:aws:states:::lambda:invoke"):
            found.append((name, parameters["FunctionName"], parameters["Payload"]))
        found += _lambda_payloads(state.get("ItemProcessor", {}).get("States", {}))
    return found


def test_the_bulk_machine_starts_each_index_run_with_an_input_plan_takes(build):
    """The Input of the bulk machine's StartExecution: fields of Plan's ExecutionInput, the required
    ones all there (build.py's own check, on the committed file)."""
    from workflow.events import ExecutionInput

    states = json.loads((ROOT / "statemachine" / "bulk.asl.json").read_text())["States"]
    starts = [
        state["Parameters"]["Input"]
        for mapped in states.values()
        for state in mapped.get("ItemProcessor", {}).get("States", {}).values()
        if state.get("Resource", "").startswith("arn:aws:states:::states:startExecution")
    ]
    assert len(starts) == 1
    assert build.taken_by(ExecutionInput, starts[0], "the committed child Input") is starts[0]
    with pytest.raises(ValueError, match=r"leaves out \['prefix'\], which ExecutionInput needs"):
        build.taken_by(ExecutionInput, {k: v for k, v in starts[0].items() if k != "prefix.$"}, "an Input")


def test_every_lambda_payload_is_what_its_handler_s_event_model_takes(build):
    """build.py checks each Payload against its function's event model as it writes it; the committed
    files pass the same check, and every Lambda of the stack is called by some state."""
    files = [*ASL.values(), ROOT / "statemachine" / "bulk.asl.json"]
    called = set()
    for path in files:
        for _, function, payload in _lambda_payloads(json.loads(path.read_text())["States"]):
            assert build.payload_for(function, payload) is payload
            called.add(function)
    assert called == {*build.EVENTS, "${ReaderRefreshHookArn}"}, "every Lambda of the stack is called by some state"


def test_each_event_model_is_the_one_its_function_s_handler_parses(build):
    """build.py checks a state's Payload against EVENTS[function]; that model must be the one the
    handler template.yaml names for the function parses its event with (event_parser or parse)."""
    from offline.cfn_yaml import load_template

    resources = load_template()["Resources"]
    for function, model in build.EVENTS.items():
        logical_id = function.removeprefix("${").removesuffix("Arn}")
        handler = resources[logical_id]["Properties"]["Handler"]
        module = ROOT / "lambdas" / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")
        parsed_with = {
            keyword.value.id
            for node in ast.walk(ast.parse(module.read_text()))
            if isinstance(node, ast.Call)
            for keyword in node.keywords
            if keyword.arg == "model" and isinstance(keyword.value, ast.Name)
        }
        assert model.__name__ in parsed_with, f"{logical_id}'s {handler} parses {parsed_with}, not {model.__name__}"


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (
            {"index.$": "$.plan.index", "prefix": "p/", "compressed": True, "runFolder.$": "$.plan.runFolder"},
            "leaves out",
        ),
        (
            {"index": "i", "prefix": "p/", "compressed": True, "runFolder": "r", "execution": "e", "level": 1},
            r"sends \['level'\], unknown to SetCompressedEvent",
        ),
    ],
)
def test_a_payload_its_lambda_would_refuse_fails_the_build(build, payload, refused):
    """A key the handler does not know, or a field it needs left out, stops build.py: it never reaches
    a deployed machine, where the Lambda would refuse the event mid-run."""
    with pytest.raises(ValueError, match=refused):
        build.payload_for("${SetCompressedFunctionArn}", payload)
