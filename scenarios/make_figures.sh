#!/usr/bin/env bash
# The paper's figure set: every shipped sweep (scenarios/sweeps/), a run of the default scenario, compares on
# scenarios/tradeoffs.yaml and scenarios/loss_curves.yaml (real SmolLM2 training), each drawn by fsllm-sim plot,
# with an index in runs/figures/README.md. Resumable: rerun to continue. Same as `make figures`.
set -euo pipefail
cd "$(dirname "$0")/.."
FSLLM=${FSLLM:-.venv/bin/fsllm-sim}
mkdir -p runs
$FSLLM figures --out "${1:-runs/figures}" 2>&1 | tee runs/figures.log
