"""A model's parameters as one flat vector: the layout trajectory matching stores and unrolls.

Names and shapes in ``named_parameters`` order; ``unflatten`` gives the dict ``functional_call`` takes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ParamLayout:
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, model: torch.nn.Module) -> "ParamLayout":
        named = list(model.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named))

    @property
    def numels(self) -> list[int]:
        return [torch.Size(s).numel() for s in self.shapes]

    @property
    def size(self) -> int:
        return sum(self.numels)

    def flatten(self, model: torch.nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(self.numels), self.shapes)}

    def to_json(self) -> str:
        return json.dumps({"names": list(self.names), "shapes": [list(s) for s in self.shapes]})

    @classmethod
    def from_json(cls, text: str) -> "ParamLayout":
        d = json.loads(text)
        return cls(tuple(d["names"]), tuple(tuple(s) for s in d["shapes"]))
