"""A feature network for nearest-neighbour work (coresets, memorization audits).

Its ``embed`` output is the feature space: either a registry model with user weights
(``torch.load(weights_only=True)``, never pickle) or a model trained briefly on the real
training set, so that near neighbours in feature space mean "the network sees them alike".
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .errors import CondenseError


def load_weights(net: torch.nn.Module, path: str) -> None:
    if not os.path.isfile(path):
        raise CondenseError(f"Feature weights {path} do not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as err:
        raise CondenseError(f"Feature weights {path} do not fit the feature network "
                            f"({type(err).__name__}).") from None


def train_briefly(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, batch: int,
                  generator: torch.Generator) -> None:
    """A few epochs of plain supervised SGD (momentum 0.9, wd 5e-4, no augmentation) on (x, y)."""
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(batch):
            idx = idx.to(x.device)
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


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
        load_weights(net, weights)
    elif epochs > 0:
        train_briefly(net, x, y, epochs=epochs, lr=lr, batch=batch,
                      generator=generator if generator is not None else torch.Generator().manual_seed(0))
    return net.eval()
