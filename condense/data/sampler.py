"""Per-class real-image sampler: indices grouped by class once, batches drawn on the data's device."""
from __future__ import annotations

from typing import Optional

import torch

from .dataset import ImageDataset


class RealSampler:
    def __init__(self, dataset: ImageDataset, device=None):
        self.dataset = dataset.to(device) if device is not None else dataset
        self.x = self.dataset.train_x
        labels = self.dataset.train_y.cpu()
        self.indices = [torch.nonzero(labels == c).squeeze(1) for c in range(self.dataset.num_classes)]

    def count(self, c: int) -> int:
        return len(self.indices[c])

    def sample_indices(self, c: int, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Training-split rows of ``n`` random images of class ``c`` without replacement (all, shuffled, if n >= count)."""
        idx = self.indices[c]
        return idx[torch.randperm(len(idx), generator=generator)[:n]]

    def sample(self, c: int, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return self.x[self.sample_indices(c, n, generator).to(self.x.device)]

    def sample_classes(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``n`` images of every class, class-major, with their labels."""
        picks = [idx[torch.randperm(len(idx), generator=generator)[:n]] for idx in self.indices]
        labels = torch.cat([torch.full((len(p),), c, dtype=torch.long) for c, p in enumerate(picks)])
        index = torch.cat(picks).to(self.x.device)
        return self.x[index], labels.to(self.x.device)
