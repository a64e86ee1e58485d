"""Checksummed checkpoint files: written atomically, read back checked, field by field.

Distillation (``synth/driver.py``), teacher training (``teachers/``) and SSL pre-training (``ssl/``)
checkpoints are ``torch.save`` files of tensors and plain containers, read with ``weights_only=True``
(never unpickling objects). Each carries a canonical SHA-256 of every other field, so a flipped byte,
a missing field or one of the wrong type is refused in one sentence rather than resumed from.
"""
from __future__ import annotations

import hashlib
import io
import os
from typing import Any, Collection

import torch

from .errors import CondenseError
from .io import unreadable, write_bytes


def _feed(value: Any, h: Any) -> None:
    """Feed ``value`` into hash ``h`` in a canonical order (dict keys sorted by their repr)."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{list(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D{len(value)}".encode())
        for k in sorted(value, key=repr):
            h.update(repr(k).encode())
            _feed(value[k], h)
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _feed(v, h)
    else:
        h.update(f"V{type(value).__name__}:{value!r}".encode())


def payload_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 over every field of ``payload`` but ``checksum`` itself."""
    h = hashlib.sha256()
    _feed({k: v for k, v in payload.items() if k != "checksum"}, h)
    return h.hexdigest()


def write_checkpoint(path: str, payload: dict[str, Any]) -> None:
    """Add the checksum and write atomically; serialised in memory first, so a full disk is a plain OSError."""
    payload = {**payload, "checksum": ""}
    payload["checksum"] = payload_checksum(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def read_checkpoint(path: str, *, what: str, version: int, fields: dict[str, type], fix: str,
                    nullable: Collection[str] = ()) -> dict[str, Any]:
    """The payload of ``path``, checked for format ``version``, each field's type and the checksum.

    ``what`` names the file in messages ("Checkpoint", "Teacher checkpoint"); ``fix`` ends each of them.
    Fields in ``nullable`` may also be None.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as err:
        raise unreadable(path, err, what) from None
    except Exception:
        raise CondenseError(f"{what} {path} is corrupt or truncated; {fix}.") from None
    if not isinstance(payload, dict) or payload.get("format") != version:
        found = payload.get("format") if isinstance(payload, dict) else None
        raise CondenseError(f"{what} {path} has format {found!r}, not {version} (an older condense, or not a "
                            f"{what.lower()}); {fix}.")
    for name, kind in {**fields, "checksum": str}.items():
        value = payload.get(name)
        if name not in payload or not (isinstance(value, kind) and not isinstance(value, bool)
                                        or (name in nullable and value is None)):
            state = "lacks" if name not in payload else "has a wrong-typed"
            raise CondenseError(f"{what} {path} {state} field '{name}' ({kind.__name__} expected); {fix}.")
    if payload_checksum(payload) != payload["checksum"]:
        raise CondenseError(f"{what} {path} fails its checksum (modified or corrupted); {fix}.")
    return payload


def checkpoint_path(out: str) -> str:
    """Where the run writing ``out`` keeps its checkpoint."""
    return out + ".ckpt.pt"


def check_start(out: str, resume: bool, restart: bool) -> None:
    """Before any work: no resume without a checkpoint, no fresh start over an unfinished run."""
    ckpt = checkpoint_path(out)
    if resume and restart:
        raise CondenseError("--resume continues a checkpoint and --restart discards it; give only one.")
    if resume and not os.path.isfile(ckpt):
        raise CondenseError(f"Nothing to resume: checkpoint {ckpt} does not exist.")
    if not resume and not restart and os.path.exists(ckpt):
        raise CondenseError(f"{ckpt} holds an unfinished run; continue it with --resume or discard it with --restart.")


def write_training_state(path: str, version: int, key: str, epoch: int, model: torch.nn.Module,
                         optimizer: torch.optim.Optimizer, **extra: Any) -> None:
    """An epoch-wise trainer's checkpoint: the epoch done, the network (BatchNorm statistics included), the
    optimiser, the settings ``key`` and any ``extra`` plain fields."""
    write_checkpoint(path, {"format": version, "key": key, "epoch": epoch, **extra,
                            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                            "optimizer": optimizer.state_dict()})
