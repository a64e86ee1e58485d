#!/usr/bin/env bash
# Dataset Quantization against coresets and distillation: mnist5k and CIFAR-10 (imagefolder:/tmp/cifar10) at
# IPC 10 and 50 -- random, herding, kmeans, graphcut, dq without pixel quantisation, dq with it (MAE fill), dq
# with dropped patches left at the mean (fill=zero, the ablation) and dm -- with ConvNet (standard protocol) and
# across architectures (every architecture that accepts the images, learning rate from a 3-point grid on the
# selection split, then 3 seeds); CIFAR-10 at 5% and 10% (IPC 250 and 500) with ConvNet at a fixed budget of
# 2,000 SGD steps. Every step is resumable or skipped when done: rerun the script after a kill.
#
#   bash scripts/dq_table.sh mnist5k                    # or: imagefolder:/tmp/cifar10, or both
#
# Outputs in runs/dq/: <data>_mae.h5 (the masked autoencoder), <data>_<method>_ipc<N>.h5, <data>_ipc<N>.json/.md
# (ConvNet), <data>_ipc<N>_cross.json/.md (all architectures), cifar10_ratio<P>.json/.md, <data>_bins.txt (the
# bin-generation seconds and similarity bytes of every class, read from the cached bins file).
set -euo pipefail
CONDENSE=${CONDENSE:-.venv/bin/condense}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=runs/dq
mkdir -p "$OUT"

distil() {  # NAME IPC METHOD-AND-OPTIONS...: skipped when done, resumed when a checkpoint is there
    local out="$OUT/$1.h5" ipc=$2
    shift 2
    [ -f "$out" ] && return 0
    local resume=()
    [ -f "$out.ckpt.pt" ] && resume=(--resume)
    nice -n 19 "$CONDENSE" distill --ipc "$ipc" --out "$out" ${resume[@]+"${resume[@]}"} "$@"
}

evaluate() {  # NAME EVAL-OPTIONS-AND-SETS...: skipped when its JSON exists (each set is scored on its own data)
    local json="$OUT/$1.json"
    shift
    [ -f "$json" ] && return 0
    nice -n 19 "$CONDENSE" eval --json "$json" "$@"
}

for data in "${@:-mnist5k}"; do
    name=$(basename "${data#imagefolder:}")
    mae="$OUT/${name}_mae.h5"
    if [ ! -f "$mae" ]; then  # CIFAR-10: 1,000 images per class keep it near an hour on two cores
        cap=()
        [ "$name" != mnist5k ] && cap=(--max-per-class 1000)
        resume=()
        [ -f "$mae.ckpt.pt" ] && resume=(--resume)
        nice -n 19 "$CONDENSE" mae --dataset "$data" ${cap[@]+"${cap[@]}"} --out "$mae" ${resume[@]+"${resume[@]}"}
    fi
    for ipc in 10 50; do
        for method in random herding kmeans graphcut; do
            distil "${name}_${method}_ipc${ipc}" "$ipc" --method "$method" --dataset "$data"
        done
        distil "${name}_dq_nopixel_ipc${ipc}" "$ipc" --method dq --dataset "$data" --set pixel=false
        distil "${name}_dq_ipc${ipc}" "$ipc" --method dq --dataset "$data" --set mae="$mae"
        distil "${name}_dq_zero_ipc${ipc}" "$ipc" --method dq --dataset "$data" --set fill=zero
        dm="synth_sets/zoo/${name}_dm_ipc${ipc}.h5"
        budget=60  # the zoo's dm budgets: 60 iterations on mnist5k, 300 on CIFAR-10
        [ "$name" != mnist5k ] && budget=300
        if [ ! -f "$dm" ]; then
            distil "${name}_dm_ipc${ipc}" "$ipc" --method dm --dataset "$data" --iterations "$budget"
            dm="$OUT/${name}_dm_ipc${ipc}.h5"
        fi
        sets=()
        for m in random herding kmeans graphcut dq_nopixel dq dq_zero; do sets+=("$OUT/${name}_${m}_ipc${ipc}.h5"); done
        sets+=("$dm")
        evaluate "${name}_ipc${ipc}" --models ConvNet --protocol standard --runs 3 "${sets[@]}"
        evaluate "${name}_ipc${ipc}_cross" --models all --protocol standard --runs 3 \
            --lr-grid 0.003,0.01,0.03 --no-ior "${sets[@]}"
    done
    # the bins every dq set above sampled from: seconds and similarity-matrix bytes per class
    "$PYTHON" - "$OUT/${name}_dq_ipc10.h5" > "$OUT/${name}_bins.txt" <<'EOF'
import json, sys
import h5py
from condense.io import cache_root
from condense.store import SynthSet
key = SynthSet.load(sys.argv[1]).config["bins"]
with h5py.File(cache_root("dq", f"bins_{key}.h5"), "r") as f:
    meta = json.loads(f.attrs["meta"])
secs, mem = meta["seconds_per_class"], meta["similarity_bytes_per_class"]
print(f"bins {key}: {meta['num_bins']} bins per class, greedy {meta['greedy']}")
for c, (s, b) in enumerate(zip(secs, mem)):
    print(f"class {c}: {s:.1f} s, similarity matrix {b / 2**20:.0f} MiB")
print(f"total: {sum(secs):.1f} s")
EOF
    if [ "$name" != mnist5k ]; then  # 5% and 10% of CIFAR-10, ConvNet, 2,000 SGD steps of 256 images each
        for pct in 5 10; do
            ipc=$((pct * 50))
            epochs=$((2000 * 256 / (ipc * 10)))
            for method in random graphcut; do
                distil "${name}_${method}_ipc${ipc}" "$ipc" --method "$method" --dataset "$data"
            done
            distil "${name}_dq_nopixel_ipc${ipc}" "$ipc" --method dq --dataset "$data" --set pixel=false
            distil "${name}_dq_ipc${ipc}" "$ipc" --method dq --dataset "$data" --set mae="$mae"
            evaluate "${name}_ratio${pct}" --models ConvNet --protocol standard --epochs "$epochs" --runs 3 \
                --no-ior "$OUT/${name}_random_ipc${ipc}.h5" "$OUT/${name}_graphcut_ipc${ipc}.h5" \
                "$OUT/${name}_dq_nopixel_ipc${ipc}.h5" "$OUT/${name}_dq_ipc${ipc}.h5"
        done
    fi
done
