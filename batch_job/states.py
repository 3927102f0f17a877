"""The state machines' state names: the one place the ASL, the Lambdas, `bgz` and the tests take them from.

`statemachine/build.py` writes both ASL files from these names; `tests/test_asl_source.py` checks that
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
PROVE_READERS = "ProveReaders"
DELETE_ORIGINALS = "DeleteOriginals"
REMOVE_COMPRESSED = "RemoveCompressed"
SUMMARIZE = "Summarize"
EXPLAIN_FAILURE = "ExplainFailure"

# The states each run passes in order; the last one is the only destructive one.
SEQUENCE = {
    Mode.COMPRESS: (PLAN, COMPRESS, VERIFY, SET_COMPRESSED, PROVE_READERS, DELETE_ORIGINALS),
    Mode.ROLLBACK: (PLAN, DECOMPRESS, VERIFY_RESTORED, SET_UNCOMPRESSED, PROVE_READERS, REMOVE_COMPRESSED),
}

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


def step_state(state: str) -> str:
    """The step state a helper state belongs to ("Compress array job" -> "Compress")."""
    for suffix in JOB_STATE_SUFFIXES:
        state = state.removesuffix(suffix)
    return state


# The bulk machine: one child execution of the compress or rollback machine per index.
SELECT_INDEXES = "SelectIndexes"
CONVERT_EACH_INDEX = "ConvertEachIndex"
CONVERT_INDEX = "Convert index"
INDEX_CONVERTED = "Index converted"
INDEX_FAILED = "Index failed"
REPORT_INDEXES = "ReportIndexes"
