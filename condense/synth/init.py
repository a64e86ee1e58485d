"""Starting points for synthetic images: random real images per class, or Gaussian noise."""
from __future__ import annotations

import torch

from ..data import RealSampler
from ..errors import CondenseError

INITS = ("real", "noise")


def initial_images(sampler: RealSampler, num_classes: int, ipc: int, init: str,
                   generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-major (images, labels): IPC per class, as fresh tensors on ``device``."""
    if init not in INITS:
        raise CondenseError(f"Unknown init '{init}'; choose one of: {', '.join(INITS)}.")
    smallest = min(sampler.count(c) for c in range(num_classes))
    if init == "real" and ipc > smallest:
        raise CondenseError(f"IPC {ipc} is larger than the smallest class ({smallest} training images).")
    labels = torch.arange(num_classes, device=device).repeat_interleave(ipc)
    if init == "real":
        images = torch.cat([sampler.sample(c, ipc, generator) for c in range(num_classes)])
    else:
        shape = sampler.sample(0, 1, generator).shape[1:]
        images = torch.randn(num_classes * ipc, *shape, generator=generator).to(device)
    return images.detach().clone().to(device), labels
