import sys

from batch_job.cli import main

sys.exit(main())
