#!/usr/bin/env bash
# The shipped convergence calibration, fsllm_sim/data/calibration-smollm2-135m.json, measured at the default
# scenario's own training settings (K = 8, E = 1, b = 2, L = 64: 1,024 tokens per round). Resumable: rerun to
# continue (every calibration resumes run by run). Log: runs/calibrate_default.log. JOBS=2 (default) trains two
# groups of ranks in parallel, one torch thread each, and merges them.
#   1. the learning-rate grid [3e-3, 6e-3] at the absolute target 4.38, five ranks, three seeds, the rate chosen on
#      the first seed (scenarios/calibration_default_grid.yaml -> runs/calibration-default-grid);
#   2. the shipped calibration at the harder target 4.24, five ranks, three seeds, at the rate step 1 chose at
#      every rank, 6e-3 (scenarios/calibration_default.yaml -> runs/calibration-default);
#   3. the shipped file: step 2's calibration, with step 1's target as its second_target and its rate search as
#      learning_rate_grid, and the precision_penalty and batch_scaling sections of the file it replaces (measured
#      at the earlier calibration's settings: K = 4, E = 2, b = 2, L = 64, target 4.49; kept, and labelled so).
# Each run stops at its target (calibration.stop_at_target), so the cost is what the targets need: about 1.2 h of
# one CPU core for step 1 and 1.3 h for step 2 on the development machine (training.wall_s in each file).
set -euo pipefail
cd "$(dirname "$0")/.."
FSLLM=${FSLLM:-.venv/bin/fsllm-sim}
PY=${PY:-.venv/bin/python}
SHIP=fsllm_sim/data/calibration-smollm2-135m.json
mkdir -p runs
exec > >(tee -a runs/calibrate_default.log) 2>&1
started=$(date +%s)
echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) scenarios/calibrate_default.sh on $(uname -n) ($(nproc) CPUs)"

calibrate() {  # scenario, out: the ranks split into two groups trained in parallel, then merged (all resumed)
  local scenario=$1 out=$2
  if [ "${JOBS:-2}" -ge 2 ]; then
    local pids=()
    for group in "1 4" "2 8 16"; do
      local tag=${group// /-}
      "$PY" - "$scenario" "runs/$(basename "$scenario" .yaml)_r$tag.yaml" $group <<'PYEOF'
import sys, yaml
s = yaml.safe_load(open(sys.argv[1]))
s["lora"]["ranks"] = [int(r) for r in sys.argv[3:]]
s["lora"]["rank"] = s["lora"]["ranks"][0]
yaml.safe_dump(s, open(sys.argv[2], "w"), sort_keys=False)
PYEOF
      mkdir -p "$out-r$tag/curves"
      cp -n "$out"/curves/*.json "$out-r$tag/curves/" 2>/dev/null || true
      OMP_NUM_THREADS=1 $FSLLM calibrate "runs/$(basename "$scenario" .yaml)_r$tag.yaml" --out "$out-r$tag" \
        --no-progress < /dev/null &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    mkdir -p "$out/curves"
    cp "$out"-r*/curves/*.json "$out/curves/"
  fi
  $FSLLM calibrate "$scenario" --out "$out" --no-progress
}

calibrate scenarios/calibration_default_grid.yaml runs/calibration-default-grid
calibrate scenarios/calibration_default.yaml runs/calibration-default
"$PY" -m fsllm_sim.training.ship_calibration runs/calibration-default/calibration.json \
  --second-target runs/calibration-default-grid/calibration.json --carry-from "$SHIP" --out "$SHIP" \
  --command "scenarios/calibrate_default.sh; log runs/calibrate_default.log"
echo "== done in $(( $(date +%s) - started )) s of wall time"
