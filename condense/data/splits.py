"""A validation split carved from the training data, so that choosing an iteration, learning rate or
checkpoint never looks at the test set. Reports record the split's descriptor."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import torch

from ..errors import CondenseError
from .dataset import ImageDataset


@dataclass(frozen=True)
class ValidationSpec:
    fraction: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) \
                or not 0 < self.fraction < 1:
            raise CondenseError(f"The validation fraction must be a number strictly between 0 and 1, "
                                f"got {self.fraction!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise CondenseError(f"The validation seed must be a non-negative integer, got {self.seed!r}.")


def carve_validation(ds: ImageDataset, spec: ValidationSpec) -> ImageDataset:
    """Hold out max(1, round(fraction·n_c)) images of each class c, the first of a fixed permutation.

    One generator seeded with ``spec.seed`` draws the permutations of classes 0..K−1 in order. Both parts
    keep the original order. The descriptor in ``validation`` is plain JSON.
    """
    if ds.val_x is not None:
        raise CondenseError(f"Dataset '{ds.name}' already has a validation split.")
    g = torch.Generator().manual_seed(spec.seed)
    y = ds.train_y.cpu()
    held, counts = [], []
    for c in range(ds.num_classes):
        idx = torch.nonzero(y == c).squeeze(1)
        k = max(1, round(spec.fraction * len(idx)))
        if k >= len(idx):
            raise CondenseError(f"Class '{ds.class_names[c]}' of {ds.name} has {len(idx)} training images, too few "
                                f"to hold out {k} for validation and keep one for training.")
        held.append(idx[torch.randperm(len(idx), generator=g)[:k]])
        counts.append(k)
    val = torch.cat(held).sort().values
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[val] = False
    train = torch.nonzero(keep).squeeze(1)
    descriptor = {"fraction": float(spec.fraction), "seed": int(spec.seed), "per_class": counts,
                  "indices_sha256": hashlib.sha256(val.to(torch.int64).numpy().tobytes()).hexdigest()[:16]}
    return replace(ds, train_x=ds.train_x[train], train_y=ds.train_y[train], val_x=ds.train_x[val],
                   val_y=ds.train_y[val], validation=descriptor)
