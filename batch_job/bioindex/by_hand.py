"""`bgzip-job flag`: the flag of a run by hand, set as SetCompressed sets it, so that the run can end
with its own delete step. Only after every shard verified OK, and only by the run holding the prefix.

With the bioindex configured as the stack's job definitions configure it (BIOINDEX_FLAG_BACKEND and its
settings) the flag is set through that backend, which reads it back (mysql: the one row of (index,
prefix), by its id). Without, `--attest` records that the operator set it (the bioindex CLI's
`update-compressed-status`): flag.json then says so, and names no backend that proved it.
"""

from __future__ import annotations

from batch_job.bioindex import connect
from batch_job.bioindex.backend import set_and_read_back
from batch_job.bioindex.live_flag import secrets_manager
from batch_job.errors import Refused
from batch_job.locations import parse_location
from batch_job.locks import Locks
from batch_job.records import Flag, Mode, Step
from batch_job.runfolder import RunFolder

ATTESTED = "operator"  # Flag.backend of a flag the operator set and attests


def set_flag(run: RunFolder, compressed: bool, attest: bool) -> Flag:
    plan = run.read_plan()
    wanted = plan.mode == Mode.COMPRESS
    if compressed is not wanted:
        word = "--compressed" if wanted else "--uncompressed"
        raise Refused(f"the plan in {run.uri} is a {plan.mode} plan: its flag is set with {word}; nothing was set")
    verified = run.read_manifest_heads(Step.VERIFY, plan.shards)
    if len(verified) != plan.shards or not all(head.ok for head in verified.values()):
        raise Refused(
            f"verify has not passed in every shard of {run.uri} ({sum(h.ok for h in verified.values())} of "
            f"{plan.shards}): the flag is set only after every file is verified; nothing was set"
        )
    Locks(parse_location(plan.target)).check_held_by(run.uri)
    if connect.configured():
        secret = secrets_manager()
        backend = connect.backend(secret, connect.server(secret), run.receipts())
        flag = set_and_read_back(backend, plan, compressed, connect.env("BIOINDEX_URL"))
    elif attest:
        flag = Flag(plan.index, plan.prefix, compressed, "", backend=ATTESTED, target=plan.target)
    else:
        raise Refused(
            f"no bioindex configured ({connect.BACKEND_VARIABLE}=mysql with BIOINDEX_DB_SECRET_ARN, as the job "
            "definitions set them): nothing was set. Or set the flag yourself (the bioindex CLI's "
            "update-compressed-status) and give --attest to record that you did"
        )
    run.write_flag(flag)
    return flag
