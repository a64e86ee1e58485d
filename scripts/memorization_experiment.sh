#!/usr/bin/env bash
# Issue 6 (parts 1 and 4): memorization of DM sets on mnist5k IPC 10 (ConvNet width 128, 60 iterations),
# real vs noise init, before and after distillation, and the --min-distance defence at two d.
# Usage: scripts/memorization_experiment.sh OUT_DIR        (sets and reports go to OUT_DIR, keep it out of the repo)
# d: the mnist5k calibration (real test image -> nearest training image, [0,1] pixels, L2) has
# percentile 1 / 5 / 25 / 50 = 1.75 / 2.33 / 4.25 / 5.03, so d = 2.5 (~ p6) and d = 5.0 (~ the median).
set -euo pipefail
OUT=${1:?output folder}
PY=${PY:-.venv/bin/python}
C=${CONDENSE:-.venv/bin/condense}
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
nice -n 5 "$C" distill --method dm --iterations 60 --init real "${COMMON[@]}" --out "$OUT/dm_real.h5"
nice -n 5 "$C" distill --method dm --iterations 60 --init noise "${COMMON[@]}" --out "$OUT/dm_noise.h5"
for D in 5.0 2.5; do
    nice -n 5 "$C" distill --method dm --iterations 60 --init real --min-distance $D "${COMMON[@]}" \
        --out "$OUT/dm_real_md$D.h5"
done

# the first audit trains the feature ConvNet (seed 0) and saves it; the others reuse it (same network)
nice -n 5 "$C" audit "$OUT/init_real.h5" --report "$OUT/init_real_audit" --device cpu
W="$OUT/init_real_audit/memorization_feature_net.h5"
for s in dm_real init_noise dm_noise dm_real_md5.0 dm_real_md2.5; do
    nice -n 5 "$C" audit "$OUT/$s.h5" --report "$OUT/${s}_audit" --feature-weights "$W" --device cpu
done
# accuracy cost of the defence (fast protocol: 50 epochs, 3 seeds; a random real subset as reference)
nice -n 5 "$C" eval "$OUT/dm_real.h5" "$OUT/dm_noise.h5" "$OUT/dm_real_md5.0.h5" "$OUT/dm_real_md2.5.h5" \
    --protocol fast --reference random --device cpu --json "$OUT/eval_fast.json"
