"""Starting points for synthetic images: random real images per class, or Gaussian noise.

With a multi-formation factor f, each stored image is a grid of f×f cells holding f² different real images
of its class, each downscaled bilinearly to the cell (IDM's real init with ``--aug``); the decoder
(``condense.store``) crops the same cells back out in the same row-major order.
"""
from __future__ import annotations

from typing import Optional

import torch

import torch.nn.functional as F

from ..data import RealSampler
from ..errors import CondenseError

INITS = ("real", "noise")


def initial_images(sampler: RealSampler, num_classes: int, ipc: int, init: str, generator: torch.Generator,
                   device: torch.device, factor: int = 1) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Class-major (images, labels, training-split rows or None for noise or grids): IPC per class, fresh tensors."""
    if init not in INITS:
        raise CondenseError(f"Unknown init '{init}'; choose one of: {', '.join(INITS)}.")
    smallest = min(sampler.count(c) for c in range(num_classes))
    if init == "real" and ipc * factor ** 2 > smallest:
        need = f" with factor {factor} ({ipc * factor ** 2} real images per class)" if factor > 1 else ""
        raise CondenseError(f"IPC {ipc}{need} is larger than the smallest class ({smallest} training images).")
    labels = torch.arange(num_classes, device=device).repeat_interleave(ipc)
    if init == "real":
        rows = torch.cat([sampler.sample_indices(c, ipc * factor ** 2, generator) for c in range(num_classes)])
        images = sampler.x[rows.to(sampler.x.device)].detach().clone().to(device)
        return (images, labels, rows) if factor == 1 else (grids(images, factor), labels, None)
    shape = sampler.sample(0, 1, generator).shape[1:]
    return torch.randn(num_classes * ipc, *shape, generator=generator).to(device), labels, None


def grids(images: torch.Tensor, f: int) -> torch.Tensor:
    """Every f² consecutive images (N·f², C, H, W) as one stored image: an f×f grid of bilinear thumbnails."""
    n, c, h, w = images.shape
    sh, sw = -(-h // f), -(-w // f)
    small = F.interpolate(images, size=(sh, sw), mode="bilinear", align_corners=False)
    cells = small.view(n // f ** 2, f, f, c, sh, sw).permute(0, 3, 1, 4, 2, 5)  # (N, C, row, sh, col, sw)
    return cells.reshape(n // f ** 2, c, f * sh, f * sw)[..., :h, :w].contiguous()
