"""The small-image AlexNet of the DC benchmark: convs 128-192-256-192-192, three 2x2 max pools, one Linear.

'AlexNetBN' puts BatchNorm after every conv, as the official ``AlexNetBN``.
"""
from __future__ import annotations

import torch.nn as nn

from .layers import NORMS, SequentialFeatures, check_min_size, choose, conv_out, make_norm
from .registry import register_model

# (out channels, kernel, pool after) per conv; padding keeps the size ("same").
ALEXNET_LAYOUT = ((128, 5, True), (192, 5, True), (256, 3, False), (192, 3, False), (192, 3, True))
NORM_CHOICES = ("none", "batch", "instance", "group")


def first_padding(side: int) -> int:
    return 4 if side == 28 else 2  # official pads 28px MNIST by 4 (→ 32px-equivalent), else "same"


def final_side(s: int) -> int:
    s = conv_out(s, 5, first_padding(s))
    return s // 8  # three 2x2 max pools; the other convs keep the size


@register_model("AlexNet", norm="none")
@register_model("AlexNetBN", norm="batch")
class AlexNet(SequentialFeatures):
    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], norm: str = "none"):
        super().__init__()
        choose(NORMS, norm, "norm", NORM_CHOICES)  # validate before building anything
        check_min_size("AlexNet", image_size, final_side)
        layers, in_ch = [], channels
        for i, (out_ch, k, pool) in enumerate(ALEXNET_LAYOUT):
            pad = tuple(first_padding(s) for s in image_size) if i == 0 else k // 2
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=k, padding=pad), make_norm(norm, out_ch), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            in_ch = out_ch
        self.set_stack(layers, in_ch, final_side, image_size, num_classes)
