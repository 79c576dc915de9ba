# One-command set-up: every target creates .venv and installs the pinned dependencies first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The test environment (fast, offline, no network, empty torch hub cache, OMP_NUM_THREADS pinned;
# TEST_THREADS=1 on a busy machine) is defined once, in tools/testenv.py, and shared with `make refresh`.
TEST_ENV := $(BIN)/python tools/testenv.py
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tools/nbval_sanitize.cfg --nbval-cell-timeout 600

.PHONY: help install lab test unit notebooks site exercises bench refresh clean

help:
	@echo "make lab        open JupyterLab on notebooks/ (sets everything up first)"
	@echo "make test       unit tests + every notebook with nbval, fast and offline"
	@echo "make site       execute the notebooks and write HTML to build/site/"
	@echo "make exercises  write student and solution versions to build/exercises/"
	@echo "make bench      speed and memory against reference libraries -> bench/results.md"
	@echo "make refresh    re-execute notebooks and store the outputs nbval compares"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ARGS) $(if $(filter 0,$(shell id -u)),--allow-root,)

test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest tests notebooks $(NBVAL) $(PYTEST_ARGS)

unit: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest $(or $(PYTEST_ARGS),tests)

notebooks: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest $(NBVAL) $(or $(PYTEST_ARGS),notebooks)

site: $(STAMP)
	$(BIN)/python tools/build_site.py $(if $(FULL),--full,)

exercises: $(STAMP)
	$(BIN)/python -m cnn_helpers.exercises notebooks build/exercises

bench: $(STAMP)
	$(BIN)/python bench/run.py

refresh: $(STAMP)
	$(BIN)/python tools/refresh_notebooks.py $(NB)

clean:
	rm -rf build
