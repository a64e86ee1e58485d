"""Barlow Twins (Zbontar et al., ICML 2021): the self-supervised target of KRR-ST (Lee et al., ICLR 2024).

The loss makes the cross-correlation matrix of the two views' batch-standardised projections the identity:
Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij², λ = 5e-3 (the paper's).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..fields import AT_LEAST_1, NON_NEGATIVE, POSITIVE, SEED, Range

_EPS = 1e-5  # BatchNorm1d(affine=False)'s epsilon: the paper standardises each projection dimension over the batch


@dataclass
class SSLConfig:
    """What `condense ssl` trains, and how; the whole of it goes into the network file's training record."""

    dataset: str = "mnist5k"
    data_root: Optional[str] = None
    max_per_class: Optional[int] = None
    model: str = "ConvNetBN"                 # the backbone (KRR-ST's CIFAR target is a ResNet18; ResNet18BN works)
    model_args: dict[str, Any] = field(default_factory=dict)
    proj_dim: int = 512                      # projector output (the paper: 8192)
    hidden: int = 512                        # projector hidden units
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3                         # AdamW, cosine schedule over the epochs
    weight_decay: float = 1e-5
    off_diagonal: float = 5e-3               # λ
    crop_scale: float = 0.2                  # smallest random-crop area
    jitter: float = 0.4
    seed: int = 0


RANGES = {**dict.fromkeys(("proj_dim", "hidden", "epochs", "batch_size", "max_per_class"), AT_LEAST_1),
          "lr": POSITIVE, **dict.fromkeys(("weight_decay", "off_diagonal"), NON_NEGATIVE), "seed": SEED,
          "crop_scale": Range(0, 1, open_low=True), "jitter": Range(0, 1, open_high=True)}


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, off_diagonal: float) -> torch.Tensor:
    """Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij² with C = z̃1ᵀ z̃2 / n, z̃ standardised per dimension over the batch."""
    n = len(z1)

    def standardise(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + _EPS)

    c = standardise(z1).T @ standardise(z2) / n
    diag = torch.diagonal(c)
    return (1 - diag).pow(2).sum() + off_diagonal * (c.pow(2).sum() - diag.pow(2).sum())
