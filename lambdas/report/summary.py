"""The Summarize state's Lambda: a run that SUCCEEDED, as a RunSummary read from the heads of its plan
and manifests. It ends the run (report/run_end.py's end_run): the prefix lock released, outcome.json
written, and the RunSummary answered as it is."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from report.run_end import end_run

from batch_job.records import CanaryStatus, ReadersCheck, Step, Totals
from batch_job.runfolder import RunFolder
from workflow.boundary import RunSummary
from workflow.events import RunEndEvent

logger = Logger()
tracer = Tracer()
# The engine's own log lines (locks) come out in the same structured form.
copy_config_to_registered_loggers(source_logger=logger, include={"bgzip-job"})


def _totals(run: RunFolder, step: Step, shards: int) -> Totals:
    return sum((head.totals for head in run.read_manifest_heads(step, shards).values()), Totals())


def summary(event: RunEndEvent) -> dict:
    """The run's RunSummary, from the heads of the plan and the manifests alone: memory by shards,
    not by files."""
    run = event.run_folder()
    plan = run.read_plan_head()
    verified = _totals(run, Step.VERIFY, plan.shards)
    compressed, original = verified.compressed_bytes, verified.original_bytes
    removed = _totals(run, plan.destructive_step, plan.shards).deleted
    check = run.read_readers_check() or ReadersCheck("")
    if check.canary_status == CanaryStatus.RELEASED:
        removed += len(check.canary.objects)
    return RunSummary(
        mode=plan.mode,
        index=plan.index,
        prefix=plan.prefix,
        run_folder=run.uri,
        files=plan.file_count,
        bytes_uncompressed=original,
        bytes_compressed=compressed,
        objects_deleted=removed,
        readers_proven=bool(check.proven),
    ).to_json()


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=RunEndEvent)
def handler(event: RunEndEvent, context: LambdaContext) -> dict:
    return end_run(event, summary)
