"""ResNet-18 for small images (CIFAR-style 3x3 stem, no stem pooling), as the DC benchmark.

'ResNet18' uses instance norm (GroupNorm(C, C)), 'ResNet18BN' batch norm. The '_AP' variants
downsample with conv(stride 1) + 2x2 average pooling instead of strided convs and, as official,
classify the flattened final map (512·4·4 at 32px, 512·3·3 at 28px) instead of a pooled vector.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import NORMS, check_min_size, check_pos_int, choose, make_norm
from .registry import register_model

STAGES = ((1, 1), (2, 2), (4, 2), (8, 2))  # (channel multiple of width, stride of the first block); 2 blocks each
NORM_CHOICES = ("instance", "batch", "group", "none")


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str, avg_pool: bool):
        super().__init__()
        conv_stride = 1 if avg_pool else stride
        self.conv1 = nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=conv_stride, padding=1, bias=False)
        self.norm1 = make_norm(norm, out_ch)
        self.down = nn.AvgPool2d(kernel_size=2, stride=2) if (avg_pool and stride != 1) else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1, bias=False)
        self.norm2 = make_norm(norm, out_ch)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            proj = [nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=conv_stride, bias=False)]
            if avg_pool and stride != 1:
                proj.append(nn.AvgPool2d(kernel_size=2, stride=2))
            self.shortcut = nn.Sequential(*proj, make_norm(norm, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.down(F.relu(self.norm1(self.conv1(x))))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))  # out-of-place add: keeps autograd / torch.func happy


@register_model("ResNet18", norm="instance", avg_pool=False)
@register_model("ResNet18BN", norm="batch", avg_pool=False)
@register_model("ResNet18_AP", norm="instance", avg_pool=True)
@register_model("ResNet18BN_AP", norm="batch", avg_pool=True)
class ResNet18(nn.Module):
    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], norm: str = "instance",
                 avg_pool: bool = False, width: int = 64):
        super().__init__()
        check_pos_int(width, "width")
        choose(NORMS, norm, "norm", NORM_CHOICES)
        if avg_pool:  # three 2x2 average pools must leave at least one pixel
            check_min_size("ResNet18 with average-pool downsampling", image_size, lambda s: s // 8)
        self.avg_pool = bool(avg_pool)
        self.stem = nn.Sequential(nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                                  make_norm(norm, width), nn.ReLU())
        blocks, in_ch = [], width
        for mult, stride in STAGES:
            out_ch = width * mult
            blocks += [BasicBlock(in_ch, out_ch, stride, norm, avg_pool), BasicBlock(out_ch, out_ch, 1, norm, avg_pool)]
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        # Plain: global average pool (official avg_pool2d(·, 4) on the 4x4 map at 28/32px is the same thing).
        self.feature_dim = in_ch * (image_size[0] // 8) * (image_size[1] // 8) if avg_pool else in_ch
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x))
        if not self.avg_pool:
            out = F.adaptive_avg_pool2d(out, 1)
        return out.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
