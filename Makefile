# bgzip-workflow developer commands. `make demo` and `make test` work on a fresh machine with
# python3 (and, for the tests, htslib's bgzip from Debian's tabix package; .ci/run installs it).

VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PYTHON) -m demo.run

test: $(STAMP)
	@command -v bgzip >/dev/null || { echo "make test needs htslib's bgzip: apt-get install tabix"; exit 1; }
	$(PYTHON) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PYTHON) bench/run.py

clean:
	rm -rf $(VENV) bench/out .pytest_cache .ruff_cache
