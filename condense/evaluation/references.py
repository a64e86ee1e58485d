"""Full-data references: a network trained on the whole real training split under the ``full`` protocol,
measured once per (dataset, architecture) and kept as a network file with its test accuracy, so HLR
never retrains on full data. Files are named by the data's fingerprint, not by where the data lives,
so a reference built on one machine serves every copy of the same data.

The folder is ``$CONDENSE_REFERENCES``, else ``synth_sets/references`` of a source checkout.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Optional

import torch

from ..augment import dsa_for
from ..data import ImageDataset
from ..models import create_model, read_network_info, save_network
from ..seeding import seed_for
from ..train import Labels, fit, test_accuracy
from .protocol import get_protocol


def references_dir() -> str:
    return os.environ.get("CONDENSE_REFERENCES") or str(Path(__file__).resolve().parents[2] / "synth_sets" / "references")


def reference_path(folder: str, data: ImageDataset, model: str, model_args: Optional[dict] = None) -> str:
    args = hashlib.sha256(json.dumps(model_args or {}, sort_keys=True).encode()).hexdigest()[:8]
    return os.path.join(folder, f"full_{data.fingerprint()}_{model}_{args}.h5")


def full_accuracy(data: ImageDataset, model: str, model_args: Optional[dict] = None,
                  folder: Optional[str] = None) -> Optional[float]:
    """The stored full-data test accuracy (percent) for ``model`` on ``data``, or None when none was built."""
    path = reference_path(folder or references_dir(), data, model, model_args)
    return float(read_network_info(path).metrics["test_accuracy"]) if os.path.isfile(path) else None


def build_reference(data: ImageDataset, model: str, model_args: Optional[dict] = None, folder: Optional[str] = None,
                    seed: int = 0, log: Callable[[str], None] = lambda m: None) -> str:
    """Train ``model`` on the whole training split under ``full`` and store it; returns the file (kept if present)."""
    path = reference_path(folder or references_dir(), data, model, model_args)
    if os.path.isfile(path):
        return path
    proto = get_protocol("full")
    c, h, w = data.image_shape
    torch.manual_seed(seed_for("eval_run", seed, 0))
    net = create_model(model, c, data.num_classes, (h, w), **(model_args or {})).to(data.train_x.device)
    log(f"Full-data reference: {model} on {len(data.train_y)} images of {data.name}, {proto.epochs} epochs")
    out = fit([net], [torch.Generator().manual_seed(seed_for("eval_run", seed, 0))], data.train_x,
              Labels(data.train_y), proto.recipe(proto.lr), dsa=dsa_for(data.hflip_safe) if proto.augment == "dsa" else None)
    accuracy = 100 * test_accuracy(net, data.test_x, data.test_y)
    return save_network(path, net, architecture=model, model_args=model_args or {}, channels=c,
                        num_classes=data.num_classes, image_size=(h, w), role="reference", dataset=data.name,
                        dataset_fingerprint=data.fingerprint(),
                        metrics={"test_accuracy": accuracy, "protocol": proto.name, "protocol_hash": proto.digest(),
                                 "train_seconds": out[0]["seconds"]},
                        training={**proto.to_dict(), "seed": seed})
