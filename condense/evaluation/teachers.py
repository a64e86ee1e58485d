"""Teachers for the relabelling (KD) protocol: one network trained on the full real training split.

Training a teacher costs far more than scoring a set, so it is cached as a network file (see
``condense.models.netfile``) under ``$CONDENSE_CACHE/teachers``, keyed by the data's fingerprint
and the full teacher spec.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from ..augment import dsa_for
from ..data import ImageDataset
from ..errors import CondenseError
from ..fields import fits
from ..io import cache_root
from ..models import create_model, load_network, save_network
from ..train import Labels, fit
from .protocol import Protocol, TeacherSpec
from .tables import plural


def teacher_key(spec: TeacherSpec, data: ImageDataset) -> str:
    blob = json.dumps({"spec": dataclasses.asdict(spec), "data": data.fingerprint()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cached(path: str, spec: TeacherSpec, device: torch.device) -> Optional[tuple[nn.Module, float]]:
    """The cached teacher and its accuracy, or None when the file is missing, corrupt or not this teacher
    (it is only a cache: the teacher is then trained again and the file replaced)."""
    if not os.path.isfile(path):
        return None
    try:
        net, info = load_network(path, device=device)
    except CondenseError:
        return None
    accuracy = info.metrics.get("test_accuracy") if isinstance(info.metrics, dict) else None
    if info.architecture != spec.model or not fits(accuracy, float):
        return None
    return net, float(accuracy)


def get_teacher(spec: TeacherSpec, data: ImageDataset, log: Optional[Callable[[str], None]] = None,
                ) -> tuple[nn.Module, dict[str, Any]]:
    """The trained, frozen teacher (eval mode) and its info (key, test accuracy, cache path)."""
    key = teacher_key(spec, data)
    path = cache_root("teachers", f"{data.name.replace(':', '_').replace('/', '_')}-{key}.h5")
    dev = data.train_x.device
    c, h, w = data.image_shape
    cached = _cached(path, spec, dev)
    if cached is not None:
        net, accuracy = cached
    else:
        if log:
            log(f"Training teacher {spec.model} on {len(data.train_x)} real images for {plural(spec.epochs, 'epoch')} "
                f"(cached in {path}).")
        torch.manual_seed(spec.seed)
        net = create_model(spec.model, c, data.num_classes, (h, w), **spec.model_args).to(dev)
        recipe = Protocol(name="teacher", epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
                          checkpoints=1).recipe(spec.lr)
        out = fit([net], [torch.Generator().manual_seed(spec.seed)], data.train_x, Labels(data.train_y), recipe,
                  dsa=dsa_for(data.hflip_safe) if spec.augment == "dsa" else None, test=(data.test_x, data.test_y))
        accuracy = 100 * out[0]["final"]
        save_network(path, net, architecture=spec.model, model_args=spec.model_args, channels=c,
                     num_classes=data.num_classes, image_size=(h, w), role="teacher", dataset=data.name,
                     dataset_fingerprint=data.fingerprint(), metrics={"test_accuracy": accuracy},
                     training=dataclasses.asdict(spec))
    net.eval().requires_grad_(False)
    return net, {"key": key, "test_accuracy": accuracy, "cache": path, **dataclasses.asdict(spec)}
