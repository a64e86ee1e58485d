"""The ``min_distance`` defence: keep every synthetic image at least d (L2, [0, 1] pixel space) from every
real training image (Loo et al., ICLR 2024; official yolky/understanding_reconstruction).

Two parts, both in the pixel space the memorization audit measures (denormalised images, D = C·H·W):

- a **penalty** added to the method's loss: ``weight · mean_i((d − min(d, d_i))²)`` with d_i the
  distance of synthetic image i to its nearest real training image. The nearest one is found with
  exact faiss kNN on the current images (no grad); d_i is then recomputed in torch with grad. The
  reference code uses weight 50. Alone it pushes images out but does not bound them: the matching
  loss can pull an image back inside.
- a **projection** after every image step, which makes the bound hold: an image whose clamped
  [0, 1] version lies closer than d to its nearest real image r is moved along the ray from r
  through it, ``clamp(r + t·(x − r))``, to distance d (t by bisection; the distance is
  non-decreasing in t). An exact copy (x = r) has no ray, so it moves towards the far corner of the
  box instead. Moving away from r can bring the image near another real image, so the search and
  projection repeat until no image violates the bound. Only violating images change.

Measuring on the clamped image is the stronger guarantee: clamping to the box that holds every real
image never increases a distance, so the unclamped image is at least as far. Nothing here draws
random numbers, so resumed runs stay bit-exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..data import ImageDataset
from ..errors import CondenseError
from ..neighbours import NeighbourIndex

MARGIN = 1e-3       # relative slack so float32 round trips cannot undo the bound
MAX_ROUNDS = 50
CANDIDATES = 4      # exact distances over faiss's top candidates (float32 ranking near-ties)


@dataclass
class MinDistanceConfig:
    """Mixin for the configs of methods whose image step honours the defence (``PixelSynthesizer.descend``)."""

    min_distance: float = 0.0          # every image ≥ d (L2, [0, 1] pixels) from all real training images; 0 = off
    min_distance_weight: float = 50.0  # weight of the penalty 50·mean((d − min(d, d_i))²) (Loo et al. code)


class MinDistance:
    @classmethod
    def of(cls, cfg: Any, dataset: ImageDataset) -> Optional["MinDistance"]:
        """The defence a method config asks for, or None (off, or a method without the mixin)."""
        d = getattr(cfg, "min_distance", 0.0)
        return cls(dataset, d, cfg.min_distance_weight) if d else None

    def __init__(self, dataset: ImageDataset, distance: float, weight: float = 50.0):
        if not (math.isfinite(distance) and distance > 0):
            raise CondenseError(f"min_distance must be a positive number to enable the defence, got {distance}.")
        self.data, self.d, self.weight = dataset, float(distance), float(weight)
        self.real = dataset.denormalize(dataset.train_x).detach().float()
        self.index = NeighbourIndex(self.real)
        self.farthest = torch.sqrt(torch.maximum(self.real, 1 - self.real).pow(2).flatten(1).sum(1)).min().item()
        if self.d * (1 + MARGIN) >= self.farthest:
            raise CondenseError(f"min_distance {distance} cannot be met inside the [0, 1] pixel box (some training "
                                f"image has no pixel-space point farther than {self.farthest:.3g}); choose a smaller d.")

    def _nearest(self, x01: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        dist, idx = self.index.search(x01, CANDIDATES)
        return dist[:, 0], idx[:, 0]

    def penalty(self, images: torch.Tensor) -> torch.Tensor:
        x01 = self.data.denormalize(images)
        _, idx = self._nearest(x01.detach())
        nearest = self.real[torch.from_numpy(idx).to(self.real.device)].to(images.device)
        d_i = (x01 - nearest).flatten(1).norm(dim=1)
        return self.weight * (self.d - torch.clamp(d_i, max=self.d)).pow(2).mean()

    @torch.no_grad()
    def project(self, images: torch.Tensor) -> int:
        """Move violating images (in place, normalised space) to ≥ d from every real image; returns rounds used."""
        target = self.d * (1 + MARGIN)
        for rounds in range(MAX_ROUNDS):
            x01 = self.data.denormalize(images).clamp(0, 1)
            dist, idx = self._nearest(x01)
            bad = np.nonzero(dist < self.d * (1 + MARGIN / 2))[0]
            if len(bad) == 0:
                return rounds
            rows = torch.from_numpy(bad).to(images.device)
            real = self.real[torch.from_numpy(idx[bad]).to(self.real.device)].to(images.device).double()
            moved = push_out(x01[rows].double(), real, target)
            images[rows] = self.data.normalize(moved.to(images.dtype))
        raise CondenseError(f"The min_distance projection did not settle after {MAX_ROUNDS} rounds; "
                            f"d = {self.d} is too large for this training set, choose a smaller one.")


def push_out(x: torch.Tensor, r: torch.Tensor, target: float, steps: int = 60) -> torch.Tensor:
    """Per row: the point clamp(r + t·u) at distance ≥ ``target`` from r, smallest such t (bisection).

    u = x − r; rows whose ray cannot reach ``target`` inside the box (e.g. x = r) use u = corner − r,
    the direction to the farthest corner of the box from r.
    """
    flat_x, flat_r = x.flatten(1), r.flatten(1)
    u = flat_x - flat_r

    def reach(u, t):  # distance from r of clamp(r + t·u), non-decreasing in t
        return (torch.clamp(flat_r + t[:, None] * u, 0, 1) - flat_r).norm(dim=1)

    big = torch.full((len(u),), 1e6, dtype=u.dtype, device=u.device)
    corner = torch.where(flat_r < 0.5, 1.0, 0.0).to(u) - flat_r
    u = torch.where((reach(u, big) < target)[:, None], corner, u)
    lo = torch.zeros(len(u), dtype=u.dtype, device=u.device)
    hi = torch.ones_like(lo)
    while bool((reach(u, hi) < target).any()):
        hi = torch.where(reach(u, hi) < target, hi * 2, hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = reach(u, mid) >= target
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return torch.clamp(flat_r + hi[:, None] * u, 0, 1).reshape(x.shape)
