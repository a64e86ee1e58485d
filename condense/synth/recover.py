"""Recovery against a frozen teacher (SRe2L, Yin et al. NeurIPS 2023, official VILA-Lab/SRe2L
``recover_cifar.py`` and its ``BNFeatureHook``; reused by INFER's compensators, official zhangxin-xd/UFC).

The objective of one batch is CE(teacher(roll(x)), classes) + r_bn · Σ_layers w_l (‖μ_l − running_mean_l‖₂ +
‖σ²_l − running_var_l‖₂): per BatchNorm layer, the batch mean and biased variance of its input over (N, H, W),
each norm not squared, the first layer weighted ``first_bn_multiplier`` (10), the others 1. Several
independent batches (one per IPC index, or per base batch) go through one forward: each takes its own
statistics (``groups`` contiguous equal-size slices) and its own random roll, so the optimisation is the
official one run for every batch at once. Adam (lr 0.25, betas (0.5, 0.9)) with a cosine decay to 0.
Hooks sit on every BatchNorm (the official: ``BatchNorm2d`` only; the same on conv teachers). The running
statistics matched are the teacher's: ``condense teachers`` trains with DSA (colour, scale, rotation, cutout),
the official teachers with crop + flip, so the target statistics are those of DSA-augmented batches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import ImageDataset
from ..models import batchnorm_layers
from .decoupled import TeacherConfig


@dataclass
class RecoverConfig(TeacherConfig):
    lr_img: float = 0.25
    beta1: float = 0.5
    beta2: float = 0.9
    r_bn: float = 0.01               # SRe2L CIFAR; INFER CIFAR uses 1
    first_bn_multiplier: float = 10.0
    jitter: int = 4                  # random circular roll of 0..jitter pixels per axis (no flip, no crop on CIFAR)


def cosine_lr(base: float, it: int, total: int) -> float:
    """The official ``lr_cosine_policy`` without warm-up: base at iteration 0, decaying to 0 at ``total``."""
    return 0.5 * (1 + math.cos(math.pi * it / max(total, 1))) * base


def roll_groups(x: torch.Tensor, groups: int, jitter: int, gen: torch.Generator) -> torch.Tensor:
    """Each of ``groups`` contiguous slices rolled by its own (dy, dx) in 0..jitter (the official ``randint``)."""
    if jitter == 0:
        return x
    shifts = torch.randint(jitter + 1, (groups, 2), generator=gen).tolist()
    parts = x.reshape(groups, -1, *x.shape[1:])
    return torch.cat([torch.roll(p, shifts=tuple(s), dims=(-2, -1)) for p, s in zip(parts, shifts)])


def pixel_bounds(data: ImageDataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """[0, 1] pixels in the normalised space, per channel, shaped (1, C, 1, 1)."""
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    return -mean / std, (1 - mean) / std


class BNStatistics:
    """The BN-statistics loss of a frozen teacher, per group: forward hooks on every BatchNorm layer, present
    only during a call (so the teacher labels images afterwards without them)."""

    def __init__(self, net: nn.Module, first_multiplier: float):
        self.net, self.layers = net, batchnorm_layers(net)
        self.weights = [first_multiplier] + [1.0] * (len(self.layers) - 1)

    def __call__(self, x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's logits on ``x`` and the weighted BN loss of each of its ``groups`` slices, (G,)."""
        terms = []

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            xg = inputs[0].reshape(groups, -1, *inputs[0].shape[1:])  # (G, B, C, ...)
            dims = [1] + list(range(3, xg.dim()))
            mean, var = xg.mean(dims), xg.var(dims, unbiased=False)   # (G, C)
            terms.append((var - module.running_var).norm(dim=1) + (mean - module.running_mean).norm(dim=1))

        handles = [m.register_forward_hook(hook) for m in self.layers]
        try:
            logits = self.net(x)
        finally:
            for h in handles:
                h.remove()
        return logits, sum(w * t for w, t in zip(self.weights, terms))


def recovery_loss(bn: BNStatistics, x: torch.Tensor, y: torch.Tensor, groups: int, r_bn: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per group: CE (mean over its images) + r_bn · BN loss; returns (sum over groups, CE (G,), BN (G,)).
    Summing independent groups gives every image exactly its own batch's gradient."""
    logits, stats = bn(x, groups)
    ce = F.cross_entropy(logits, y, reduction="none").view(groups, -1).mean(1)
    return (ce + r_bn * stats).sum(), ce, stats
