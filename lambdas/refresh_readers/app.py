"""RefreshReaders states (and ReloadOldFlag's): make every bioindex process load the flag just set,
by SetCompressed or, after the new side proved unreadable, set back by ProveReaders.

A bioindex process loads `__Indexes` when it starts and keeps it; a request reaches whichever of its
processes is idle, so no series of requests is sure to reach them all (measured against the real
server: docs/safety.md). A
process started after the flag was committed is sure to serve it. So the refresh restarts them:

- `restart` + `check` (ReaderRefresh=ecs-service): force a new deployment of each named ECS service,
  then, polled by the state machine's Wait loop, report whether every service's new deployment has
  completed with no other deployment left running tasks. A failed or replaced deployment, or one not
  done by the stack's timeout, fails the step: both copies of the data are still there.
- `await` (ReaderRefresh=confirm): record the task token that `bgz confirm` resumes the run with, and
  tell the operator exactly what to do (the notification topic, and `bgz watch`).

The `hook` mode invokes the operator's own Lambda directly from the state machine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_job.locations import parse_location
from batch_job.records import Refresh, RefreshMode, now, parse_time
from batch_job.runfolder import RunFolder
from shared import config
from workflow.boundary import RefreshProgress
from workflow.events import RefreshEvent

logger = Logger()
tracer = Tracer()

SUBJECT_LIMIT = 99  # SNS: subjects under 100 characters


class RefreshFailed(Exception):
    """An ECS deployment failed, was replaced, or a named service does not exist: the processes may
    still serve the old flag. Nothing was deleted; both copies of the data are kept."""


class RefreshTimedOut(Exception):
    """The ECS deployments did not complete within the stack's ReaderRefreshTimeoutSeconds."""


def _ecs_deployments(settings: config.ReaderRefresh) -> dict[str, str]:
    """Force a new deployment of every service; return each service's new deployment id."""
    if not settings.ecs_cluster or not settings.ecs_services:
        raise RefreshFailed("ReaderRefresh=ecs-service needs BioindexEcsCluster and BioindexEcsServices")
    ecs = boto3.client("ecs")
    started = {}
    for service in settings.ecs_services:
        try:
            described = ecs.update_service(cluster=settings.ecs_cluster, service=service, forceNewDeployment=True)
        except ecs.exceptions.ClientError as exc:
            raise RefreshFailed(f"cannot start a new deployment of ECS service {service}: {exc}") from exc
        primary = [d for d in described["service"].get("deployments", []) if d.get("status") == "PRIMARY"]
        if not primary:
            raise RefreshFailed(f"ECS service {service} shows no PRIMARY deployment after the update")
        started[service] = primary[0]["id"]
        logger.info("new deployment", extra={"service": service, "deployment": primary[0]["id"]})
    return started


def _ecs_waiting(settings: config.ReaderRefresh, refresh: Refresh) -> list[str]:
    """What each service still waits for; [] when every one's new deployment is the only one, completed,
    with all its tasks running. Raises RefreshFailed when one cannot complete."""
    ecs = boto3.client("ecs")
    names = list(refresh.deployments)
    services, failures = [], []
    for start in range(0, len(names), 10):  # DescribeServices takes at most 10
        found = ecs.describe_services(cluster=settings.ecs_cluster, services=names[start : start + 10])
        services += found["services"]
        failures += found.get("failures", [])
    for failure in failures:
        raise RefreshFailed(f"ECS service {failure.get('arn')}: {failure.get('reason')}")
    started = parse_time(refresh.started)
    waiting = []
    for service in services:
        name = service["serviceName"]
        ours = refresh.deployments.get(name) or refresh.deployments.get(service["serviceArn"])
        deployments = service.get("deployments", [])
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        if primary is None:
            raise RefreshFailed(f"ECS service {name} has no PRIMARY deployment: its processes may serve the old flag")
        if primary["id"] != ours and primary["createdAt"] < started:
            raise RefreshFailed(
                f"the new deployment {ours} of ECS service {name} is no longer the primary one ({primary['id']}, "
                "older than this run's flag, is): its processes may still serve the old flag"
            )
        # A newer deployment than ours (another run's, a circuit breaker's rollback) also starts every
        # task after the flag was committed: its completion is as good.
        # Services without rollout states (a Classic Load Balancer's) are judged by the counts below alone.
        state = primary.get("rolloutState", "COMPLETED")
        if state == "FAILED":
            raise RefreshFailed(
                f"the new deployment {primary['id']} of ECS service {name} failed: "
                f"{primary.get('rolloutStateReason', '')}"
            )
        old = [d["id"] for d in deployments if d is not primary and d.get("runningCount", 0) + d.get("pendingCount", 0)]
        running, desired = primary.get("runningCount", 0), primary.get("desiredCount", 0)
        if state != "COMPLETED" or old or running < desired:
            waiting.append(
                f"{name}: deployment {state.lower()}, {running} of {desired} new tasks running"
                + (f", {len(old)} older deployments still running tasks" if old else "")
            )
    return waiting


def _ask(refresh: Refresh, index: str, prefix: str, revert: bool) -> str:
    """What the operator must do, in the words the notification and `bgz watch` show."""
    flag = str(refresh.compressed).lower()
    why = " (set back: the bioindex could not read the converted files)" if revert else ""
    return (
        f"Run {refresh.execution} set the bioindex flag of index {index!r} prefix {prefix!r} to compressed={flag}"
        f"{why}. Restart every process of the bioindex serving it (every worker of every host or task), so that "
        f"each loads the new flag; then type: bgz confirm {refresh.execution}"
    )


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=RefreshEvent)
def handler(event: RefreshEvent, context: LambdaContext) -> dict:
    run = RunFolder(parse_location(event.run_folder))
    settings = config.reader_refresh()
    refresh = run.read_refresh(event.revert)
    if event.action == "restart":
        ours = refresh is not None and (refresh.execution, refresh.compressed) == (event.execution, event.compressed)
        if not ours or refresh.done_at or not refresh.deployments:  # a retry reuses the deployments it started
            refresh = Refresh(RefreshMode.ECS_SERVICE, event.compressed, event.execution)
            refresh.deployments = _ecs_deployments(settings)
            run.write_refresh(refresh, event.revert)
        return RefreshProgress(done=False, waiting=f"{len(refresh.deployments)} ECS deployments started").to_json()
    if event.action == "check":
        if refresh is None or (refresh.execution, refresh.compressed) != (event.execution, event.compressed):
            raise RefreshFailed(f"no {Refresh.NAME} of this execution in {run.uri}: no deployment was started")
        waiting = _ecs_waiting(settings, refresh)
        if not waiting:
            refresh.done_at = now()
            run.write_refresh(refresh, event.revert)
            logger.info("every process restarted", extra={"deployments": refresh.deployments})
            return RefreshProgress(done=True, waiting="").to_json()
        started = parse_time(refresh.started)
        if datetime.now(UTC) > started + timedelta(seconds=settings.timeout_seconds):
            raise RefreshTimedOut(
                f"the ECS deployments did not complete within {settings.timeout_seconds} s "
                f"(ReaderRefreshTimeoutSeconds): {'; '.join(waiting)}"
            )
        logger.info("waiting for the deployments", extra={"waiting": waiting})
        return RefreshProgress(done=False, waiting="; ".join(waiting)).to_json()
    # await: the run pauses until `bgz confirm` sends this token back.
    plan = run.read_plan()
    refresh = Refresh(RefreshMode.CONFIRM, event.compressed, event.execution, task_token=event.task_token)
    refresh.asked = _ask(refresh, plan.index, plan.prefix, event.revert)
    run.write_refresh(refresh, event.revert)
    topic = config.notify_topic()
    if topic:
        subject = f"bgzip-workflow: {event.execution} waits for a bioindex restart"[:SUBJECT_LIMIT]
        boto3.client("sns").publish(TopicArn=topic, Subject=subject, Message=refresh.asked)
    logger.info("waiting for the operator", extra={"asked": refresh.asked})
    return {"asked": refresh.asked}
