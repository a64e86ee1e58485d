"""Two random views of a batch for self-supervised training (the Barlow Twins / SimCLR recipe for small images).

Per image: a random resized crop (area fraction U[crop_scale, 1], aspect ratio log-uniform in [3/4, 4/3],
bilinear), a horizontal flip (p = 0.5, only where mirroring keeps the meaning), colour jitter (p = 0.8:
brightness, contrast and, for colour images, saturation, each a factor in [1 − jitter, 1 + jitter]) and, for
colour images, greyscale (p = 0.2). Applied in [0, 1] pixel space, then normalised again. Every draw comes
from the caller's generator (on the CPU), so an epoch's views are a function of (seed, epoch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ViewConfig:
    crop_scale: float = 0.2   # smallest crop area, as a fraction of the image
    jitter: float = 0.4       # brightness / contrast / saturation factors in [1 − jitter, 1 + jitter]
    p_jitter: float = 0.8
    p_grey: float = 0.2
    flip: bool = True         # False for digits: a mirrored 2 is not a 2


def _crop_flip(x: torch.Tensor, cfg: ViewConfig, g: torch.Generator) -> torch.Tensor:
    n = len(x)
    area = cfg.crop_scale + (1 - cfg.crop_scale) * torch.rand(n, generator=g)
    log_ratio = (torch.rand(n, generator=g) * 2 - 1) * math.log(4 / 3)
    w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)   # crop side as a fraction of the image side
    h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - w)            # the crop stays inside the image
    cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - h)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * sign, cx, h, cy
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _colour(x: torch.Tensor, cfg: ViewConfig, g: torch.Generator) -> torch.Tensor:
    n, c = x.shape[:2]
    factors = 1 + (torch.rand(n, 3, generator=g) * 2 - 1) * cfg.jitter
    on = (torch.rand(n, generator=g) < cfg.p_jitter).float()
    factors = (1 + on[:, None] * (factors - 1)).to(x).view(n, 3, 1, 1, 1)
    grey_on = (torch.rand(n, generator=g) < cfg.p_grey).to(x.device).view(n, 1, 1, 1)
    x = x * factors[:, 0]
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * factors[:, 1] + mean
    if c == 3:
        grey = (x * torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = (x - grey) * factors[:, 2] + grey
        x = torch.where(grey_on, grey.expand_as(x), x)
    return x.clamp(0, 1)


def two_views(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], cfg: ViewConfig,
              g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented copies of the normalised batch ``x``, normalised."""
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    pixels = x * s + m
    return tuple((_colour(_crop_flip(pixels, cfg, g), cfg, g) - m) / s for _ in range(2))  # type: ignore[return-value]
