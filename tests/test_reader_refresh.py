"""Every bioindex process reads the new flag before anything is deleted, whichever way the stack
restarts them (ReaderRefresh), through the real ASL in the offline stack, a real MariaDB and the
stand-in's processes accepting from one shared socket as the real server's do.

The query loop asks the bioindex every sample query again and again, each on a new connection, from
two threads at once, through a whole compress and a whole rollback, and keeps every answer that
differs from the one given before the runs (an error counts as one). One process is kept busy, as a
long query would, from the rollback's SetUncompressed until the run has ended: a request cannot
reach it, only a restart can.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
import urllib3

from tests.stacks import INDEX, PREFIX, Deployment
from workflow import states

WORKERS = 4


def _queries(d: Deployment, count: int = 40) -> list[str]:
    """Queries spread over every file: every k-th (phenotype, chromosome, locus bucket) of the table."""
    rows = d.db.run("SELECT DISTINCT `phenotype`, `chromosome`, `position` FROM `associations_2` ORDER BY 1, 2, 3")
    return [f"{p},{c}:{pos}-{pos + 19_999}" for p, c, pos in rows[:: max(1, len(rows) // count)]]


class QueryLoop:
    """Threads asking every query, each on a new connection; every answer that differs from before
    the runs (records, or an error) is kept with the state the run was in, and answers are counted by state."""

    def __init__(self, d: Deployment, threads: int = 2) -> None:
        self.d = d
        self.http = urllib3.PoolManager(retries=False, maxsize=threads)
        self.queries = _queries(d)
        self.expected = {q: self.ask(q) for q in self.queries}
        self.asked: Counter[str] = Counter()
        self.differed: list[tuple[str, str, int]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(threads)]

    def ask(self, q: str) -> tuple[int, object]:
        resp = self.http.request(
            "GET", f"{self.d.bioindex.url}/api/bio/query/{INDEX}", fields={"q": q}, headers={"Connection": "close"}
        )
        return resp.status, json.loads(resp.data).get("data")

    def _state(self) -> str:
        return states.main_state(self.d.states[-1]) if self.d.states else "before"

    def _loop(self, offset: int) -> None:
        while not self.stopping.is_set():
            for q in self.queries[offset:] + self.queries[:offset]:
                state, answer = self._state(), self.ask(q)
                self.asked[state] += 1
                if answer != self.expected[q]:
                    self.differed.append((state, q, answer[0]))
                self.stopping.wait(0.01)  # load on the bioindex, while leaving the offline stack its share of the GIL

    def wait_for(self, state: str, count: int = 2, timeout: float = 20) -> None:
        """Block until the loop has asked `count` queries in `state` (or `timeout` s have passed)."""
        deadline = time.monotonic() + timeout
        while self.asked[state] < count and time.monotonic() < deadline:
            self.stopping.wait(0.02)

    def start(self) -> QueryLoop:
        for thread in self.threads:
            thread.start()
        return self

    def after_the_runs(self, rounds: int = 2) -> None:
        """Go on asking every query `rounds` more times once the runs have ended, then stop."""
        self.d.states.append("after")
        target = self.asked["after"] + rounds * len(self.queries)
        while self.asked["after"] < target and all(t.is_alive() for t in self.threads):
            self.stopping.wait(0.05)
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _let_the_loop_ask_in_each_state(d: Deployment, loop: QueryLoop) -> None:
    """Before SetCompressed's Lambda and the delete jobs begin, let the loop ask in their state. The
    offline stack runs them in a fraction of a second, less than the history polling that tells the
    loop which state the run is in; the loop must be seen asking through each of them."""

    def before_invoke(function: str) -> None:
        if function.endswith("SetCompressedFunction") and d.machine == "compress":
            loop.wait_for(states.SET_COMPRESSED)

    def before_job(job: str) -> None:
        for suffix, state in (
            ("-delete", states.DELETE_ORIGINALS),
            ("-remove-compressed", states.REMOVE_COMPRESSED),
        ):
            if job.endswith(suffix):
                loop.wait_for(state)

    d.aws.runner.before_invoke = before_invoke
    d.aws.runner.before_job = before_job


def _hold_a_process_during_the_rollback(d: Deployment) -> None:
    def hold(function: str) -> None:
        if function.endswith("SetCompressedFunction") and d.machine == "rollback":
            d.held = d.bioindex.hold()

    d.held = None
    d.aws.runner.before_invoke = hold


@pytest.mark.parametrize("refresh", ["ecs-service", "hook", "confirm", "requests"])
def test_no_answer_changes_through_a_compress_and_a_rollback_unless_processes_are_left_to_chance(
    offline_aws, tmp_path, mariadb, refresh
):
    # requests: enough refreshes that every idle process gets one; only the busy one is missed
    more = {"ReaderRefreshRequests": "128"} if refresh == "requests" else {}
    d = Deployment(offline_aws, tmp_path, mariadb, workers=WORKERS, refresh=refresh, parameters=more)
    try:
        if refresh == "ecs-service":  # a rolling deployment longer than a poll: the run must wait for it
            d.aws.runner.restart_service = lambda service: d.bioindex.restart(pause=0.7)
        loop = QueryLoop(d)
        assert len(loop.queries) >= 30 and all(status == 200 and data for status, data in loop.expected.values())
        loop.start()
        _let_the_loop_ask_in_each_state(d, loop)
        compress = d.run(shards=2)
        assert compress["status"] == "SUCCEEDED", compress.get("cause")
        assert not any(k.endswith(".json") for k in d.data_keys()), "the originals were deleted"
        _hold_a_process_during_the_rollback(d)
        rollback = d.run("rollback")
        d.bioindex.release()
        loop.after_the_runs()

        assert rollback["status"] == "SUCCEEDED", rollback.get("cause")
        assert d.held is not None, "a process was busy through the rollback"
        assert d.originals_intact() and d.flag() is False
        summaries = [json.loads(r["output"]) for r in (compress, rollback)]
        for state in (states.SET_COMPRESSED, states.PROVE_READERS, states.DELETE_ORIGINALS, states.REMOVE_COMPRESSED):
            assert loop.asked[state] > 0, f"the loop asked queries during {state}: {dict(loop.asked)}"
        if refresh == "requests":
            # What was measured against the real server: the run succeeds, but the busy process still
            # has the old flag and reads the removed .json.gz: it answers errors until restarted.
            assert [s["readersProven"] for s in summaries] == [False, False]
            assert d.held in d.bioindex.pids()
            assert loop.differed, "the busy process, released with the old flag, answers errors"
            ended = {"Done", "after"}  # none while the runs ran: the old side was there until the end
            assert {state for state, _, _ in loop.differed} <= ended, loop.differed[:3]
            assert {status for _, _, status in loop.differed} == {500}
        else:
            assert loop.differed == [], loop.differed[:5]
            assert [s["readersProven"] for s in summaries] == [True, True]
            assert d.bioindex.restarts == 2 and d.held not in d.bioindex.pids(), "every process was replaced"
            assert len(d.confirmations) == (2 if refresh == "confirm" else 0), d.confirmations
        if refresh == "ecs-service":
            checks = d.states.count(f"{states.REFRESH_READERS} ECS check")
            assert checks >= 4, f"each run looked at its deployment more than once ({checks} in all)"
    finally:
        d.close()


def _explained(result: dict, *words: str) -> None:
    assert result["status"] == "FAILED", result.get("output")
    for word in words:
        assert word in result["cause"], result["cause"]


@pytest.mark.parametrize(
    ("refresh", "setup", "words"),
    [
        (
            "confirm",
            {"Function.Environment": {"READER_CONFIRM_TIMEOUT_SECONDS": "2"}},
            ["Nobody confirmed that the bioindex was restarted within 2 s", "bgz confirm"],
        ),
        ("hook", {}, ["RefreshReaders failed", "restart failed"]),
        ("ecs-service", {}, ["RefreshFailed", "failed", "circuit breaker"]),
        (
            "ecs-service",
            {"RefreshReadersFunction.Environment": {"READER_REFRESH_TIMEOUT_SECONDS": "1"}},
            ["RefreshTimedOut", "did not complete within 1 s"],
        ),
    ],
    ids=["confirm-never-given", "hook-error", "ecs-deployment-failed", "ecs-timeout"],
)
def test_a_refresh_that_does_not_happen_fails_the_run_and_deletes_nothing(
    offline_aws, tmp_path, mariadb, refresh, setup, words
):
    d = Deployment(offline_aws, tmp_path, mariadb, refresh=refresh, parameters=setup)
    try:
        d.confirm_automatically = False  # nobody answers
        if "timeout" in str(setup).lower() and refresh == "ecs-service":
            d.aws.runner.restart_service = lambda service: d.bioindex.restart(pause=3)
        elif refresh != "confirm":
            d.bioindex.fail_restarts()
        result = d.run()
        _explained(result, *words, "both copies of every file are kept", "No original was deleted")
        assert result["error"] == "RefreshReadersFailed"
        assert d.originals_intact()
        assert all(k + ".gz" in d.data_keys() and k + ".gz.gzi" in d.data_keys() for k in d.json_keys)
        assert not any(s.startswith(states.PROVE_READERS) for s in d.states)
        assert not d.locks(), "the prefix is free for the run that finishes the job"
    finally:
        d.close()


def test_converted_files_the_bioindex_cannot_read_set_the_flag_back(offline_aws, tmp_path, mariadb):
    """The refreshed processes cannot read the .json.gz (a bgzip without S3 support): that is not
    staleness. The flag is set back, the processes reload it, the old answers are proven back."""
    d = Deployment(offline_aws, tmp_path, mariadb, workers=WORKERS, refresh="hook")
    try:
        d.bioindex.break_bgzip()
        loop = QueryLoop(d).start()
        result = d.run()
        loop.after_the_runs()
        _explained(result, "ConvertedFilesUnreadable", "cannot read the converted compressed .json.gz files")
        assert "set back to compressed=false" in result["cause"] and "No original was deleted" in result["cause"]
        assert "answers as before the run" in result["cause"] and "fail to open file" in result["cause"]
        assert "restart the bioindex" not in result["cause"], "restarting would not help: it is not staleness"
        assert d.flag() is False and d.originals_intact()
        assert [s for s in d.states if states.main_state(s) in states.AFTER_UNREADABLE], d.states
        assert not [a for a in loop.differed if a[0] == "after"], "once the run has ended every answer is as before"
        check = json.loads(
            d.s3.get_object(Bucket=d.stack.run_bucket, Key=f"runs/{d.execution}/readers-check.json")["Body"].read()
        )
        assert check["unreadable"] and check["reverted"] and check["old_answers_back_at"] and "canary" not in check
        assert d.bioindex.restarts == 2, "restarted with the new flag, then with the old one"
    finally:
        d.close()


def test_the_template_default_is_the_mode_that_needs_no_infrastructure_knowledge():
    from offline.cfn_yaml import load_template

    parameter = load_template()["Parameters"]["ReaderRefresh"]
    assert parameter["Default"] == "confirm"
    assert set(parameter["AllowedValues"]) == {"confirm", "ecs-service", "hook", "requests"}


@pytest.mark.parametrize("machine", ["compress", "rollback"])
def test_a_flag_changed_between_delete_batches_puts_back_everything_deleted(offline_aws, tmp_path, mariadb, machine):
    """Someone sets the flag back, as the bioindex CLI's update-compressed-status would, after the
    first array child of the destructive step has deleted its files: the next child re-reads the
    flag, stops, and puts back every file this run deleted (the canary's too). The run fails saying
    so; once the processes load the flag as it now is, every answer is what it was before."""
    d = Deployment(offline_aws, tmp_path, mariadb, workers=WORKERS)
    try:
        if machine == "rollback":
            assert d.run(shards=2)["status"] == "SUCCEEDED"
        loop = QueryLoop(d)
        before = {k: d.read(k) for k in d.data_keys()}
        step = "-delete" if machine == "compress" else "-remove-compressed"
        children: list[str] = []

        def someone_else(job: str) -> None:
            if job.endswith(step):
                children.append(job)
                if len(children) == 2:
                    d.db.set_compressed(INDEX, PREFIX, machine == "rollback")

        d.aws.runner.before_job = someone_else
        result = d.run(machine, shards=2)
        assert len(children) == 2, children
        assert result["status"] == "FAILED", result.get("cause")
        spent = "originals" if machine == "compress" else "compressed files"
        assert f"the bioindex flag changed while this run deleted {spent}" in result["cause"], result["cause"]
        assert "are back" in result["cause"]
        assert d.flag() is (machine == "rollback"), "the flag is left as they set it"
        after = {k: d.read(k) for k in d.data_keys()}
        if machine == "compress":
            assert d.originals_intact() and {k: after[k] for k in d.json_keys} == {k: before[k] for k in d.json_keys}
        else:
            assert {k for k in after if k.endswith((".gz", ".gzi"))} == {
                k for k in before if k.endswith((".gz", ".gzi"))
            }
        d.bioindex.restart()  # the processes load the flag as it now is
        loop.start()
        loop.after_the_runs()
        assert loop.asked["after"] >= 2 * len(loop.queries) and loop.differed == [], loop.differed[:5]
    finally:
        d.close()
