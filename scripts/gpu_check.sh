#!/usr/bin/env bash
# The device checks on a CUDA machine, in one command (CPU-only hosts run the same tests with the CUDA cases
# skipped, and say so):
#   1. the device tests (tests/training/test_device.py): split = unsplit on cuda at float32, bfloat16 and float16,
#      lower-precision training within its tolerance of float32, an unknown device refused in one line;
#   2. the training benchmark's per-device table: tokens/s and peak memory (torch's CUDA peak counter) of the
#      split step on the CPU and every card, at float32 and bfloat16, and the split/unsplit step-time ratio on
#      the first card.
# Usage: scripts/gpu_check.sh [--quick]   (--quick: the tiny model only, seconds). Needs `make setup` first and a
# torch build with CUDA: the pinned CPU wheel has none, so on a GPU host install the CUDA wheel of the same
# version into .venv (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126) before this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
QUICK=${1:-}
"$PY" - <<'PYEOF'
import torch
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, devices: {torch.cuda.device_count()}")
for i in range(torch.cuda.device_count()):
    print(f"  cuda:{i} {torch.cuda.get_device_name(i)}, bf16 {torch.cuda.is_bf16_supported()}")
if not torch.cuda.is_available():
    print("no CUDA device: the CUDA cases below are skipped (this is a CPU-only host)")
PYEOF
"$PY" -m pytest -q -rs tests/training/test_device.py
if [ "$QUICK" = "--quick" ]; then
  "$PY" -m fsllm_sim.benchmarks.training --quick --skip-memory
else
  "$PY" -m fsllm_sim.benchmarks.training --skip-memory --reps 5 \
    $("$PY" -c "import torch; print('--step-device cuda' if torch.cuda.is_available() else '')")
fi
