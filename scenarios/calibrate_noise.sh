#!/usr/bin/env bash
# The noise defence's cost to learning, into the shipped calibration: train scenarios/calibration_noise.yaml
# (noise sigma 0.25, ranks 4 and 16, the shipped calibration's first seed and target; resumable: rerun to continue),
# then pair its runs with the shipped ones by seed and write the factor on T(r) as the shipped file's
# noise_penalty section (its other sections are kept). Log: runs/calibrate_noise.log.
set -euo pipefail
cd "$(dirname "$0")/.."
SHIP=fsllm_sim/data/calibration-smollm2-135m.json
mkdir -p runs
exec > >(tee -a runs/calibrate_noise.log) 2>&1
started=$(date +%s)
echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) scenarios/calibrate_noise.sh on $(uname -n) ($(nproc) CPUs)"
.venv/bin/fsllm-sim calibrate scenarios/calibration_noise.yaml --out runs/calibration-noise --no-progress
.venv/bin/python -m fsllm_sim.training.precision_check "$SHIP" runs/calibration-noise/calibration.json \
  --out "$SHIP" --note "scenarios/calibrate_noise.sh; log runs/calibrate_noise.log"
cp runs/calibration-noise/calibration.json scenarios/results/calibration-noise.json
cp runs/calibration-noise/calibration.png scenarios/results/calibration-noise.png
echo "== done in $(( $(date +%s) - started )) s of wall time"
