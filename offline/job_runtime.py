"""Runs one Batch job's command as the image's entry point (`bgzip-job`) would, for the offline stack.

    python offline/job_runtime.py compress --run-folder s3://.../runs/NAME/

Its AWS calls are recorded when the runner asks (offline/recorder.py).
"""

from __future__ import annotations

import sys

if __package__:
    from offline.recorder import install_from_environment
else:  # a script run from offline/ with only the component's code on the path, as on AWS
    from recorder import install_from_environment

from batch_job.cli import main

if __name__ == "__main__":
    install_from_environment()
    sys.exit(main(sys.argv[1:]))
