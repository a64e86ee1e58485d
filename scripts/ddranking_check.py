"""Feed a condense CIFAR-10 set to DD-Ranking (NUS-HPC-AI-Lab/DD-Ranking, package ``ddranking`` 0.2.0) and put its
numbers beside condense's, on a small budget.

    pip install -e '.[ddranking]'      # in its own environment: ddranking 0.2.0 pins numpy<2 and scipy<1.16
    python scripts/ddranking_check.py synth_sets/zoo/cifar10_dm_ipc10.h5 --cifar-root DIR [--epochs 20 --runs 1]
    python scripts/ddranking_check.py SET.h5 --cifar-root DIR --metric hlr-ior   # + full data and random subsets

DD-Ranking reads CIFAR-10 only in torchvision's format (``DIR/cifar-10-batches-py``) and evaluates on its test
split, so a zoo set distilled from the JPEG recoding is scored on the original test images there (a torchvision
download) and on its own data here, unless DIR holds a conversion of the same JPEG recoding; the set travels as
``condense export --format pt`` does it (the decoded images class by class, renormalised with the constants
DD-Ranking normalises CIFAR-10 with, hard labels, the learned lr). torchvision checks the md5 of those files on
every load, so a converted folder needs that check disabled (DD-Ranking then also skips its download attempt).

``--metric accuracy`` (default) trains DD-Ranking's ``ConvNet-3`` on the set with its hard-label recipe (SGD,
momentum 0.9, wd 5e-4, step schedule, DSA) through ``LabelRobustScoreHard``'s per-set helper: DD-Ranking 0.2.0's
``GeneralEvaluator.compute_metrics`` never records its accuracies (its list stays empty), so the helper is the
working entry point. ``--metric hlr-ior`` runs ``LabelRobustScoreHard.compute_metrics`` whole: with no cached
full-data accuracy for CIFAR-10 it trains on the full training split (200 epochs in 0.2.0) and on a fresh random
subset per run, hours on a CPU.

Where the two can differ, by design: DD-Ranking reports the best test accuracy over checkpoints every 10 epochs and,
without a learned lr, picks the lr from {0.001, 0.005, 0.01, 0.05, 0.1} by test accuracy; condense reports the final
accuracy, selects nothing on the test split, and trains with the set's learned lr or the protocol's 0.01.
``--ddr-lr 0.01`` turns that search off and trains DD-Ranking's network at the given lr, to compare the two
trainers at equal settings.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from condense.evaluation import evaluate, get_protocol  # noqa: E402
from condense.interop import exported  # noqa: E402
from condense.store import SynthSet  # noqa: E402

DDR_MEAN, DDR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # dd_ranking/utils/data.py, CIFAR10
# DD-Ranking 0.2.0's README and GeneralEvaluator default spell these prob_flip / ratio_*, but its DSA class
# (ddranking/aug/dsa.py) reads flip / rotate / scale / crop / cutout (KeyError otherwise): give both spellings.
DSA = {"prob_flip": 0.5, "ratio_rotate": 15.0, "saturation": 2.0, "brightness": 1.0, "contrast": 0.5,
       "ratio_scale": 1.2, "ratio_crop_pad": 0.125, "ratio_cutout": 0.5,
       "flip": 0.5, "rotate": 15.0, "scale": 1.2, "crop": 0.125, "cutout": 0.5}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("set", metavar="SET.h5")
    p.add_argument("--cifar-root", required=True, help="folder holding cifar-10-batches-py (DD-Ranking's format)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--metric", choices=("accuracy", "hlr-ior"), default="accuracy")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ddr-lr", type=float, default=None,
                   help="train DD-Ranking's network at this lr instead of its search on test accuracy (default: the "
                        "set's learned lr, else the search)")
    p.add_argument("--data-root", default=None, help="condense's data root for the set's own data (default: "
                                                     "$CONDENSE_DATA)")
    args = p.parse_args()
    try:
        from ddranking.metrics import LabelRobustScoreHard
    except ImportError:
        raise SystemExit("ddranking is not installed: pip install -e '.[ddranking]' (in its own environment).")

    synth = SynthSet.load(args.set)
    e = exported(synth, "normalised", DDR_MEAN, DDR_STD)  # what `condense export --format pt --mean/--std` writes
    ipc = max(e.meta["per_class"])
    evaluator = LabelRobustScoreHard(
        dataset="CIFAR10", real_data_path=args.cifar_root, ipc=ipc, model_name="ConvNet-3", data_aug_func="dsa",
        aug_params=DSA, optimizer="sgd", lr_scheduler="step", step_size=max(1, args.epochs // 2),
        weight_decay=5e-4, momentum=0.9, num_eval=args.runs, num_epochs=args.epochs, syn_batch_size=256,
        num_workers=0, device=args.device, eval_full_data=True, save_path=os.path.join(tempfile.mkdtemp(), "s.csv"))
    if args.metric == "accuracy":
        lr = args.ddr_lr if args.ddr_lr is not None else e.lr
        accs = [evaluator._compute_hard_label_metrics_helper(e.images, None, e.labels, lr, "syn",
                                                              hyper_param_search=lr is None)[0]
                for _ in range(args.runs)]
        print(f"DD-Ranking ConvNet-3, {args.epochs} epochs: best-over-checkpoints test accuracy {accs}")
    else:
        print(evaluator.compute_metrics(image_tensor=e.images, hard_labels=e.labels, syn_lr=e.lr))
    report = evaluate(synth, models=["ConvNet"], runs=args.runs, protocol=get_protocol("standard", epochs=args.epochs),
                      data_root=args.data_root, device=args.device)
    res = report.results["ConvNet"]
    print(f"condense ConvNet, {args.epochs} epochs (protocol {report.protocol['name']}): final test accuracy "
          f"{[round(r, 2) for r in res.runs]}")


if __name__ == "__main__":
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    main()
