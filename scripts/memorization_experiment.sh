#!/usr/bin/env bash
# Issue 6 (parts 1 and 4): memorization of DM sets on mnist5k IPC 10 (ConvNet width 128, 60 iterations),
# real vs noise init, before and after distillation, and the --min-distance defence.
# Usage: scripts/memorization_experiment.sh OUT_DIR [MIN_DISTANCE]   (sets and reports go to OUT_DIR)
set -euo pipefail
OUT=${1:?output folder}
D=${2:-5.0}
PY=${PY:-.venv/bin/python}
CONDENSE=${CONDENSE:-.venv/bin/condense}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
COMMON=(--dataset mnist5k --ipc 10 --seed 0 --device cpu --quiet)

# "before": the exact images DM starts from (the driver's init, iteration seed -1), saved without a step
nice -n 5 "$PY" - "$OUT" <<'EOF'
import sys
from condense.synth import prepare
for init in ("real", "noise"):
    method = prepare("dm", "mnist5k", 10, seed=0, device="cpu", init=init)
    method.init().detached().save(f"{sys.argv[1]}/init_{init}.h5")
EOF
# "after": 60 DM iterations from each init, and from real init with the defence
nice -n 5 "$CONDENSE" distill --method dm --iterations 60 --init real "${COMMON[@]}" --out "$OUT/dm_real.h5"
nice -n 5 "$CONDENSE" distill --method dm --iterations 60 --init noise "${COMMON[@]}" --out "$OUT/dm_noise.h5"
nice -n 5 "$CONDENSE" distill --method dm --iterations 60 --init real --min-distance "$D" "${COMMON[@]}" \
    --out "$OUT/dm_real_md$D.h5"

for s in init_real dm_real init_noise dm_noise "dm_real_md$D"; do
    nice -n 5 "$CONDENSE" audit "$OUT/$s.h5" --checks memorization --report "$OUT/${s}_audit" --device cpu
done
# accuracy cost of the defence (fast protocol: 50 epochs, 3 seeds; random real subset as reference)
nice -n 5 "$CONDENSE" eval "$OUT/dm_real.h5" "$OUT/dm_noise.h5" "$OUT/dm_real_md$D.h5" --protocol fast \
    --reference random --device cpu --json "$OUT/eval_fast.json"
