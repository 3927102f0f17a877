"""Runs one Lambda handler as the Lambda runtime would, for the offline stack.

    PYTHONPATH=lambdas python offline/lambda_runtime.py plan.app.handler  < event.json

The handler's module is found the way Lambda finds it: from the function's code folder (lambdas/).
Its AWS calls are recorded when the runner asks (offline/recorder.py).
Its logs go to stderr; the result (or Lambda's error shape) is the only thing on stdout.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field

if __package__:
    from offline.recorder import install_from_environment
else:  # a script run from offline/ with only the component's code on the path, as on AWS
    from recorder import install_from_environment


@dataclass
class Context:
    function_name: str
    memory_limit_in_mb: int = 128
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    deadline: float = field(default_factory=lambda: time.time() + 900)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.time()) * 1000)


def main() -> int:
    install_from_environment()
    result_fd = os.dup(1)
    os.dup2(2, 1)  # whatever the handler prints goes to the log, not into the result
    sys.stdout = sys.stderr
    module_name, _, func_name = sys.argv[1].rpartition(".")
    event = json.load(sys.stdin)
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", module_name)
    memory = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    context = Context(name, memory, invoked_function_arn=os.environ.get("FUNCTION_ARN", ""))
    failed = False
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
        result = handler(event, context)
    except Exception as exc:
        failed = True
        result = {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": context.aws_request_id,
            "stackTrace": traceback.format_exception(exc),
        }
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(result))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
