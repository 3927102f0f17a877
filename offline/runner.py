"""What the offline stack's Batch jobs and Lambda invokes run: each in a fresh process forked from a
zygote that has the libraries imported (offline/warm_start.py), with the job definition's or the
function's environment; their output goes to moto's CloudWatch Logs, as on AWS.

moto_hooks.py hands each submitted job and each invoke to the Runner; tests use its hooks
(`before_job`, `before_invoke`, `restart_service`) to change the world between steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from offline import recorder
from offline.warm_start import Zygote

ROOT = Path(__file__).resolve().parent.parent
REGION = recorder.REGION
# AWS Fargate's vCPU quotas, On-Demand and Spot, at AWS's published defaults.
FARGATE_QUOTAS = {"L-3032A538": 4000.0, "L-36FBB829": 4000.0}


@dataclass
class Runner:
    """Runs what the offline stack's jobs and functions do, and keeps their logs."""

    env: dict[str, str]
    job_logs: list[dict] = field(default_factory=list)
    lambda_logs: list[dict] = field(default_factory=list)
    # Called with the job name before a job runs: lets a test play a concurrent writer.
    before_job: Callable[[str], None] | None = None
    # Called with the function name before a Lambda runs: lets a test change the world between states.
    before_invoke: Callable[[str], None] | None = None
    # Function name -> its CloudWatch log group (the template's LoggingConfig), set by deploy.
    log_groups: dict[str, str] = field(default_factory=dict)
    # Called with an ECS service's name when a new deployment of it starts: replaces its processes,
    # returning when every one has been replaced (raising if the deployment fails).
    restart_service: Callable[[str], None] | None = None
    # The account's AWS Fargate quotas (Service Quotas code -> vCPUs), as `bgz selftest` reads them.
    quotas: dict[str, float] = field(default_factory=lambda: dict(FARGATE_QUOTAS))
    _started: Zygote | None = None
    _logs: object = None
    _zygote_lock: threading.Lock = field(default_factory=threading.Lock)

    def _log(self, group: str, stream: str, text: str) -> None:
        """Write a process's output to CloudWatch Logs (moto's), one event per line, as AWS does."""
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            return
        if self._logs is None:  # one client for every run (thread-safe; making one costs 15 ms)
            self._logs = boto3.client("logs", region_name=REGION, endpoint_url=self.env["AWS_ENDPOINT_URL"])
        logs = self._logs
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in lines]
        for start in range(0, len(events), 1000):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start : start + 1000])

    def run_job(self, job) -> None:
        if self.before_job is not None:
            self.before_job(job.job_name)
        container = job.job_definition.container_properties or {}
        params = {**job.job_definition.parameters, **job.parameters}
        command = [
            params.get(arg[len("Ref::") :], arg) if arg.startswith("Ref::") else arg
            for arg in job.container_overrides.get("command") or container["command"]
        ]
        env = dict(self.env)
        env.update({e["name"]: e["value"] for e in container.get("environment", [])})
        env.update({e["name"]: e["value"] for e in job.container_overrides.get("environment", [])})
        env["AWS_BATCH_JOB_ID"] = job.job_id
        log_options = container.get("logConfiguration", {}).get("options", {})
        job.log_stream_name = f"{log_options.get('awslogs-stream-prefix', 'job')}/default/{job.job_id}"
        env[recorder.COMPONENT] = f"job-definition:{job.job_definition.name}"
        if "index" in job.array_properties:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.array_properties["index"])
        with self._files("log") as (log,):  # stdout and stderr in one log, as awslogs keeps them
            runtime = ROOT / "offline" / "job_runtime.py"
            code = self._zygote().run(runtime, command, env, ROOT, os.devnull, log, log).code
            output = Path(log).read_text(errors="replace")
        self.job_logs.append({"job": job.job_name, "id": job.job_id, "command": command, "exit": code, "log": output})
        if "awslogs-group" in log_options:
            self._log(log_options["awslogs-group"], job.log_stream_name, output)
        job.exit_code = code
        if code:
            # What AWS Batch says for any non-zero exit: nothing of what the container printed.
            job.job_stopped_reason = "Essential container in task exited"

    def invoke(self, function, body: bytes) -> tuple[bytes, bool]:
        if self.before_invoke is not None:
            self.before_invoke(function.function_name)
        env = dict(self.env)
        env.update(function.environment_vars)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
                recorder.COMPONENT: f"function:{function.function_name}",
                "FUNCTION_ARN": function.function_arn,
                "POWERTOOLS_TRACE_DISABLED": "true",
                # The function's package, and the engine and the boundary as EngineLayer and WorkflowLayer bring them.
                "PYTHONPATH": f"{ROOT / 'lambdas'}{os.pathsep}{ROOT}",
            }
        )
        with self._files("event", "result", "log") as (event, result, log):
            Path(event).write_bytes(body or b"{}")
            runtime = ROOT / "offline" / "lambda_runtime.py"
            started = time.monotonic()
            ended = self._zygote().run(runtime, [function.handler], env, ROOT / "lambdas", event, result, log)
            duration = time.monotonic() - started
            payload, text = Path(result).read_bytes(), Path(log).read_text(errors="replace")
        # The line Lambda ends each invoke's log with (the tests read Max Memory Used from it).
        text += (
            f"REPORT Duration: {duration * 1000:.2f} ms\tMemory Size: {function.memory_size} MB\t"
            f"Max Memory Used: {ended.max_rss // 2**20} MB\n"
        )
        if ended.code != 0 and not payload.strip():
            payload = _runtime_exit(ended.code)
        self.lambda_logs.append({"function": function.function_name, "log": text})
        if function.function_name in self.log_groups:
            stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
            self._log(self.log_groups[function.function_name], stream, text)
        return payload, ended.code != 0

    def _zygote(self) -> Zygote:
        with self._zygote_lock:
            if self._started is None:
                self._started = Zygote()
            return self._started

    @contextlib.contextmanager
    def _files(self, *names: str) -> Iterator[tuple[str, ...]]:
        """Paths for one run's standard streams, removed after it."""
        with tempfile.TemporaryDirectory(prefix="bgzip-run-") as folder:
            paths = tuple(str(Path(folder) / name) for name in names)
            for path in paths:
                Path(path).touch()
            yield paths

    def close(self) -> None:
        if self._started is not None:
            self._started.close()
            self._started = None


def _runtime_exit(code: int) -> bytes:
    """What Lambda answers when its runtime dies without an answer (killed, out of memory, os._exit)."""
    how = f"signal: {signal.strsignal(-code).lower()}" if code < 0 else f"exit status {code}"
    message = f"RequestId: {uuid.uuid4()} Error: Runtime exited with error: {how}"
    return json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message}).encode()
