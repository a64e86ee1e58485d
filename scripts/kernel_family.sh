#!/usr/bin/env bash
# The kernel family's tables: transfer from CIFAR-10 animals (KRR-ST vs kmeans, DM, random, no pre-training) and
# KIP/RKIP on mnist5k (kernel regression, a finite MLP, the reconstruction audit). Not run by the tests.
#
#   DATA=~/data scripts/kernel_family.sh transfer     # DATA holds cifar-10-batches-py/, or cifar10/{train,test}
#                                                     # (cifar10-jpeg.tar extracted as synth_sets/README.md says)
#   scripts/kernel_family.sh kip
#
# CPU-time estimates (measured per step on this 2-core machine, one thread, niced, beside other jobs; see the
# report of the kernel-family issue): ssl ~7.5 h, krr_st ~4 h, kmeans + dm ~0.6 h, transfer ~11.5 h; kip ~1.5 h.
set -euo pipefail
C=${CONDENSE:-condense}
OUT=${OUT:-runs/kernel_family}
SRC="cifar10@classes=2,3,4,5,6,7"          # the animals, unlabeled for ssl and krr_st
mkdir -p "$OUT"

transfer() {
  : "${DATA:?set DATA to the folder holding cifar-10-batches-py/ or cifar10/train}"
  # 1. the self-supervised target: Barlow Twins, ConvNet-BN backbone, 20 epochs on 30,000 images (resumable)
  $C ssl --dataset "$SRC" --data-root "$DATA" --model ConvNetBN --epochs 20 --out "$OUT/ssl_animals.h5" \
      $( [ -f "$OUT/ssl_animals.h5.ckpt.pt" ] && echo --resume )
  # 2. sets of 1,002 images (IPC 167 x 6 classes; KRR-ST's 1,000 rounded to whole classes, so all sets match)
  $C distill --method krr_st --dataset "$SRC" --data-root "$DATA" --ipc 167 --model ConvNetBN \
      --set target="$OUT/ssl_animals.h5" --iterations 500 --set pool=4 --set pool_age=100 \
      --out "$OUT/animals_krr_st.h5"
  $C distill --method kmeans --dataset "$SRC" --data-root "$DATA" --ipc 167 --out "$OUT/animals_kmeans.h5"
  $C distill --method dm --dataset "$SRC" --data-root "$DATA" --ipc 167 --iterations 300 --out "$OUT/animals_dm.h5"
  # 3. pre-train each (and a random 1,002-image subset on the same SSL targets, and nothing), transfer to the
  #    vehicles and to MNIST at 1 % and 10 % of the labels, fine-tuning and linear probe, 3 seeds
  $C eval "$OUT/animals_krr_st.h5" "$OUT/animals_kmeans.h5" "$OUT/animals_dm.h5" \
      --transfer "cifar10@classes=0,1,8,9" --transfer "mnist5k@size=32@channels=3" --data-root "$DATA" \
      --models ConvNetBN --label-fractions 0.01,0.1 --pretrain-epochs 200 --finetune-steps 500 --runs 3 \
      --json "$OUT/transfer.json"
}

kip() {
  for ipc in 1 10; do
    $C distill --method kip --dataset mnist5k --ipc $ipc --iterations 10000 --out "$OUT/mnist5k_kip_ipc$ipc.h5"
    $C distill --method rkip --dataset mnist5k --ipc $ipc --iterations 10000 --out "$OUT/mnist5k_rkip_ipc$ipc.h5"
    sets=("$OUT/mnist5k_kip_ipc$ipc.h5" "$OUT/mnist5k_rkip_ipc$ipc.h5" synth_sets/zoo/mnist5k_random_ipc$ipc.h5
          synth_sets/zoo/mnist5k_dm_ipc$ipc.h5)
    $C eval "${sets[@]}" --kernel ntk --json "$OUT/kernel_ipc$ipc.json"
    $C eval "${sets[@]}" --models MLP --protocol standard --runs 3 --no-ior --json "$OUT/mlp_ipc$ipc.json"
  done
  $C audit "$OUT/mnist5k_rkip_ipc10.h5" --checks reconstruction --report "$OUT/rkip_ipc10_audit"
}

"${1:-transfer}"
