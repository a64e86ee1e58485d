"""DD-Ranking's metrics (Li et al. 2025; official NUS-HPC-AI-Lab/DD-Ranking, ``ddranking`` 0.2.0), as the paper
defines them.

- IOR = Acc(set) − Acc(random real subset of the same storage), same protocol and seeds, a fresh
  random subset for every seed: what the set adds over picking real images.
- HLR = Acc(full real training split) − Acc(set), hard labels: what is still lost against full data.
- LRS = (e^α − e^−1) / (e − e^−1), α = w·IOR − (1 − w)·HLR, w = 0.5, with IOR and HLR as fractions.
- ARS: the same normalisation of β = γ·(IOR with augmentation) + (1 − γ)·(IOR without), γ = 0.5.

DD-Ranking's code feeds percentages into α, which pins LRS near its floor (−0.157 for any real
set); condense reports IOR and HLR in percentage points and computes LRS and ARS from fractions.
Unlike DD-Ranking, nothing here is chosen on the test set: both accuracies are final-epoch figures
under one fixed protocol.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


def normalised(x: float) -> float:
    """(e^x − e^−1) / (e − e^−1): 0 at x = −1, 1 at x = 1."""
    return (math.exp(x) - math.exp(-1)) / (math.e - math.exp(-1))


def lrs(ior_points: float, hlr_points: float, w: float = 0.5) -> float:
    return normalised(w * ior_points / 100 - (1 - w) * hlr_points / 100)


def ars(ior_aug_points: float, ior_noaug_points: float, gamma: float = 0.5) -> float:
    return normalised(gamma * ior_aug_points / 100 + (1 - gamma) * ior_noaug_points / 100)


def ranking(set_runs: Sequence[float], random_runs: Sequence[float], full_accuracy: Optional[float] = None,
            w: float = 0.5, hard_runs: Optional[Sequence[float]] = None) -> dict[str, Optional[float]]:
    """IOR (mean of the per-seed differences, in points, with their std), HLR and LRS when the full-data
    accuracy is known (else None). Accuracies in percent; seeds paired in order. HLR compares hard-label
    accuracies: under a soft-label protocol pass the set's runs with argmax labels as ``hard_runs``."""
    diffs = np.asarray(set_runs, dtype=float) - np.asarray(random_runs, dtype=float)
    ior, ior_std = float(diffs.mean()), float(diffs.std())
    hlr = None if full_accuracy is None else float(full_accuracy - np.mean(set_runs if hard_runs is None else hard_runs))
    return {"ior": ior, "ior_std": ior_std, "random_mean": float(np.mean(random_runs)),
            "random_runs": list(map(float, random_runs)), "full_accuracy": full_accuracy, "hlr": hlr,
            "lrs": None if hlr is None else lrs(ior, hlr, w)}
