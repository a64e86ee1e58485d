"""Frozen teachers as one labeller: the average of their logits (INFER's static and dynamic labels,
Zhang et al. ICLR 2025, official zhangxin-xd/UFC ``val_static.py`` / ``val_dyn.py``; one teacher is itself)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


class Ensemble(nn.Module):
    """Mean logits of ``nets``, each in eval mode (BatchNorm reads its running statistics: the official CIFAR
    relabel of SRe2L left the teacher in train mode, which lets the statistics drift; here they never move)."""

    def __init__(self, nets: Sequence[nn.Module]):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "Ensemble":
        return super().train(False)  # a labeller never switches to batch statistics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).mean(0)


@torch.no_grad()
def static_logits(labeller: nn.Module, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """``labeller``'s logits on the un-augmented images ``x`` (float32, on x's device), in chunks."""
    return torch.cat([labeller(part) for part in x.split(chunk)]).float()
