#!/usr/bin/env bash
# The network-pool schedule screen on CIFAR-10 IPC 10 (the fast-convergence issue): which pool schedule
# (networks trained per iteration, SGD steps, real batch, how often a new network joins) gives the most
# accuracy per distillation minute. Each schedule is distilled once for 15 minutes on this machine with 10% of
# the training data held out (snapshots at 5, 10, 15 min), the 15-minute snapshot is scored by one `standard` run
# (300 epochs) on that validation split (never the test split), and the runs are ranked at 15 minutes. The best
# two then get their 15-minute snapshot scored under `standard`, 3 seeds, on the test split. Resumable: rerun
# after a kill; finished steps are skipped. (A first screen ranked by one 50-epoch `fast` run and put IDM's
# official schedule first; at 300 epochs it came third, 2.5 points behind dm factor 2: 50 epochs under-train the
# evaluation networks and reorder the sets. See eval/tta/screen_cifar10_ipc10_15min/.)
# Run it alone on the machine (distillation minutes are wall-clock).
#
#   bash scripts/pool_screen.sh imagefolder:/tmp/cifar10          # ~2.5 h distillation + ~1.5 h scoring on 2 cores
#
# Outputs in runs/screen/<schedule>/ (snapshots, progress.json, results_standard_validation.json) and
# runs/screen/rank_15min.md.
set -euo pipefail
DATA=${1:?usage: pool_screen.sh DATASET (e.g. imagefolder:/tmp/cifar10)}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/screen}
TTA="$PYTHON scripts/time_to_accuracy.py"
mkdir -p "$OUT"

# name | method and options (dm's pool options: pool, pool_train_nets, pool_steps, pool_batch, pool_interval,
# ce_weight; idm = dm with factor 2, lr_img 0.2, pool 100, 2 nets x 10 steps x 256, ce_weight 0.5)
SCHEDULES=(
  "dm_f2|--method dm --set factor=2"
  "idm_official|--method idm"
  "idm_1x2x256|--method idm --set pool_train_nets=1 --set pool_steps=2"
  "idm_1x1x128|--method idm --set pool_train_nets=1 --set pool_steps=1 --set pool_batch=128"
  "idm_2x1x128|--method idm --set pool_train_nets=2 --set pool_steps=1 --set pool_batch=128"
  "idm_1x1x128_join10|--method idm --set pool_train_nets=1 --set pool_steps=1 --set pool_batch=128 --set pool_interval=10"
  "idm_1x2x256_noce|--method idm --set pool_train_nets=1 --set pool_steps=2 --set ce_weight=0"
  "idm_1x1x128_lr1|--method idm --set pool_train_nets=1 --set pool_steps=1 --set pool_batch=128 --set lr_img=1"
  "dm_f2_pool_1x1x128|--method dm --set factor=2 --set pool=100 --set pool_train_nets=1 --set pool_steps=1 --set pool_batch=128"
)

RUNS=()
for row in "${SCHEDULES[@]}"; do
  RUNS+=("$OUT/${row%%|*}")
  # shellcheck disable=SC2086
  $TTA distill ${row#*|} --dataset "$DATA" --ipc 10 --minutes 5 10 15 --validation 0.1 --quiet --out "$OUT/${row%%|*}"
done
for run in "${RUNS[@]}"; do
  $TTA eval "$run" --protocol standard --runs 1 --split validation --marks 15
done
$TTA rank "${RUNS[@]}" --minutes 15 --protocol standard --split validation --out "$OUT/rank_15min.md"
# the best two: their 15-minute snapshot under standard, 3 seeds, on the test split (read once per network)
for run in $(sed -n '3,4p' "$OUT/rank_15min.md" | cut -d'|' -f3); do
  $TTA eval "$run" --protocol standard --runs 3 --marks 15
done
