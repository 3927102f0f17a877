"""Notifications: the template's EventBridge rule on the machines' status changes, run in moto's
EventBridge on the event Step Functions sends when a real offline execution ends, and the Notify
Lambda telling an SNS topic (subscribed by a queue, to read what an e-mail would say).

moto's EventBridge delivers to SQS but not to Lambda, so the rule's target here is a queue, and the
event it delivers is handed to the handler.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from offline.cfn_yaml import load_template
from offline.deployer import resolve
from offline.lambda_runtime import Context
from tests.stacks import INDEX, PREFIX


def status_change_event(description: dict) -> dict:
    """The event Step Functions puts on the default bus when an execution ends (AWS's documented shape)."""

    def millis(value) -> int | None:
        return int(value.timestamp() * 1000) if isinstance(value, datetime) else None

    detail = {
        "executionArn": description["executionArn"],
        "stateMachineArn": description["stateMachineArn"],
        "name": description["name"],
        "status": description["status"],
        "startDate": millis(description.get("startDate")),
        "stopDate": millis(description.get("stopDate")),
        "input": description.get("input"),
        "output": description.get("output"),
        "error": description.get("error"),
        "cause": description.get("cause"),
    }
    return {
        "Source": "aws.states",
        "DetailType": "Step Functions Execution Status Change",
        "Detail": json.dumps(detail),
        "Resources": [description["executionArn"]],
        "Time": datetime.now(UTC),
    }


@pytest.fixture
def notify(deployment, monkeypatch):
    """The rule in moto's EventBridge and the topic; returns run-ended -> (subject, message) as told."""
    aws, stack = deployment.aws, deployment.stack
    events, sqs, sns = aws.client("events"), aws.client("sqs"), aws.client("sns")

    def queue(name: str) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=f"{stack.name}-{name}")["QueueUrl"]
        return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    rule_queue, rule_queue_arn = queue("rule")
    pattern = resolve(
        load_template()["Resources"]["NotifyFunction"]["Properties"]["Events"]["RunEnded"]["Properties"]["Pattern"],
        stack.refs,
    )
    events.put_rule(Name=f"{stack.name}-run-ended", EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=f"{stack.name}-run-ended", Targets=[{"Id": "Notify", "Arn": rule_queue_arn}])
    mail_queue, mail_queue_arn = queue("mail")
    topic = sns.create_topic(Name=f"{stack.name}-notify")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=mail_queue_arn)
    monkeypatch.setenv("NOTIFY_TOPIC_ARN", topic)

    def run_ended(description: dict) -> tuple[str, str] | None:
        from notify.app import handler

        events.put_events(Entries=[status_change_event(description)])
        delivered = sqs.receive_message(QueueUrl=rule_queue, WaitTimeSeconds=1).get("Messages", [])
        if not delivered:
            return None
        handler(json.loads(delivered[0]["Body"]), Context("notify"))
        (told,) = sqs.receive_message(QueueUrl=mail_queue, WaitTimeSeconds=1)["Messages"]
        body = json.loads(told["Body"])
        return body["Subject"], body["Message"]

    return run_ended


def test_a_run_that_succeeds_says_what_it_did_and_one_that_fails_why(deployment, notify):
    result = deployment.run()
    assert result["status"] == "SUCCEEDED"
    subject, message = notify(result)
    assert subject == f"bgzip-workflow: {result['name']} SUCCEEDED"
    assert f"Run {result['name']} of {deployment.stack.name}-compress SUCCEEDED." in message
    assert f"compress of index {INDEX} prefix {PREFIX}: 5 files, 736.65 kB uncompressed" in message
    assert "5 objects deleted; the bioindex's readers were proven" in message

    deployment.bioindex.inject_failures([403])
    result = deployment.run("rollback")
    assert result["status"] == "FAILED"
    subject, message = notify(result)
    assert subject == f"bgzip-workflow: {result['name']} FAILED"
    assert "PlanFailed: Plan failed. BioindexRejected" in message and "No compressed file was removed" in message
    assert f"bgz logs {result['name']}" in message


def test_other_machines_and_running_executions_tell_nobody(deployment, notify):
    deployment.bioindex.inject_failures([403])  # a run that ends at once, at Plan
    result = deployment.run()
    assert notify(dict(result, stateMachineArn=result["stateMachineArn"] + "-other")) is None
    assert notify(dict(result, status="RUNNING")) is None


def test_an_output_eventbridge_left_out_is_read_from_step_functions(deployment, notify):
    """Over 248 KiB EventBridge sends the end without the output; the summary is still told."""
    result = deployment.run()
    assert result["status"] == "SUCCEEDED"
    _, message = notify(dict(result, output=None))
    assert f"compress of index {INDEX} prefix {PREFIX}: 5 files" in message, message
    assert "{}" not in message


def test_the_index_runs_of_a_bulk_run_stay_quiet(deployment, monkeypatch):
    """A bulk run of 300 indexes sends one notice (its table), not 301: an index run it started
    (its input carries bulkConcurrency) publishes nothing."""
    from notify import app

    published = []
    monkeypatch.setattr(app, "message", lambda detail: published.append(detail) or ("s", "m"))
    result = deployment.run(bulkConcurrency=3)
    assert result["status"] == "SUCCEEDED", result.get("cause")
    detail = json.loads(status_change_event(result)["Detail"])
    assert app.handler({"detail": detail}, Context("notify")) == {"skipped": result["name"]}
    assert published == []
