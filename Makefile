# bgzip-workflow developer commands. `make demo` and `make test` work on a fresh machine with
# python3 (and, for the tests, htslib's bgzip and a MariaDB server: Debian's tabix and mariadb-server,
# which .ci/run installs).

VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint asl bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PYTHON) -m demo.run

test: $(STAMP)
	@command -v bgzip >/dev/null || { echo "make test needs htslib's bgzip: apt-get install tabix"; exit 1; }
	@{ [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null; } || { echo "make test needs a MariaDB server: apt-get install mariadb-server"; exit 1; }
	$(PYTHON) -m pytest -n 2

# The inner loop: codec, plan, runner, CLI, Lambda and template checks on local folders, no moto
# server and no MariaDB (tests/conftest.py marks those `slow`). `make test` stays the whole suite.
test-fast: $(STAMP)
	$(PYTHON) -m pytest -n 2 -m "not slow"

# Write both ASL files from statemachine/build.py (commit them; the tests check they are in sync).
asl: $(STAMP)
	$(PYTHON) statemachine/build.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) statemachine/build.py --check

bench: $(STAMP)
	$(PYTHON) bench/run.py

clean:
	rm -rf $(VENV) bench/out .pytest_cache .ruff_cache
