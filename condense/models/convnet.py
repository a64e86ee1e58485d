"""ConvNet, the distillation workhorse (Gidaris & Komodakis 2018 via DC; official VICO-UoE ``networks.py``).

``depth`` × [Conv3x3(width, pad 1) → norm → act → pool 2x2], then one Linear on the flattened
features. Defaults: width 128, depth 3, instance norm (GroupNorm(C, C)), ReLU, average pooling.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ACTIVATIONS, NORMS, POOLS, check_min_size, check_pos_int, choose, make_act, make_norm, make_pool
from .registry import register_model

# Variants are data: registry name -> preset kwargs. The A*/IN names are the official aliases.
CONVNET_VARIANTS: dict[str, dict] = {
    "ConvNet": {},
    **{f"ConvNetD{d}": {"depth": d} for d in range(1, 6)},
    **{f"ConvNetW{w}": {"width": w} for w in (32, 64, 128, 256)},
    "ConvNetIN": {"norm": "instance"}, "ConvNetBN": {"norm": "batch"}, "ConvNetLN": {"norm": "layer"},
    "ConvNetGN": {"norm": "group"}, "ConvNetNN": {"norm": "none"},
    "ConvNetAP": {"pool": "avg"}, "ConvNetMP": {"pool": "max"}, "ConvNetNP": {"pool": "none"},
    "ConvNetSigmoid": {"act": "sigmoid"}, "ConvNetLeakyReLU": {"act": "leakyrelu"},
    "ConvNetAS": {"act": "sigmoid"}, "ConvNetAR": {"act": "relu"}, "ConvNetAL": {"act": "leakyrelu"},
}


def first_padding(side: int) -> int:
    # Official code treats 28px (MNIST) as 32px: the first conv pads by 3 so 28 → 32. The official
    # rule is "1 channel ⇒ pad 3", which breaks 1-channel 32px inputs; keying on the size does not.
    return 3 if side == 28 else 1


class ConvBlock(nn.Module):
    """Conv3x3 → norm → act → pool. ``forward`` returns (activation output, pooled output)."""

    def __init__(self, in_ch: int, out_ch: int, padding: tuple[int, int], side: tuple[int, int],
                 norm: str, act: str, pool: str):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=padding)
        self.norm = make_norm(norm, out_ch, side)
        self.act = make_act(act)
        self.pool = make_pool(pool)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.act(self.norm(self.conv(x)))
        return a, self.pool(a)


class ConvNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], width: int = 128,
                 depth: int = 3, norm: str = "instance", act: str = "relu", pool: str = "avg"):
        super().__init__()
        check_pos_int(width, "width")
        check_pos_int(depth, "depth")
        for table, kind, what in ((NORMS, norm, "norm"), (ACTIVATIONS, act, "activation"), (POOLS, pool, "pooling")):
            choose(table, kind, what)  # fail on a typo before the size check can blame the image
        shrink = 1 if pool == "none" else 2

        def final_side(s: int) -> int:
            s = s + 2 * first_padding(s) - 2
            for _ in range(depth):
                s //= shrink
            return s

        check_min_size(f"ConvNet of depth {depth}", image_size, final_side)
        side = tuple(s + 2 * first_padding(s) - 2 for s in image_size)
        padding = tuple(first_padding(s) for s in image_size)
        blocks, in_ch = [], channels
        for _ in range(depth):
            blocks.append(ConvBlock(in_ch, width, padding, side, norm, act, pool))
            in_ch, padding, side = width, (1, 1), tuple(s // shrink for s in side)
        self.blocks = nn.ModuleList(blocks)
        self.feature_dim = width * side[0] * side[1]
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def forward_with_activations(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each block's activation output (B, C, H, W), before pooling, and the flat embedding, in one pass.

        DataDAM builds its spatial attention maps from the activations.
        """
        acts = []
        for block in self.blocks:
            a, x = block(x)
            acts.append(a)
        return acts, x.flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_activations(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


for _name, _preset in CONVNET_VARIANTS.items():
    register_model(_name, **_preset)(ConvNet)
