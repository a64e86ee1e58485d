"""Per-epoch checkpoints of a teacher in training, so a killed ``condense teachers`` resumes exactly.

``torch.save`` of tensors and plain containers (read with ``weights_only=True``, never unpickling objects):
the epoch done, the network's state (BatchNorm statistics included), the optimiser's state, the settings
key and a SHA-256 over every field (``condense.checkpoint``). Written atomically beside the network file;
refused, in one sentence, when a field is missing or mistyped, the checksum fails or the settings differ.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..checkpoint import read_checkpoint, write_training_state
from ..errors import CondenseError

FORMAT = 1
_FIELDS = {"format": int, "key": str, "epoch": int, "model": dict, "optimizer": dict, "seconds": float}
_FIX = "delete it to train this teacher from the start"


def checkpoint_path(network_path: str) -> str:
    return os.path.splitext(network_path)[0] + ".ckpt.pt"


def save(path: str, key: str, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         seconds: float) -> None:
    write_training_state(path, FORMAT, key, epoch, model, optimizer, seconds=float(seconds))


def load(path: str, key: str) -> dict[str, Any]:
    """The checkpoint's fields, checked; any problem is one sentence naming the fix."""
    payload = read_checkpoint(path, what="Teacher checkpoint", version=FORMAT, fields=_FIELDS, fix=_FIX)
    if payload["key"] != key:
        raise CondenseError(f"Teacher checkpoint {path} was made with other settings (data, model, seed or recipe); "
                            f"rerun with the same options, or {_FIX}.")
    return payload
