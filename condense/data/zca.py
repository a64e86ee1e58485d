"""ZCA whitening as MTT uses it (Cazenavette et al. 2022; official mtt-distillation ``utils.py``): kornia,
eps 0.1, fitted on the whole training set of unnormalised [0, 1] images. The transform is a (D, D)
matrix and a (D,) mean, so it can be stored beside a buffer and inside a SynthSet and re-applied to
any split (the test set at eval).
"""
from __future__ import annotations

from dataclasses import replace

import torch
from kornia.enhance import ZCAWhitening

from .dataset import ImageDataset

ZCA_EPS = 0.1


def fit_zca(x01: torch.Tensor, eps: float = ZCA_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit on (N, C, H, W) images in [0, 1]; returns (matrix (D, D), mean (D,)) as float32 CPU tensors."""
    zca = ZCAWhitening(eps=eps, compute_inv=False)
    zca.fit(x01.detach().float().cpu())
    return zca.transform_matrix.float().contiguous(), zca.mean_vector.reshape(-1).float().contiguous()


def apply_zca(x01: torch.Tensor, matrix: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """(x − mean) @ W per flattened image, the same maths as kornia's ``linear_transform`` (dim 0)."""
    flat = x01.reshape(x01.shape[0], -1)
    out = (flat - mean.to(flat)) @ matrix.to(flat)
    return out.reshape(x01.shape)


def zca_dataset(ds: ImageDataset, matrix: torch.Tensor, mean: torch.Tensor) -> ImageDataset:
    """The same dataset with every split (validation too, if carved) moved from mean/std space to ZCA space."""
    splits = ("train_x", "test_x") if ds.val_x is None else ("train_x", "test_x", "val_x")
    return replace(ds, **{k: apply_zca(ds.denormalize(getattr(ds, k)), matrix, mean) for k in splits})
