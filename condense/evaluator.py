"""The evaluator: train fresh networks on a SynthSet under a named protocol, report test accuracy.

The `standard` protocol is the DC/DM one (METHODS.md §0): SGD momentum 0.9, weight decay 5e-4,
lr 0.01 (or the set's learned lr), batch 256, lr ×0.1 once after half the epochs, non-siamese
DSA on training batches. We report the final model's accuracy; the best accuracy over the
protocol's test checkpoints is recorded too, labelled as such, because MTT-style papers use it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from .augment import DSA, DSAConfig
from .data import ImageDataset, load_dataset
from .device import resolve_device
from .errors import CondenseError
from .models import create_model, list_models
from .store import SynthSet


@dataclass(frozen=True)
class Protocol:
    name: str = "standard"
    epochs: int = 300
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_factor: float = 0.1      # applied once, after epoch epochs // 2 (official schedule)
    dsa: bool = True               # non-siamese DSA on every training batch
    use_learned_lr: bool = True    # use the set's `lr` (MTT) when present
    checkpoints: int = 10          # test evaluations spread over training, for the "best" figure

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:12]


PROTOCOLS: dict[str, Protocol] = {
    "standard": Protocol(),
    "long": Protocol(name="long", epochs=1000),  # the papers' 1000-epoch figure
    "fast": Protocol(name="fast", epochs=50, checkpoints=2),  # CPU smoke runs only
}


def get_protocol(name: str, **overrides: Any) -> Protocol:
    if name not in PROTOCOLS:
        raise CondenseError(f"Unknown protocol '{name}'; choose one of: {', '.join(sorted(PROTOCOLS))}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in overrides and overrides["epochs"] < 1:
        raise CondenseError(f"Epochs must be a positive number, got {overrides['epochs']}.")
    return dataclasses.replace(PROTOCOLS[name], **overrides)


@torch.no_grad()
def test_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train(was_training)
    return correct / len(x)


def train_and_test(model: torch.nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                   test_y: torch.Tensor, protocol: Protocol, lr: float, dsa: Optional[DSA],
                   generator: torch.Generator) -> dict[str, Any]:
    """Train ``model`` on (train_x, train_y) under ``protocol``; returns final/best accuracy and curve."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay)
    n, epochs = len(train_x), protocol.epochs
    check_at = set(np.linspace(epochs / protocol.checkpoints, epochs, protocol.checkpoints).round().astype(int))
    curve: list[tuple[int, float]] = []
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=generator).to(train_x.device)
        for start in range(0, n, protocol.batch_size):
            idx = order[start:start + protocol.batch_size]
            xb = train_x[idx]
            if dsa is not None:
                xb = dsa(xb, generator)
            loss = F.cross_entropy(model(xb), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch == epochs // 2:
            for group in opt.param_groups:
                group["lr"] *= protocol.decay_factor
        if epoch in check_at:
            curve.append((epoch, test_accuracy(model, test_x, test_y)))
    final = curve[-1][1] if curve and curve[-1][0] == epochs else test_accuracy(model, test_x, test_y)
    return {"final": final, "best": max([a for _, a in curve] + [final]), "curve": curve}


def eval_dataset_for(synth: SynthSet, dataset: Union[None, str, ImageDataset] = None,
                     data_root: Optional[str] = None, device: Optional[torch.device] = None) -> ImageDataset:
    """The real dataset whose test split scores ``synth``; checks classes and image shape match."""
    if isinstance(dataset, ImageDataset):
        data = dataset.to(device) if device is not None else dataset
    else:
        name = dataset or synth.dataset
        root = data_root if data_root is not None else synth.config.get("run", {}).get("data_root")
        data = load_dataset(name, root=root, device=device)
    if data.num_classes != synth.num_classes:
        raise CondenseError(f"The set has {synth.num_classes} classes but dataset {data.name} has {data.num_classes}.")
    if tuple(data.image_shape) != tuple(synth.image_shape):
        raise CondenseError(f"The set's images are {tuple(synth.image_shape)} but dataset {data.name} has "
                            f"{tuple(data.image_shape)}.")
    return data


def _summary(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float) * 100
    return {"mean": float(arr.mean()), "std": float(arr.std())}


def evaluate(synth: SynthSet, *, models: Sequence[str] = ("ConvNet",), runs: int = 3,
             protocol: Union[str, Protocol] = "standard", epochs: Optional[int] = None,
             dataset: Union[None, str, ImageDataset] = None, data_root: Optional[str] = None,
             device: str = "auto", seed: int = 0, set_name: str = "",
             on_run: Optional[Callable[[str, int, dict[str, Any]], None]] = None) -> dict[str, Any]:
    """Train ``runs`` fresh networks per architecture on ``synth`` and score them on the real test set.

    Returns ``{"set", "protocol", "results": {model: {"mean", "std", "runs", "best_mean", ...}}}``
    with accuracies in percent; "best_*" is the max over test checkpoints (labelled, not the headline).
    """
    if runs < 1:
        raise CondenseError(f"Runs must be a positive number, got {runs}.")
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise CondenseError(f"Unknown model '{unknown[0]}'; choose one of: {', '.join(list_models())}.")
    proto = protocol if isinstance(protocol, Protocol) else get_protocol(protocol, epochs=epochs)
    dev = resolve_device(device)
    data = eval_dataset_for(synth, dataset, data_root, dev)
    train_x, train_y = synth.images.detach().to(dev), synth.hard_labels.to(dev)
    lr = float(synth.lr) if (synth.lr is not None and proto.use_learned_lr) else proto.lr
    dsa = DSA(DSAConfig(strategy=data.dsa_strategy)) if proto.dsa else None
    c, h, w = data.image_shape
    results: dict[str, Any] = {}
    for model_name in models:
        outcomes = []
        for r in range(runs):
            torch.manual_seed(seed * 1000 + r)
            generator = torch.Generator().manual_seed(seed * 1000 + r)
            model = create_model(model_name, c, data.num_classes, (h, w)).to(dev)
            t0 = time.perf_counter()
            out = train_and_test(model, train_x, train_y, data.test_x, data.test_y, proto, lr, dsa, generator)
            out["seconds"] = time.perf_counter() - t0
            outcomes.append(out)
            if on_run:
                on_run(model_name, r, out)
        final, best = _summary([o["final"] for o in outcomes]), _summary([o["best"] for o in outcomes])
        results[model_name] = {**final, "runs": [100 * o["final"] for o in outcomes],
                               "best_mean": best["mean"], "best_std": best["std"],
                               "best_runs": [100 * o["best"] for o in outcomes],
                               "curves": [[(e, 100 * a) for e, a in o["curve"]] for o in outcomes],
                               "seconds": [o["seconds"] for o in outcomes]}
    return {"set": set_name, "dataset": data.name, "method": synth.method, "ipc": synth.ipc,
            "images": int(synth.images.shape[0]), "lr": lr, "seed": seed,
            "protocol": {**dataclasses.asdict(proto), "hash": proto.digest()}, "results": results}
