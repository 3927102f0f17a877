"""The stack, offline: a moto server on loopback in which `deploy` creates template.yaml's
resources; its state machines run the real ASL files, whose Batch jobs run the real `bgzip-job` and
whose Lambda invokes run the real handlers, all against moto's S3 (see offline/__init__.py's map).

What comes from the repository, unchanged: statemachine/*.asl.json, the handlers and their Handler
strings and environment, and each job definition's command, parameters and environment from
template.yaml. What moto stands in for: the AWS APIs, with the hooks of offline/moto_hooks.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import zipfile
from pathlib import Path

import boto3
import requests
from moto.server import ThreadedMotoServer

from offline import deployer, recorder
from offline.deployer import REGION, DeployedStack
from offline.moto_hooks import install_hooks
from offline.runner import ROOT, Runner

MOTO_CONFIG = {
    "batch": {"use_docker": False},
    "lambda": {"use_docker": False},
    "stepfunctions": {"execute_state_machine": True},
}


class OfflineAWS:
    """A moto server on loopback with the hooks installed; `deploy` creates the stack in it."""

    def __init__(self, port: int = 0) -> None:
        """On `port` of loopback (default: a free one)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "MOTO_PORT": str(self.port),
        }
        # Every AWS call of the stack's jobs, Lambdas and state machines (offline/recorder.py).
        self.calls = Path(tempfile.mkdtemp(prefix="bgzip-calls-"))
        self.runner = Runner({**os.environ, **self.env, "PYTHONPATH": str(ROOT), recorder.CALL_LOG: str(self.calls)})
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)
        self._clients: dict[str, object] = {}

    def start(self) -> OfflineAWS:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        os.environ.update(self.env)
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            os.environ.pop(name, None)
        self._server.start()
        requests.post(f"{self.endpoint}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
        install_hooks(self.runner)
        recorder.install(self.calls)
        return self

    def stop(self) -> None:
        self._server.stop()
        self.runner.close()
        shutil.rmtree(self.calls, ignore_errors=True)  # a few MB a test run: never left behind in /tmp

    def client(self, service: str):
        """One client per service, shared (boto3's clients are thread-safe; making one costs 15 ms)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)
        return self._clients[service]

    def create_function(
        self,
        name: str,
        handler: str,
        variables: dict[str, str],
        timeout: int = 60,
        role: str | None = None,
        memory: int = 128,
    ) -> dict:
        """A Lambda function whose invokes run `handler` (found from lambdas/, or the repository root)."""
        if role is None:
            trust = json.dumps({"Version": "2012-10-17", "Statement": []})
            role = self.client("iam").create_role(RoleName=f"{name}-offline", AssumeRolePolicyDocument=trust)["Role"]
            role = role["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as zf:
            zf.writestr("README", "the offline runner loads the handler from lambdas/")
        return self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=handler,
            Code={"ZipFile": code.getvalue()},
            Environment={"Variables": variables},
            Timeout=timeout,
            MemorySize=memory,
        )

    def deploy(
        self, stack: str, data_bucket: str, parameters: dict[str, str], template: dict | None = None
    ) -> DeployedStack:
        """Create the template's resources in moto (offline/deployer.py)."""
        return deployer.deploy(self, stack, data_bucket, parameters, template)

    def run(self, machine_arn: str, execution_input: dict, name: str, on_state=None, timeout: float = 300) -> dict:
        """Start an execution and wait for its end; `on_state(name)` is called as each state is entered."""
        sfn = self.client("stepfunctions")
        arn = sfn.start_execution(stateMachineArn=machine_arn, name=name, input=json.dumps(execution_input))[
            "executionArn"
        ]
        return self.wait(arn, on_state, timeout)

    def wait(self, execution_arn: str, on_state=None, timeout: float = 300) -> dict:
        """DescribeExecution's answer once the execution has ended, with its history as "history".

        While it runs, the execution is watched in moto's backend in this process, as DescribeExecution
        and GetExecutionHistory would show it, without their HTTP and serialization: four tests
        polling a history of hundreds of events through the API kept a core busy. The status every
        tenth of a second; the history, copied whole, every half second."""
        sfn = self.client("stepfunctions")
        execution = _moto_execution(execution_arn)
        deadline = time.monotonic() + timeout
        seen = 0
        read = 0.0
        while True:
            # Status first: a finished execution's history is read after it is complete.
            ended = execution.exec_status != "RUNNING"
            if on_state and (ended or time.monotonic() - read >= 0.5):
                read = time.monotonic()
                events = execution.to_history_output()["events"]
                for event in events[seen:]:
                    if event["type"].endswith("StateEntered"):
                        on_state(event["stateEnteredEventDetails"]["name"])
                seen = len(events)
            if ended:
                _settled(execution)
                result = sfn.describe_execution(executionArn=execution_arn)
                result["history"] = sfn.get_execution_history(executionArn=execution_arn)["events"]
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout} s")
            time.sleep(0.1)


def _moto_execution(execution_arn: str):
    """moto's own object for an execution it started (arn:aws:states:REGION:ACCOUNT:execution:...)."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    parts = execution_arn.split(":")
    try:
        return stepfunctions_parser_backends[parts[4]][parts[3]].describe_execution(execution_arn)
    except Exception as exc:
        raise ValueError(f"no execution {execution_arn} in the offline stack: {exc}") from exc


def _settled(execution) -> None:
    """moto sets an ended execution's status a moment before its output (SUCCEEDED) or its error
    (FAILED): wait for that moment to pass."""
    field = "output" if execution.exec_status == "SUCCEEDED" else "error" if execution.exec_status == "FAILED" else ""
    deadline = time.monotonic() + 5
    while field and getattr(execution, field) is None and time.monotonic() < deadline:
        time.sleep(0.01)
