"""ProveReaders state: before anything is deleted, prove that the bioindex reads the new side.

It runs after RefreshReaders made every bioindex process load the new flag (or, with
ReaderRefresh=requests, here: GET /api/bio/indexes in bursts, which reach only the processes that
happen to be idle, so that mode never counts as a proof).

1. The flag is re-read through the backend: still what flag.json recorded, or nothing is deleted.
2. Every sample query captured at Plan is asked again. Any error or other answer now comes from a
   process that loaded the new flag and cannot read the new side (the old side is all still there):
   the flag is set back, flag.json says so, and the run fails with ConvertedFilesUnreadable; the state
   machine then refreshes the processes again and calls this with `revert` to prove the old answers
   are back.
3. The canary's spent side is deleted and the sample queries asked again, many times each: a process that
   still reads the spent side now answers differently. Then the canary is restored, the run fails
   saying to restart the bioindex, and nothing else is deleted.

Without a BioindexUrl there is no server to ask: only step 1 runs, and the record says so.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from batch_job.bioindex.backend import FlagBackend
from batch_job.bioindex.errors import ConvertedFilesUnreadable, OldAnswersNotBack, ReadersStale
from batch_job.bioindex.server import BioindexServer
from batch_job.errors import PlanMismatch
from batch_job.locations import parse_location
from batch_job.records import Baseline, CanaryStatus, Flag, Mode, Plan, ReadersCheck, Refresh, RefreshMode, now
from batch_job.runfolder import RunFolder
from batch_job.steps.delete import check_flag
from shared import config
from shared.baseline import Differences, ask_again
from shared.flag_record import set_and_record
from workflow.boundary import OldAnswers, ReadersProof
from workflow.events import ProveReadersEvent

from .canary import Canary

logger = Logger()
tracer = Tracer()
# The engine's own log lines (locks, plan) come out in the same structured form.
copy_config_to_registered_loggers(source_logger=logger, include={"bgzip-job"})

SIDES = {True: "compressed .json.gz files", False: "uncompressed .json files"}
NOT_PROVEN = (
    "ReaderRefresh=requests: the bioindex's answers do not say which process gave them, so no series of "
    "requests can show that every process loaded the flag"
)


def _stale(found: Differences, compressed: bool, canary: str) -> ReadersStale:
    return ReadersStale(
        f"bioindex answers changed once canary {canary} was deleted ({found.described()}); the canary was restored "
        f"byte for byte and nothing else was deleted. A bioindex process still reads the {SIDES[not compressed]}: "
        "restart the bioindex service, then start a new execution"
    )


def _set_back(run: RunFolder, plan: Plan, flag: Flag, backend: FlagBackend, found: Differences) -> None:
    """The bioindex cannot read the new side: put the flag back as it was before this run set it, and
    record that flag.json no longer allows deletion."""
    back = not flag.compressed
    set_and_record(backend, run, plan, back, flag.bioindex_url, flag.execution)
    logger.warning("flag set back", extra={"first": found.first(), "compressed": back})


def _refresh_here(bioindex: BioindexServer, record: ReadersCheck, mode: RefreshMode) -> None:
    """ReaderRefresh=requests: the only refresh there is, and no proof."""
    if mode == RefreshMode.REQUESTS:
        settings = config.reader_check_settings()
        bioindex.refresh(settings.refresh_requests, config.reader_refresh().burst)
        record.refreshed = settings.refresh_requests


def _restarted(run: RunFolder, mode: RefreshMode) -> bool:
    """RefreshReaders of this run restarted the bioindex. Its state machine reaches ProveReaders only
    then; the record is checked too where one is kept: the ECS deployments completed; the operator's
    confirmation (which `bgz confirm` marks done, and a task token sent back any other way is marked
    done here)."""
    if mode == RefreshMode.HOOK:
        return True  # the hook's success is the state machine's: it records nothing
    refresh = run.read_refresh()
    if refresh is None or refresh.mode != mode:
        return False
    if mode == RefreshMode.CONFIRM and refresh.done_at is None:
        refresh.done_at, refresh.confirmed_by = now(), "the task token, sent back"
        run.write_refresh(refresh)
    return refresh.done_at is not None


def prove_old_answers(run: RunFolder, plan: Plan, event: ProveReadersEvent, baseline: Baseline) -> dict:
    """After the flag was set back and the processes refreshed: every sample query answers as before the run."""
    flag = run.read_flag()
    if flag is None or flag.compressed is event.compressed:
        raise OldAnswersNotBack(f"{Flag.NAME} in {run.uri} does not show the flag set back; restart the bioindex")
    bioindex = config.server()
    record = run.read_readers_check() or ReadersCheck(event.execution)
    _refresh_here(bioindex, record, event.refresh_mode)
    found = ask_again(bioindex, baseline, config.reader_check_settings().check_requests)
    if found:
        raise OldAnswersNotBack(
            f"the flag was set back to compressed={str(flag.compressed).lower()}, but the bioindex still answers "
            f"differently from before the run ({found.described()}): restart the bioindex service"
        )
    record.old_answers_back_at = now()
    run.write_readers_check(record)
    return OldAnswers(old_answers_back=True).to_json()


@logger.inject_lambda_context(correlation_id_path="execution", log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=ProveReadersEvent)
def handler(event: ProveReadersEvent, context: LambdaContext) -> dict:
    run = RunFolder(parse_location(event.run_folder))
    plan = run.read_plan()
    if (plan.mode == Mode.COMPRESS) is not event.compressed:
        raise PlanMismatch(f"run {run.uri} is a {plan.mode} run; refusing a check for compressed={event.compressed}")
    baseline = run.read_baseline()
    if event.revert:
        return prove_old_answers(run, plan, event, baseline)
    flag = check_flag(run, plan)
    bioindex = config.server()
    backend = config.backend(bioindex)
    backend.check_unchanged(flag)
    record = run.read_readers_check() or ReadersCheck(event.execution)
    mode = event.refresh_mode
    if mode.restarts and not _restarted(run, mode):
        raise ReadersStale(f"the run's {Refresh.NAME} does not show the bioindex restarted ({mode} mode)")
    record.refresh = mode.value
    if bioindex is None or baseline is None:
        reason = "no BioindexUrl configured" if bioindex is None else "no baseline answers were captured at Plan"
        record.checked, record.proven, record.reason, record.finished = False, False, reason, now()
        run.write_readers_check(record)
        logger.warning("readers not proven", extra={"reason": reason})
        return ReadersProof(checked=False, proven=False, reason=reason, canary_objects=[], queries=0).to_json()

    settings = config.reader_check_settings()
    canary = Canary(run, plan, baseline.canary_key, record)
    if canary.status == CanaryStatus.RESTORED:  # an earlier attempt found a stale process
        raise _stale(
            Differences(differing=record.differences or ["an earlier attempt"]), event.compressed, baseline.canary_key
        )
    if canary.status != CanaryStatus.RELEASED:
        _refresh_here(bioindex, record, mode)
        if canary.status is None:  # a retried attempt may have deleted the canary already: then only after
            found = ask_again(bioindex, baseline, 1)
            if found:
                record.checked, record.unreadable, record.errors = True, found.first(), found.errors or None
                record.differences = found.differing or None
                run.write_readers_check(record)  # from here on the delete steps refuse this run
                try:
                    _set_back(run, plan, flag, backend, found)
                    record.reverted = now()
                    run.write_readers_check(record)
                except Exception as exc:  # the processes are still refreshed and the answers compared
                    logger.exception("could not set the flag back")
                    raise ConvertedFilesUnreadable(
                        f"the bioindex cannot read the converted {SIDES[event.compressed]} ({found.first()}), and "
                        f"setting the flag back failed: {type(exc).__name__}: {exc}. Set __Indexes.compressed back "
                        f"to {str(not event.compressed).lower()} for this index and prefix, then restart the bioindex"
                    ) from exc
                raise ConvertedFilesUnreadable(
                    f"the bioindex cannot read the converted {SIDES[event.compressed]}: with the new flag it answered "
                    f"{found.described()}, before anything was deleted. The flag was set back to "
                    f"compressed={str(not event.compressed).lower()}; first error or difference: {found.first()}"
                )
        canary.delete()
        found = ask_again(bioindex, baseline, settings.check_requests)
        record.requests, record.differences, record.errors = found.asked, found.differing, found.errors or None
        if found:
            canary.restore()
            raise _stale(found, event.compressed, baseline.canary_key)
        canary.release()
    record.checked, record.proven, record.finished = True, mode.restarts, now()
    record.reason = None if mode.restarts else NOT_PROVEN
    run.write_readers_check(record)
    logger.info(
        "readers checked", extra={"canary": canary.keys, "queries": len(baseline.answers), "proven": mode.restarts}
    )
    return ReadersProof(
        checked=True,
        proven=mode.restarts,
        reason=record.reason or "",
        canary_objects=canary.keys,
        queries=len(baseline.answers),
    ).to_json()
