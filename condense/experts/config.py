"""Expert training styles as data, and the config every expert of one buffer shares.

MTT (Cazenavette et al. 2022, official mtt-distillation ``buffer.py``): plain SGD, lr 0.01.
AST (Shen et al. 2023, official AST ``buffer.py --optim SGDMOM --loss_decay --gp True``): base lr
0.003, momentum 0.9, weight decay 1e-3, lr ×0.6 once after mid-training with a fresh optimiser,
cross-entropy scaled 0.5 → 0.95 over the first 10 epochs, input-gradient penalty with weight 2.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import CondenseError
from ..fields import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, SEED, check_fields
from ..train import TrainRecipe

STYLES: dict[str, dict[str, Any]] = {
    "mtt": {"lr": 0.01, "momentum": 0.0, "weight_decay": 0.0, "lr_decay": 1.0, "loss_ramp": False,
            "grad_penalty": 0.0},
    "ast": {"lr": 0.003, "momentum": 0.9, "weight_decay": 1e-3, "lr_decay": 0.6, "loss_ramp": True,
            "grad_penalty": 2.0},
}
# Ranges by field name (types come from ExpertConfig).
RANGES = {"max_per_class": AT_LEAST_1, "epochs": AT_LEAST_1, "batch_size": AT_LEAST_1, "lr": POSITIVE,
          "momentum": FRACTION, "weight_decay": NON_NEGATIVE, "lr_decay": POSITIVE, "grad_penalty": NON_NEGATIVE,
          "seed": SEED}
LOSS_RAMP = tuple(0.5 + 0.05 * i for i in range(10))  # AST "clipping loss": epoch e < 10 scales CE by this


@dataclass
class ExpertConfig:
    dataset: str = "mnist5k"
    data_root: Optional[str] = None
    max_per_class: Optional[int] = None
    model: str = "ConvNet"
    model_args: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    style: str = "mtt"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    loss_ramp: bool = False
    grad_penalty: float = 0.0
    batch_size: int = 256
    dsa: bool = True
    zca: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(type(self), dataclasses.asdict(self), RANGES, "Expert")

    @classmethod
    def for_style(cls, style: str, **overrides: Any) -> "ExpertConfig":
        if style not in STYLES:
            raise CondenseError(f"Unknown expert style '{style}'; choose one of: {', '.join(STYLES)}.")
        values = {**STYLES[style], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(style=style, **values)

    def key(self) -> str:
        """Everything that makes two experts comparable (one buffer = one key)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def recipe(self) -> TrainRecipe:
        """The official schedule: the lr drops (fresh optimiser) after the epoch with 0-based index epochs//2 + 1."""
        return TrainRecipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, schedule="step" if self.lr_decay != 1.0 else "constant",
                           decay_factor=self.lr_decay, decay_after=self.epochs // 2 + 2, fresh_optimizer_at_decay=True)

    def loss_scale(self, epoch: int) -> float:
        """AST's ramp on (1-based) ``epoch``; 1 elsewhere and for MTT."""
        return LOSS_RAMP[epoch - 1] if self.loss_ramp and epoch <= len(LOSS_RAMP) else 1.0
