#!/usr/bin/env bash
# The decoupled family and the hard/soft split: mnist5k and CIFAR-10 (imagefolder:/tmp/cifar10) at IPC 10,
# random, kmeans, dm, sre2l, rded, infer, infer+dyn, each with its soft labels, with argmax labels (the same
# recipe and seeds), and against a random real subset of no more stored bytes labelled by the same two
# ConvNetBN teachers; 3 seeds, final-epoch accuracy. Every step is resumable: rerun the script after a kill
# (trained teachers, finished sets and finished evaluations are kept; an unfinished distillation resumes).
#
#   bash scripts/decoupled_table.sh mnist5k              # or: imagefolder:/tmp/cifar10, or both
#
# Outputs: synth_sets/teachers/ (teachers + catalog.json), runs/decoupled/<data>_<method>_ipc10.h5,
# runs/decoupled/<data>_{soft,relabel}.json and .md (the tables: soft | argmax | random, same soft labels |
# bytes). dm (and, on mnist5k, every set: the zoo's were made by the same commands and teachers) reuse the
# published zoo sets.
set -euo pipefail
CONDENSE=${CONDENSE:-.venv/bin/condense}
TEACHERS=synth_sets/teachers
OUT=runs/decoupled
mkdir -p "$OUT"
# every method's soft labels come from the same two teachers (infer and infer_dyn use two by default)
declare -A OPTIONS=([sre2l]="--set num_teachers=2" [rded]="--set num_teachers=2" [infer]="" [infer_dyn]="")

distil() {  # NAME METHOD-AND-OPTIONS...: skipped when done, resumed when a checkpoint is there
    local out="$OUT/$1.h5"
    shift
    [ -f "$out" ] && return 0
    local resume=()
    [ -f "$out.ckpt.pt" ] && resume=(--resume)
    nice -n 19 "$CONDENSE" distill --ipc 10 --out "$out" ${resume[@]+"${resume[@]}"} "$@"
}

evaluate() {  # NAME PROTOCOL DATASET SETS...: one table per protocol, skipped when its JSON exists
    local json="$OUT/$1.json" protocol=$2 data=$3
    shift 3
    [ -f "$json" ] && return 0
    nice -n 19 "$CONDENSE" eval "$@" --protocol "$protocol" --teacher "$TEACHERS" --dataset "$data" --runs 3 \
        --json "$json"
}

for data in "${@:-mnist5k}"; do
    name=$(basename "${data#imagefolder:}")
    nice -n 19 "$CONDENSE" teachers --dataset "$data" --models ConvNetBN --seeds 2 --epochs 30 --out "$TEACHERS"
    if [ "$name" = mnist5k ]; then
        random=synth_sets/zoo/mnist5k_random_ipc10.h5 kmeans=synth_sets/zoo/mnist5k_kmeans_ipc10.h5
        dm=synth_sets/zoo/mnist5k_dm_ipc10.h5
    else
        distil "${name}_random_ipc10" --method random --dataset "$data"
        distil "${name}_kmeans_ipc10" --method kmeans --dataset "$data"
        random=$OUT/${name}_random_ipc10.h5 kmeans=$OUT/${name}_kmeans_ipc10.h5
        dm=synth_sets/zoo/cifar10_dm_ipc10.h5
    fi
    # every soft label of the table comes from the same two teachers (sre2l recovers against the first);
    # the zoo's mnist5k sets were made by these very commands against these teachers, so they are reused
    declare -A made=()
    for method in sre2l rded infer infer_dyn; do
        if [ "$name" = mnist5k ]; then
            made[$method]="synth_sets/zoo/mnist5k_${method}_ipc10.h5"
        else
            made[$method]="$OUT/${name}_${method}_ipc10.h5"
            # shellcheck disable=SC2086
            distil "${name}_${method}_ipc10" --method "$method" --dataset "$data" --teacher "$TEACHERS" ${OPTIONS[$method]}
        fi
    done
    # static soft labels: stored (sre2l, infer) or the teachers' logits on the images (random, kmeans, dm)
    evaluate "${name}_soft" soft "$data" "$random" "$kmeans" "$dm" "${made[sre2l]}" "${made[infer]}"
    # dynamic soft labels, the same recipe: the sets that name their teachers (rded, infer+dyn)
    evaluate "${name}_relabel" relabel "$data" "${made[rded]}" "${made[infer_dyn]}"
done
