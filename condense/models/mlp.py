"""MLP of the DC benchmark: flatten → width → width → classes, ReLU; ``embed`` is the last hidden layer."""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import check_pos_int
from .registry import register_model


@register_model("MLP")
class MLP(nn.Module):
    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], width: int = 128):
        super().__init__()
        check_pos_int(width, "width")
        # Official sizes the input layer for 28px MNIST or 32px colour; here it follows the real input.
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * image_size[0] * image_size[1], width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(),
        )
        self.feature_dim = width
        self.classifier = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
