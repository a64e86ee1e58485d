"""Patch grids: split images into square patches, keep some, store only those, and put them back.

Dataset Quantization (Zhou et al., ICCV 2023; official magic-research/Dataset_Quantization) drops the least
salient patches of every selected image and stores the rest; a masked autoencoder fills the holes when the
set is decoded. DQ resizes every image to 224 px and cuts a 14×14 grid of 16-px patches, so on CIFAR one
patch covers about 2.3 of the original pixels. ``grid_patch`` keeps that proportion without resizing: the
patch side nearest to side/14 that divides the image (2 px at 32 and 28 px: a 16×16 and a 14×14 grid).

Layout: tokens are patches in raster order (row by row), each flattened channel-major (C, p, p). A set
stores the kept patches of image n side by side in raster order as one strip (C, p, k·p), and the keep
mask (gh, gw); every image keeps the same number k, so the strips stack into one (N, C, p, k·p) array.
"""
from __future__ import annotations

import math

import torch

from ..errors import CondenseError

DQ_GRID = 14  # patches per side in DQ's 224-px pipeline


def grid_patch(height: int, width: int, grid: int = DQ_GRID) -> int:
    """The patch side nearest to side/``grid`` (ties: the smaller) that divides both sides."""
    divisors = [p for p in range(1, min(height, width) + 1) if height % p == 0 and width % p == 0]
    return min(divisors, key=lambda p: (abs(p - min(height, width) / grid), p))


def check_grid(shape: tuple[int, ...], patch: int, where: str) -> tuple[int, int]:
    """The grid (gh, gw) of ``patch``-px patches over images of ``shape`` (C, H, W), or one sentence."""
    _, h, w = shape
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1 or h % patch or w % patch:
        raise CondenseError(f"{where} has patch size {patch!r}; it must be a positive integer dividing the image "
                            f"sides {h}×{w}.")
    return h // patch, w // patch


def kept_count(patches: int, mask_ratio: float) -> int:
    """Patches kept per image when the lowest ``mask_ratio`` are dropped: ⌊L·(1 − r)⌋, as DQ (at least one)."""
    return max(1, math.floor(patches * (1 - mask_ratio) + 1e-9))  # 1e-9: 64·(1 − 0.25) must stay 48


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, L, C·p·p) tokens in raster order."""
    n, c, h, w = x.shape
    t = x.reshape(n, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(n, (h // patch) * (w // patch), c * patch * patch)


def unpatchify(tokens: torch.Tensor, patch: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """(N, L, C·p·p) -> (N, C, H, W); the exact inverse of :func:`patchify` (a permutation of values)."""
    c, h, w = shape
    n = tokens.shape[0]
    t = tokens.reshape(n, h // patch, w // patch, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return t.reshape(n, c, h, w)


def keep_top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """A bool mask (N, L) of the ``keep`` highest scores of every row; equal scores keep the earlier patch."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :keep]
    mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    return mask.scatter_(1, order, True)


def pack(images: torch.Tensor, keep: torch.Tensor, patch: int) -> torch.Tensor:
    """The kept patches of every image as one strip: (N, C, H, W), mask (N, L) -> (N, C, p, k·p)."""
    n, c = images.shape[:2]
    k = int(keep[0].sum())
    kept = patchify(images, patch)[keep].reshape(n, k, c, patch, patch)  # boolean indexing keeps raster order
    return kept.permute(0, 2, 3, 1, 4).reshape(n, c, patch, k * patch)


def unpack(strips: torch.Tensor, keep: torch.Tensor, patch: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """Images with the kept patches in place and zeros (the dataset mean, in normalised space) elsewhere."""
    n, c = strips.shape[:2]
    k = strips.shape[3] // patch
    kept = strips.reshape(n, c, patch, k, patch).permute(0, 3, 1, 2, 4).reshape(n * k, c * patch * patch)
    tokens = strips.new_zeros(n, keep.shape[1], c * patch * patch)
    tokens[keep] = kept
    return unpatchify(tokens, patch, shape)
