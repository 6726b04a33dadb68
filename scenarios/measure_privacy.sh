#!/usr/bin/env bash
# Measure the leakage of SmolLM2-135M's activations (scenarios/privacy_default.yaml) and ship it as
# fsllm_sim/data/privacy-smollm2-135m.json, the file privacy.file: builtin reads. Log: runs/measure_privacy.log.
# Resumable: rerun to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
# --out: rerun the script to resume an interrupted measurement, one (split, defence) group at a time
run=runs/privacy-default
.venv/bin/fsllm-sim privacy scenarios/privacy_default.yaml --out "$run" 2>&1 | tee -a runs/measure_privacy.log
cp "$run/privacy.json" fsllm_sim/data/privacy-smollm2-135m.json.tmp
mv fsllm_sim/data/privacy-smollm2-135m.json.tmp fsllm_sim/data/privacy-smollm2-135m.json
cp "$run/leakage_vs_split.png" scenarios/results/privacy-default-leakage-vs-split.png
cp "$run/leakage_vs_noise.png" scenarios/results/privacy-default-leakage-vs-noise.png
cp "$run/privacy.csv" scenarios/results/privacy-default.csv
echo "shipped: fsllm_sim/data/privacy-smollm2-135m.json (from $run)"
