"""VGG11 for small images, as the DC benchmark: 'VGG11' uses instance norm (GroupNorm(C, C)), 'VGG11BN' batch norm.

Eight Conv3x3 → norm → ReLU layers with five 2x2 max pools, then one Linear on the flattened
features (512 at 32px). ``width`` scales every layer (64 = official).
"""
from __future__ import annotations

import torch.nn as nn

from .layers import NORMS, SequentialFeatures, check_min_size, check_pos_int, choose, conv_out, make_norm
from .registry import register_model

VGG11_LAYOUT = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")  # channels at width 64
NORM_CHOICES = ("instance", "batch", "group", "none")


def first_padding(side: int) -> int:
    return 3 if side == 28 else 1  # official pads 28px MNIST by 3 → 32px


def final_side(s: int) -> int:
    s = conv_out(s, 3, first_padding(s))
    for _ in range(VGG11_LAYOUT.count("M")):
        s //= 2
    return s


@register_model("VGG11", norm="instance")
@register_model("VGG11BN", norm="batch")
class VGG11(SequentialFeatures):
    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], norm: str = "instance",
                 width: int = 64):
        super().__init__()
        check_pos_int(width, "width")
        choose(NORMS, norm, "norm", NORM_CHOICES)  # validate before building anything
        check_min_size("VGG11", image_size, final_side)
        layers, in_ch = [], channels
        for item in VGG11_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            out_ch = max(1, item * width // 64)
            pad = tuple(first_padding(s) for s in image_size) if not layers else 1
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=pad), make_norm(norm, out_ch), nn.ReLU()]
            in_ch = out_ch
        self.set_stack(layers, in_ch, final_side, image_size, num_classes)
