"""How the data's keys are named: X.json, its BGZF X.json.gz, and the .gz's block index X.json.gz.gzi.

The project's words, one thing each (and where an older name remains):

- index: a bioindex index, a name in `__Indexes`. The BGZF block index is the "gzi" (X.json.gz.gzi;
  bgzf.py's `BlockIndex` is it in memory).
- prefix: an index's prefix as `__Indexes` has it (`Plan.prefix`, `Flag.prefix`, `Lock.prefix`;
  `bioindex_prefix` where a key prefix is at hand too).
  key prefix: where its files are in the bucket, the bioindex's S3 subdir included (`key_prefix_of()`
  below, `Location.prefix`, `Lock.key_prefix`). The two differ only with BioindexS3Subdir.
- target: `s3://bucket/<key prefix>` or a local folder: where a run's files are.
- original X.json, compressed X.json.gz, gzi X.json.gz.gzi; their ETags in a manifest record are
  `original_etag`, `gz_etag` and `gzi_etag` (older compress manifests say `source_etag`, read as
  `original_etag`). source: what an object was made from; its `source-etag`/`source-size` metadata
  (provenance.py) name the original on a .gz or .gzi, the .gz on a restored X.json.
- run: one conversion of one (index, prefix), by a workflow execution or by hand. run folder: where
  its records are (records.py, runfolder.py); its URI is `run_folder` wherever a field holds it
  (`runFolder` at the boundary, `--run-folder` for bgzip-job; `Lock.run_folder`, whose JSON key stays
  `run`, which every version reads). In code a `RunFolder` is the run as its records: a variable
  holding one is `run`, and a method returning one is `run_folder()`.
- execution name: `<index>-<UTC time>` (`<index>-<bulk execution name>` when a bulk run starts it);
  `execution` in events and records (`Flag.execution`, `Refresh.execution`). Its execution ARN is
  what a lock records (`Lock.execution_arn`; its JSON key stays `execution`, for the same reason).
- state: a state of a state machine (workflow/states.py), the word at the Step Functions boundary. Step: what
  a Batch state's job runs (records.Step: compress, verify, delete, decompress, remove-compressed);
  the job is named `<execution name>-<step>`. shard: a slice of a run's files, one array child.
- readers: the bioindex's serving processes (RefreshReaders, ProveReaders). sample query: one of the
  few queries Plan chooses (ReaderCheckSamples); answer: the bioindex's answer to one (`Answer`);
  baseline: the answers before the run (`Baseline`, baseline.json), which ProveReaders asks again.
- read back: the flag as the bioindex shows it after setting it (`Flag`, flag.json, `FlagReadBack`);
  confirm: only the operator's word that every process restarted (ReaderRefresh=confirm, `bgz confirm`);
  refresh: making every bioindex process load the flag (RefreshReaders; `RefreshMode`, how; refresh.json,
  what was done; `$.plan.refresh`, the stack's settings for it). done: whether it finished
  (`RefreshProgress.done`); `done_at`: when (refresh.json; `doneAt` from `bgz confirm`).
  outcome: how a run ended (outcome.json).
- canary: the one file ProveReaders deletes early, to see which side each bioindex process reads
  (`Baseline.canary_key`: its planned key; `ReadersProof.canary_objects`: the objects deleted).
  `ReaderCheckSettings` say how hard it looks; `ReadersCheck` (readers-check.json) records what it saw.
- boundary records (workflow/boundary.py): what crosses the state machines' boundary: an index run's
  input (RunInput; events.py's ExecutionInput is the same input as Plan checks it), Plan's result
  (PlanPreview for `bgz plan`), each later Lambda's answer (FlagReadBack, RefreshProgress,
  ReadersProof, OldAnswers, Explanation) and a run's summary. ReadersProof is the answer;
  ReadersCheck the run folder's record behind it. What each state sends its Lambda:
  workflow/events.py (event models).
"""

from __future__ import annotations

import re

from batch_job.errors import BadInput

ORIGINAL_SUFFIX = ".json"
COMPRESSED_SUFFIX = ".json.gz"
GZI_SUFFIX = ".json.gz.gzi"


def compressed_key(original: str) -> str:
    return original + ".gz"


def gzi_key(original: str) -> str:
    return original + ".gz.gzi"


def original_key(compressed: str) -> str:
    if not compressed.endswith(COMPRESSED_SUFFIX):
        raise BadInput(f"{compressed} is not a .json.gz key")
    return compressed[: -len(".gz")]


def key_prefix_of(subdir: str, prefix: str) -> str:
    """The S3 key prefix of a bioindex prefix: `<subdir>/<prefix>` as the bioindex's
    BIOINDEX_S3_SUBDIR setting makes it (no subdir: the prefix itself)."""
    subdir = subdir.strip("/")
    return f"{subdir}/{prefix}" if subdir else prefix


EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def execution_name(*parts: str) -> str:
    """An execution name from `parts` joined by '-', in the characters Batch job names allow (the
    execution names the jobs and the run folder), at most 80 long. The last part is kept whole (it
    makes the name unique: a timestamp, a bulk execution's name) and the others are cut to fit."""
    safe = [re.sub(r"[^A-Za-z0-9_-]", "-", part) for part in parts]
    last = safe[-1][:80]
    room = 80 - len(last) - 1
    head = "-".join(safe[:-1])[:room] if len(safe) > 1 and room > 0 else ""
    return f"{head}-{last}" if head else last
