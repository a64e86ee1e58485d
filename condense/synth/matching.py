"""Small pieces shared by the matching methods (DM, DataDAM, ...)."""
from __future__ import annotations

import torch


def class_means(values: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class mean of the rows of ``values`` (B, ...) -> (K, ...); differentiable."""
    flat = values.reshape(values.shape[0], -1)
    sums = torch.zeros(num_classes, flat.shape[1], dtype=flat.dtype, device=flat.device).index_add(0, labels, flat)
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).to(flat.dtype)
    return (sums / counts[:, None]).reshape(num_classes, *values.shape[1:])


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    """A randomly initialised network used only as a fixed feature map (DM/DataDAM)."""
    model.requires_grad_(False)
    return model
