"""The state machines' state names: the one place the ASL, the Lambdas, `bgz` and the tests take them from.

`statemachine/build.py` writes the three ASL files from these names; `tests/test_asl_source.py` checks that
the committed files are what it writes.
"""

from __future__ import annotations

from batch_job.records import Mode, Step

PLAN = "Plan"
COMPRESS = "Compress"
VERIFY = "Verify"
SET_COMPRESSED = "SetCompressed"
DECOMPRESS = "Decompress"
VERIFY_RESTORED = "VerifyRestored"
SET_UNCOMPRESSED = "SetUncompressed"
REFRESH_READERS = "RefreshReaders"
PROVE_READERS = "ProveReaders"
DELETE_ORIGINALS = "DeleteOriginals"
REMOVE_COMPRESSED = "RemoveCompressed"
SUMMARIZE = "Summarize"
EXPLAIN_FAILURE = "ExplainFailure"

# The states each run passes in order; the last one is the only destructive one.
SEQUENCE = {
    Mode.COMPRESS: (PLAN, COMPRESS, VERIFY, SET_COMPRESSED, REFRESH_READERS, PROVE_READERS, DELETE_ORIGINALS),
    Mode.ROLLBACK: (
        PLAN,
        DECOMPRESS,
        VERIFY_RESTORED,
        SET_UNCOMPRESSED,
        REFRESH_READERS,
        PROVE_READERS,
        REMOVE_COMPRESSED,
    ),
}

# When ProveReaders finds that the bioindex cannot read the new side, it sets the flag back; the
# processes then reload the old flag (as RefreshReaders made them load the new one) and ProveOldAnswers
# shows the answers are as before. The run then fails, having deleted nothing.
RELOAD_OLD_FLAG = "ReloadOldFlag"
PROVE_OLD_ANSWERS = "ProveOldAnswers"
AFTER_UNREADABLE = (RELOAD_OLD_FLAG, PROVE_OLD_ANSWERS)

# The states of one refresh of the bioindex processes, by ReaderRefresh mode, as "<RefreshReaders> <suffix>".
REFRESH_SUFFIXES = (" ECS deployment", " wait", " ECS check", " done?", " hook", " confirmation")

# States that run an engine step -> that step (whose manifests say what it did).
STATE_STEPS = {
    COMPRESS: Step.COMPRESS,
    VERIFY: Step.VERIFY,
    DELETE_ORIGINALS: Step.DELETE,
    DECOMPRESS: Step.DECOMPRESS,
    VERIFY_RESTORED: Step.VERIFY,
    REMOVE_COMPRESSED: Step.REMOVE_COMPRESSED,
}

# A run that fails in one of these has deleted nothing (ProveReaders restores its canary before failing).
BEFORE_DELETION = {mode: set(states[:-1]) for mode, states in SEQUENCE.items()}

# Suffixes of the helper states around a step's Batch job, as `bgz watch` sees them entered.
JOB_STATE_SUFFIXES = (" array job", " job")


def main_state(state: str) -> str:
    """The main state a helper state belongs to ("Compress array job" -> "Compress",
    "RefreshReaders confirmation" -> "RefreshReaders")."""
    for suffix in JOB_STATE_SUFFIXES + REFRESH_SUFFIXES:
        if state.endswith(suffix) and state.removesuffix(suffix) in (*STATE_STEPS, REFRESH_READERS, RELOAD_OLD_FLAG):
            return state.removesuffix(suffix)
    return state


# The bulk machine: one child execution of the compress or rollback machine per index.
SELECT_INDEXES = "SelectIndexes"
CONVERT_EACH_INDEX = "ConvertEachIndex"
CONVERT_INDEX = "Convert index"
INDEX_CONVERTED = "Index converted"
INDEX_FAILED = "Index failed"
REPORT_INDEXES = "ReportIndexes"
