"""Small pieces shared by the matching methods (DM, DataDAM, ...)."""
from __future__ import annotations

from typing import Callable

import torch

# On CPU a frozen forward over thousands of real images is bound by memory traffic, not FLOPs:
# small chunks keep each layer's activations in cache (measured 1.8x faster at 16 than at 256,
# the official per-class batch; see scripts/bench.py). GPUs prefer one big batch.
CPU_CHUNK = 16


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


@torch.no_grad()
def chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int | None = None):
    """``fn(x)`` without autograd, evaluated in cache-sized chunks on CPU and whole on GPU.

    ``fn`` may return a tensor or a list of tensors (e.g. per-layer activations).
    """
    if chunk is None:
        chunk = CPU_CHUNK if x.device.type == "cpu" else x.shape[0]
    parts = [fn(piece) for piece in x.split(max(chunk, 1))]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return [torch.cat(group) for group in zip(*parts)]
