#!/usr/bin/env bash
# Calibrate T(r) at configuration A, then at B (twice the tokens per round) with A's absolute target, and compare
# B's measured tokens to the target with A's prediction. Resumable: rerun to continue. Log: runs/calibrate_transfer.log.
set -euo pipefail
cd "$(dirname "$0")/.."
FSLLM=${FSLLM:-.venv/bin/fsllm-sim}
mkdir -p runs
exec > >(tee -a runs/calibrate_transfer.log) 2>&1
$FSLLM calibrate scenarios/calibration_tokens.yaml --out runs/calibration-tokens-a --no-progress
target=$(python3 -c "import json; print(json.load(open('runs/calibration-tokens-a/calibration.json'))['target']['value'])")
sed "s/^  target_rule: .*/  target_val_loss: ${target}/" scenarios/calibration_tokens_b.yaml > runs/calibration_tokens_b.resolved.yaml
$FSLLM calibrate runs/calibration_tokens_b.resolved.yaml --out runs/calibration-tokens-b --no-progress
.venv/bin/python -m fsllm_sim.training.transfer_check runs/calibration-tokens-a runs/calibration-tokens-b
