"""LeNet-5 of the DC benchmark: conv5(6) → max pool → conv5(16) → max pool → 120 → 84 → classes, ReLU.

``embed`` is the 84-d penultimate layer (the official LeNet has no ``embed``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import check_min_size, conv_out
from .registry import register_model


def first_padding(side: int) -> int:
    return 2 if side == 28 else 0  # official pads 28px MNIST by 2, so it sees a 32px-equivalent input


def final_side(s: int) -> int:
    s = conv_out(s, 5, first_padding(s)) // 2
    return conv_out(s, 5) // 2


@register_model("LeNet")
class LeNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]):
        super().__init__()
        check_min_size("LeNet", image_size, final_side)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=tuple(first_padding(s) for s in image_size)),
            nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
        )
        flat = 16 * final_side(image_size[0]) * final_side(image_size[1])
        self.head = nn.Sequential(nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        self.feature_dim = 84
        self.classifier = nn.Linear(84, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
