# One-command set-up: every target creates .venv and installs the pinned dependencies first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The test environment (fast, offline, no network, empty torch hub cache, OMP_NUM_THREADS pinned;
# TEST_THREADS=1 on a busy machine) is defined once, in tools/testenv.py, and shared with `make refresh`.
TEST_ENV := $(BIN)/python tools/testenv.py
# `make test` runs TEST_WORKERS pytest workers side by side (pytest-xdist --dist loadscope: each test file, each
# notebook's cells, and each test class stays on one worker; tests/test_notebooks_any_model.py has one class per
# notebook, so those long runs spread over the workers) with the cores shared out between them (tools/testenv.py);
# TEST_WORKERS=1 runs everything in one process.
TEST_WORKERS ?= 2
PARALLEL = $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tools/nbval_sanitize.cfg --nbval-cell-timeout 600
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help install lab lab-student test test-ui unit notebooks site exercises assignments grade bench refresh normalize clean
.PHONY: slides slides-metadata

help:
	@echo "make lab          open JupyterLab on notebooks/ (sets everything up first)"
	@echo "make lab-student  open JupyterLab on your own student copies in student/ (exercises blank)"
	@echo "make test         unit tests + every notebook with nbval, fast and offline"
	@echo "make test-ui      JupyterLab and the site in a headless browser (installs Debian's chromium if missing)"
	@echo "make site         execute the notebooks and write HTML to build/site/ (SOLUTIONS=0: build/site-student/)"
	@echo "make exercises    write student and solution versions to build/exercises/"
	@echo "make assignments  the nbgrader course in build/course/ (source/, release/, gradebook)"
	@echo "make grade        grade SUBMISSIONS (default build/course/submitted) into GRADES (default build/grades)"
	@echo "make slides       execute the notebooks and write reveal.js slides to build/slides/ (lecture mode)"
	@echo "make bench        speed and memory against reference libraries -> bench/results.md"
	@echo "make refresh      re-execute notebooks and store the outputs nbval compares"
	@echo "make normalize    bring notebooks into their committed form without executing them"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The site's widget renderer comes from the npm registry (fetched once by Python, no npm needed; without a
# network only `make site` misses it). The git filter that keeps outputs out of commits (tools/nbclean.py)
# belongs to this clone, not to .venv.
install: $(STAMP)
	@-$(BIN)/python tools/site_assets.py fetch --quiet
	@$(BIN)/python tools/nbclean.py --install --quiet

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ARGS) $(ROOT_FLAG)

# Your own copies of the course with the exercises blank; existing copies are never overwritten.
lab-student: install
	$(BIN)/python tools/exercises.py --work notebooks student
	$(BIN)/jupyter lab --notebook-dir=student $(LAB_ARGS) $(ROOT_FLAG)

test: install
	TEST_WORKERS=$(TEST_WORKERS) $(TEST_ENV) $(BIN)/python -m pytest tests notebooks $(NBVAL) $(PARALLEL) --durations=10 \
		$(PYTEST_ARGS)

test-ui: install
	tools/ensure_chromium.sh
	$(TEST_ENV) $(BIN)/python -m pytest tools/ui_test.py tools/ui_slides_test.py -v $(PYTEST_ARGS)

unit: install
	$(TEST_ENV) $(BIN)/python -m pytest $(or $(PYTEST_ARGS),tests)

notebooks: install
	$(TEST_ENV) $(BIN)/python -m pytest $(NBVAL) $(or $(PYTEST_ARGS),notebooks)

# Offline and fast like the tests; FULL=1 full mode, SOLUTIONS=0 the student site, ONLINE=1 allows downloads.
site: install
	$(BIN)/python tools/build_site.py $(if $(FULL),--full,) $(if $(filter 0,$(SOLUTIONS)),--student,) \
		$(if $(filter 1,$(ONLINE)),--online,) $(if $(filter 1,$(FRESH)),--fresh,) $(SITE_ARGS)

# ---- lecture mode: slides (tools/build_slides.py, structure from tools/slides.py) ----
# Offline and fast like the site; FULL=1 full mode, ONLINE=1 allows downloads. A notebook whose run `make test` kept
# is not executed again while that run is current (tools/nbcache.py); FRESH=1 executes every notebook anyway.
slides: install
	$(BIN)/python tools/build_slides.py $(if $(FULL),--full,) $(if $(filter 1,$(ONLINE)),--online,) \
		$(if $(filter 1,$(FRESH)),--fresh,) $(SLIDES_ARGS)

# Write the notebooks' slide metadata by the rules (after editing a notebook; tests/test_slides.py checks it).
slides-metadata: install
	$(BIN)/python tools/slides.py apply $(NB)
# ---- end lecture mode ----

exercises: install
	$(BIN)/python tools/exercises.py notebooks build/exercises

# Graded assignments (README "Graded assignments"): nbgrader's course folder from the course's own markers, and a
# sandboxed, fast autograder for what nbgrader collect or an LMS download gives (GRADE_ARGS e.g. --timeout 120).
SUBMISSIONS ?= build/course/submitted
GRADES ?= build/grades
assignments: install
	$(BIN)/python tools/assignments.py notebooks build/course

grade: install
	$(BIN)/python tools/grade.py $(SUBMISSIONS) $(GRADES) $(GRADE_ARGS)

bench: install
	$(BIN)/python bench/run.py

refresh: install
	$(BIN)/python tools/refresh_notebooks.py $(NB)

normalize: install
	$(BIN)/python tools/nbclean.py --in-place $(or $(NB),notebooks/*.ipynb)

clean:
	rm -rf build
