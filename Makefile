# Set-up and entry points. Every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: demo test test-fast lint bench clean lock lock-upgrade container

SOURCES := setup.cfg pyproject.toml requirements/runtime.txt requirements/test.txt

# The venv installs the pinned, hashed versions of requirements/test.txt (runtime + test
# tools; its runtime pins are those of requirements/runtime.txt, which the container image
# installs), then anatprep itself without dependencies.
$(STAMP): $(SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements/test.txt
	$(BIN)/pip install --quiet --no-deps --editable .
	touch $(STAMP)

## lock: regenerate requirements/*.txt (pinned versions with hashes for Python 3.11 on Linux
##       x86_64, from setup.cfg) keeping the pins already there; lock-upgrade: newest versions.
##       uv runs from a throwaway venv and reads no pip/uv configuration: the default index.
LOCK_VENV := build/lock-venv
UV_VERSION := 0.13.9
UV_COMPILE = env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL \
	$(LOCK_VENV)/bin/uv pip compile --no-config --quiet --generate-hashes \
	--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	--custom-compile-command "make lock" $(LOCK_FLAGS)
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(UV_COMPILE) setup.cfg -o requirements/runtime.txt
	$(UV_COMPILE) setup.cfg --extra test -c requirements/runtime.txt -o requirements/test.txt
	rm -rf $(LOCK_VENV)

lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

## container: the podman image and the Apptainer SIF (containers/build.sh; see containers/README.md)
container:
	bash containers/build.sh

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
		$(BIN)/python -m pytest -q --durations=40 tests

## test-fast: the development loop: ruff, mypy and every test not marked slow (no ANTs, no
##            pipeline run, no container, no SLURM; a seeded 30-mutant fuzz sample; the quick
##            real-data tests). tests/test_tiers.py fails when an unmarked test takes over 2 s.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	PATH="$(CURDIR)/$(BIN):$$PATH" ANATPREP_TEST_DATA=$${ANATPREP_TEST_DATA:-$(abspath ../shared/data)} \
		$(BIN)/python -m pytest -q -m "not slow" --durations=10 tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/convert.py

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO_DIR) $(DEMO_DIR).work
