"""Device choice: CUDA when present, else CPU; every path runs on CPU."""
from __future__ import annotations

import torch

from .errors import CondenseError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    if name not in DEVICES and not name.startswith("cuda:"):
        raise CondenseError(f"Unknown device '{name}'; choose one of: {', '.join(DEVICES)}.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CondenseError(f"Device '{name}' was asked for but CUDA is not available on this machine.")
    return torch.device(name)
