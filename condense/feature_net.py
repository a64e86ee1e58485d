"""A feature network for nearest-neighbour work (coresets, memorization audits).

Its ``embed`` output is the feature space: a registry model with the user's weights (a network
file, or a state dict read with ``weights_only=True``), or one trained briefly on the real training
set, so that near neighbours in feature space mean "the network sees them alike".
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from .errors import CondenseError
from .models import load_state_into
from .train import Labels, TrainRecipe, fit


def brief_recipe(epochs: int, lr: float, batch: int) -> TrainRecipe:
    """A few epochs of plain supervised SGD (momentum 0.9, wd 5e-4, constant lr, no augmentation)."""
    return TrainRecipe(epochs=epochs, batch_size=batch, lr=lr, momentum=0.9, weight_decay=5e-4)


def feature_network(build: Callable[[], torch.nn.Module], x: torch.Tensor, y: torch.Tensor, *, weights: str = "",
                    epochs: int = 3, lr: float = 0.01, batch: int = 256, generator: Optional[torch.Generator] = None,
                    name: str = "") -> torch.nn.Module:
    """``build()`` a network with ``embed``; load ``weights`` if given, else train ``epochs`` on (x, y); eval mode.

    The caller seeds torch's RNG around ``build`` when the initialisation must be reproducible.
    """
    net = build()
    if not hasattr(net, "embed"):
        raise CondenseError(f"Feature network '{name or type(net).__name__}' has no embed(); use a registry model.")
    if weights:
        load_state_into(net, weights)
    elif epochs > 0:
        fit([net], [generator if generator is not None else torch.Generator().manual_seed(0)], x, Labels(y),
            brief_recipe(epochs, lr, batch))
    return net.eval()
