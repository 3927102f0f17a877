# bgzip-workflow developer commands. `make demo` and `make test` work on a fresh machine with
# python3. Both need htslib's bgzip (Debian's tabix): the demo installs it when it runs as root where
# apt-get is, else says how; the tests also need a MariaDB server (mariadb-server); .ci/run installs
# both. `make sam-build` installs the SAM CLI from PyPI in .venv-sam.

VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo sandbox test test-fast lint asl bench sam-build clean

$(STAMP): pyproject.toml batch_job/requirements/lock.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]' -c batch_job/requirements/lock.txt
	touch $(STAMP)

# The demo needs the engine and the offline stack, not the test tools and linters.
$(DEMO_STAMP): pyproject.toml batch_job/requirements/lock.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[demo]' -c batch_job/requirements/lock.txt
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(PYTHON) -m demo.run

# The offline stack kept up, to try the README's bgz commands by hand (it prints how to point bgz at it).
sandbox: $(DEMO_STAMP)
	$(PYTHON) -m demo.sandbox

# Everything, the quick parts first: the linters, then the fast tier (a broken codec fails in
# seconds), then the tests with the moto server, MariaDB or a lock's lease. Those spend much of
# their time waiting (a state's poll, a lease, a rolling restart): four workers on two cores end
# them in three quarters of the time two take; the fast tier is all CPU, two workers.
test: lint
	@command -v bgzip >/dev/null || { echo "make test needs htslib's bgzip: apt-get install tabix"; exit 1; }
	@{ [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null; } || { echo "make test needs a MariaDB server: apt-get install mariadb-server"; exit 1; }
	$(PYTHON) -m pytest -n 2 -m "not slow" --durations=10
	$(PYTHON) -m pytest -n 4 -m slow --durations=15

# The inner loop: codec, plan, runner, CLI, Lambda and template checks on local folders, no moto
# server and no MariaDB (tests/conftest.py marks those `slow`). `make test` runs everything.
test-fast: $(STAMP)
	$(PYTHON) -m pytest -n 2 -m "not slow"

# Write the ASL files from statemachine/build.py (commit them; `make lint` checks they are in sync).
asl: $(STAMP)
	$(PYTHON) statemachine/build.py

# The code, the template, the ASL and the Dockerfile through their linters.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) statemachine/build.py --check
	$(VENV)/bin/cfn-lint template.yaml
	for asl in statemachine/*.asl.json; do $(VENV)/bin/statelint "$$asl" || exit 1; done
	$(VENV)/bin/hadolint batch_job/Dockerfile

bench: $(STAMP)
	$(PYTHON) bench/run.py
	$(PYTHON) bench/many_files.py
	$(PYTHON) bench/many_files.py --small 1000 --medium 100 --s3
	$(PYTHON) bench/many_files.py --small 300 --medium 0 --s3 --s3-latency-ms 20

# What CI runs before the tests: the template through SAM CLI's own validation and linter, a build
# without Docker or a local python3.12, and a check that the built package holds and imports what it must.
SAM_VERSION := 1.170.0
SAM ?= .venv-sam/bin/sam
.venv-sam/bin/sam:
	python3 -m venv .venv-sam
	.venv-sam/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)

# As `sam build --use-container` does inside the build image: each function's and the layer's folder
# copied, then built with make (the Makefiles in lambdas/ and batch_job/).
sam-build: $(STAMP) $(filter .venv-sam/bin/sam,$(SAM))
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --region us-east-1
	SAM_CLI_TELEMETRY=0 $(SAM) build --region us-east-1 --no-cached
	$(PYTHON) tests/check_build.py .aws-sam/build

clean:
	rm -rf $(VENV) .venv-sam bench/out .pytest_cache .ruff_cache .aws-sam
