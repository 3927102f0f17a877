"""An operator's restart hook (ReaderRefreshHookArn) for the offline stack: restarts every process
of the bioindex stand-in and returns when all have, as a real hook does for its bioindex.

The stand-in lives in the process that started it; this handler, run as a Lambda in its own
process, asks it through the stand-in's control folder (STANDIN_CONTROL) and waits for its answer.
"""

from __future__ import annotations

import os
from pathlib import Path

from offline.bioindex_standin import BioindexStandin, request_restart


def handler(event: dict, context: object) -> dict:
    control = Path(os.environ["STANDIN_CONTROL"])
    request_restart(control, timeout=float(os.environ.get("STANDIN_RESTART_TIMEOUT", "120")))
    return {"restarted": True, "compressed": event.get("compressed")}


def parameters(aws, name: str, standin: BioindexStandin) -> dict[str, str]:
    """Deploy this hook as the function `name` for `standin`; the stack parameters that make it the
    ReaderRefresh (the demo's sandbox and the tests' stacks)."""
    hook = aws.create_function(name, "offline.standin_hook.handler", {"STANDIN_CONTROL": str(standin.control)})
    return {"ReaderRefresh": "hook", "ReaderRefreshHookArn": hook["FunctionArn"]}
