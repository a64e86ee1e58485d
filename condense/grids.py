"""PNG grids of a SynthSet for people to look at (``condense show``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .io import atomic_write
from .store import SynthSet


def save_grid(synth: SynthSet, path: str, max_per_class: int = 10, min_cell: int = 32, decoded: bool = False) -> str:
    """Write a PNG grid, one row per class, denormalised; tiny images are upscaled (nearest). ``decoded``
    draws the training images the set stands for (after a multi-formation decoder) instead of the stored ones."""
    from torchvision.utils import save_image  # torchvision is slow to import; only this command needs it

    images, targets = synth.decode() if decoded else (synth.images, synth.labels)
    if synth.label_kind == "regression":  # no classes (krr_st): rows of consecutive images
        labels = torch.arange(len(images)) // max_per_class
    else:
        labels = (targets.argmax(1) if targets.dim() == 2 else targets).cpu()
    pixels = synth.denormalized(images)
    rows = []
    for c in range(synth.num_classes):
        row = pixels[labels == c][:max_per_class]
        pad = max_per_class - row.shape[0]
        if pad > 0:  # keep rows aligned when a class has fewer images
            row = torch.cat([row, torch.ones(pad, *row.shape[1:])])
        rows.append(row)
    grid = torch.cat(rows)
    scale = max(1, -(-min_cell // grid.shape[-1]))
    if scale > 1:
        grid = F.interpolate(grid, scale_factor=scale, mode="nearest")
    atomic_write(path, lambda tmp: save_image(grid, tmp, nrow=max_per_class, padding=2, pad_value=1.0, format="png"))
    return path
