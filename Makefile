# bnlab: two commands on a fresh machine.
#   make run   -> set up .venv (bnlab with its dev and ray extras), fetch the data, run the main job
#   make test  -> set up .venv (idempotent), run lint and the whole test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
BNLAB  := $(VENV)/bin/bnlab
STAMP  := $(VENV)/.bnlab-installed

.PHONY: setup data run results test test-slow lint format bench notebook clean

setup: $(STAMP)

# torch first, pinned: the pin resolves to the local CPU wheel; an unpinned torch
# would pull several GB of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,ray,notebook]'
	touch $(STAMP)

data: setup
	$(BNLAB) data fetch mnist fashion-mnist

# The full ioffe2015-mnist (20 seeds x BN/no BN x 50,000 steps) and its report, in
# results/reproduce/report.html; rerunning resumes or, when done, only rewrites the report.
run: data
	$(BNLAB) reproduce ioffe2015-mnist --out results/reproduce

# Every experiment at its registered protocol and seeds (many hours on 2 cores; rerunning resumes,
# and finished runs are only read), published to docs/results/: report.md, report.html and
# their figures, no databases or checkpoints. The replay checks that this code still trains
# every stored run (runs kept from an earlier version must match bit for bit).
# EXPERIMENTS="small-batch train-test-stats" trains only those: the report keeps the experiments
# published earlier from their records (docs/results/records/), so the run can go in parts.
EXPERIMENTS ?= all
results: data
	for e in $(EXPERIMENTS); do $(BNLAB) reproduce $$e --out results/full --quiet || exit 1; done
	$(BNLAB) replay results/full
	$(BNLAB) report results/full --publish docs/results --regenerate "make results"

lint: setup
	$(VENV)/bin/ruff check bnlab tests benchmarks examples notebooks
	$(VENV)/bin/ruff format --check bnlab tests benchmarks examples notebooks

format: setup
	$(VENV)/bin/ruff format bnlab tests benchmarks examples notebooks
	$(VENV)/bin/ruff check --fix bnlab tests benchmarks examples notebooks

test: data lint
	$(VENV)/bin/pytest -n 2

test-slow: data
	$(VENV)/bin/pytest -n 2 -m slow

bench: setup
	$(PY) benchmarks/bn_op.py
	$(PY) benchmarks/data.py
	$(PY) benchmarks/engine.py

# The tutorial: notebooks/*.py (jupytext) -> executed notebooks/*.ipynb with outputs and figures.
notebook: data
	$(PY) notebooks/build.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
