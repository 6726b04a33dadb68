#!/usr/bin/env bash
# Total training delay against s-band subchannel count, for 4 and 8 clients (counted FLOPs, the shipped N(r)
# calibration). Rerun the same command to resume an interrupted sweep: finished points are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/sweep-bandwidth}
.venv/bin/fsllm-sim sweep scenarios/default.yaml \
  --set channel.s_band.subchannels=8,16,32,64 \
  --set clients.count=4,8 \
  --out "$out"
