"""Starting points for synthetic images: random real images per class, or Gaussian noise."""
from __future__ import annotations

from typing import Optional

import torch

from ..data import RealSampler
from ..errors import CondenseError

INITS = ("real", "noise")


def initial_images(sampler: RealSampler, num_classes: int, ipc: int, init: str, generator: torch.Generator,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Class-major (images, labels, training-split rows or None for noise): IPC per class, fresh tensors."""
    if init not in INITS:
        raise CondenseError(f"Unknown init '{init}'; choose one of: {', '.join(INITS)}.")
    smallest = min(sampler.count(c) for c in range(num_classes))
    if init == "real" and ipc > smallest:
        raise CondenseError(f"IPC {ipc} is larger than the smallest class ({smallest} training images).")
    labels = torch.arange(num_classes, device=device).repeat_interleave(ipc)
    if init == "real":
        rows = torch.cat([sampler.sample_indices(c, ipc, generator) for c in range(num_classes)])
        return sampler.x[rows.to(sampler.x.device)].detach().clone().to(device), labels, rows
    shape = sampler.sample(0, 1, generator).shape[1:]
    return torch.randn(num_classes * ipc, *shape, generator=generator).to(device), labels, None
