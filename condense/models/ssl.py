"""A self-supervised encoder: any registry backbone plus the Barlow Twins projector (Zbontar et al., ICML 2021).

``embed`` is the backbone's representation (what KRR-ST regresses on, Lee et al. ICLR 2024: the target
model with its head removed); ``forward`` is the projector's output that the Barlow Twins loss sees. The
projector is Linear → BN → ReLU → Linear → BN → ReLU → Linear, as the paper's, at ``hidden`` units
(the paper uses 8192; 512 keeps a CPU run small) with ``num_classes`` outputs. Saved as a network file
(role ``ssl``) and rebuilt from the registry like every other model.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn

from .layers import check_pos_int
from .registry import create_model, register_model


@register_model("BarlowTwins")
class BarlowTwins(nn.Module):
    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], backbone: str = "ConvNetBN",
                 backbone_args: Optional[dict[str, Any]] = None, hidden: int = 512):
        super().__init__()
        check_pos_int(hidden, "hidden")
        self.backbone = create_model(backbone, channels, 1, image_size, **(backbone_args or {}))
        self.backbone.classifier = nn.Identity()  # the encoder's head is never used (KRR-ST drops it too)
        self.feature_dim = self.backbone.feature_dim
        self.classifier = nn.Sequential(  # the projector; named like every model's head
            nn.Linear(self.feature_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes, bias=False))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.embed(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
