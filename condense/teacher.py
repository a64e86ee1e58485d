"""Teachers for the relabelling (KD) protocol: one network trained on the full real training split.

Training a teacher costs far more than scoring a set, so it is cached on disk, keyed by the dataset
(name, split size, a pixel checksum) and the full teacher spec; the state dict is saved with
``torch.save`` and read back with ``weights_only=True`` (no pickle of arbitrary objects).
Cache folder: ``$CONDENSE_CACHE/teachers`` (default ``~/.cache/condense/teachers``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from .augment import DSA, DSAConfig
from .data import ImageDataset
from .models import create_model
from .protocol import Protocol, TeacherSpec
from .store import atomic_write


def cache_dir() -> str:
    root = os.environ.get("CONDENSE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "condense")
    return os.path.join(root, "teachers")


def teacher_key(spec: TeacherSpec, data: ImageDataset) -> str:
    pixels = hashlib.sha256(data.train_x[:: max(1, len(data.train_x) // 64)].cpu().numpy().tobytes()).hexdigest()
    blob = json.dumps({"spec": dataclasses.asdict(spec), "dataset": data.name, "n": len(data.train_x),
                       "shape": list(data.image_shape), "pixels": pixels[:16]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_teacher(spec: TeacherSpec, data: ImageDataset) -> nn.Module:
    c, h, w = data.image_shape
    return create_model(spec.model, c, data.num_classes, (h, w), **spec.model_args)


def get_teacher(spec: TeacherSpec, data: ImageDataset, log: Optional[Callable[[str], None]] = None,
                ) -> tuple[nn.Module, dict[str, Any]]:
    """The trained, frozen teacher (eval mode) and its info (key, test accuracy, cache path)."""
    from .eval_train import Labels, train_group

    key = teacher_key(spec, data)
    path = os.path.join(cache_dir(), f"{data.name.replace(':', '_').replace('/', '_')}-{key}.pt")
    dev = data.train_x.device
    torch.manual_seed(spec.seed)
    net = build_teacher(spec, data).to(dev)
    if os.path.isfile(path):
        blob = torch.load(path, map_location=dev, weights_only=True)
        net.load_state_dict(blob["state_dict"])
        acc = float(blob["test_accuracy"])
    else:
        if log:
            log(f"Training teacher {spec.model} on {len(data.train_x)} real images for {spec.epochs} epochs "
                f"(cached in {path}).")
        proto = Protocol(name="teacher", epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
                         augment=spec.augment, checkpoints=1)
        dsa = DSA(DSAConfig(strategy=data.dsa_strategy)) if spec.augment == "dsa" else None
        out = train_group([net], [spec.seed], data.train_x, Labels(data.train_y), data.test_x, data.test_y,
                          proto, spec.lr, dsa, vectorised=False)[0]
        acc = out["final"]
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        atomic_write(path, lambda tmp: torch.save({"state_dict": state, "test_accuracy": torch.tensor(acc)}, tmp))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, {"key": key, "test_accuracy": 100 * acc, "cache": path, **dataclasses.asdict(spec)}
