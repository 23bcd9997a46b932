# Set-up and entry points. Every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: demo test lint bench clean

SOURCES := setup.cfg pyproject.toml

$(STAMP): $(SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --editable ".[test]"
	touch $(STAMP)

## demo: build a 2-subject DICOM study from installed data and run the whole pipeline on it
demo: $(STAMP)
	$(BIN)/anatprep demo $(DEMO_DIR)

## test: the whole test suite (real-data tests use ANATPREP_TEST_DATA, default ../shared/data;
##       a single-node SLURM on localhost is installed and started for the SLURM tests)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@bash tests/slurm/up.sh || echo "make test: no local SLURM (needs root and apt); its tests skip" >&2
	PATH="$(CURDIR)/$(BIN):$$PATH" ANATPREP_TEST_DATA=$${ANATPREP_TEST_DATA:-$(abspath ../shared/data)} \
		$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/convert.py

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO_DIR) $(DEMO_DIR).work
