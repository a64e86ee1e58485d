"""`condense ssl`: train a Barlow Twins encoder on the unlabeled training split, resumable, saved as a network file.

Every epoch goes through ``train.fit`` (the one loop) with the Barlow Twins objective; the epoch's batch order
and views come from ``generator("ssl", seed, epoch)`` and the initialisation from ``seed_for("ssl", seed, 0)``,
so a run killed after epoch e and resumed from its checkpoint (``OUT.ckpt.pt``: network with BatchNorm
statistics, AdamW state, a settings key and a checksum over every field) ends with the weights of an
uninterrupted one. The file records the recipe, the final loss and the 1-NN accuracy of the representation
(``embed``) on up to 2,000 test images against up to 5,000 training images, a sanity check that needs no labels
during training.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Optional

import torch

from ..data import load_dataset
from ..epochs import EpochPlan, check_outputs, start_state, train_epochs
from ..device import resolve_device
from ..errors import CondenseError
from ..fields import check_fields
from ..models import create_model, save_network
from ..neighbours import knn
from ..seeding import seed_for
from ..text import plural
from .barlow import RANGES, SSLConfig, barlow_twins_loss
from .views import ViewConfig, two_views

# `condense ssl` options with a flag of their own (the rest go through --set KEY=VALUE)
_FLAGS = {"batch_size": "--batch-size", "lr": "--lr", "seed": "--seed", "data_root": "--data-root",
          "max_per_class": "--max-per-class"}


def rebuild_command(training: dict[str, Any], out: str) -> str:
    """The `condense ssl` command that trains again, into ``out``, the encoder whose network file recorded
    ``training`` (its ``SSLConfig``): the dataset, backbone and epochs always, every other option that is not
    at its default."""
    default = dataclasses.asdict(SSLConfig())
    parts = [f"condense ssl --dataset {training.get('dataset', default['dataset'])} "
             f"--model {training.get('model', default['model'])}"]
    if training.get("model_args"):
        parts.append(f"--model-args '{json.dumps(training['model_args'], sort_keys=True)}'")
    parts.append(f"--epochs {training.get('epochs', default['epochs'])}")
    for name in (f for f in default if f not in ("dataset", "model", "model_args", "epochs")):
        value = training.get(name, default[name])
        if value != default[name]:
            parts.append(f"{_FLAGS[name]} {value}" if name in _FLAGS else f"--set {name}={value}")
    return " ".join(parts + [f"--out {out}"])
@torch.no_grad()
def knn_accuracy(model: torch.nn.Module, data: Any, reference: int = 5000, queries: int = 2000) -> float:
    """1-NN accuracy (%) of L2-normalised ``embed`` features: fixed-seed samples of the train and test splits."""
    g = torch.Generator().manual_seed(0)
    ref = torch.randperm(len(data.train_y), generator=g)[:reference].to(data.train_x.device)
    qry = torch.randperm(len(data.test_y), generator=g)[:queries].to(data.test_x.device)
    model.eval()

    def features(x: torch.Tensor) -> torch.Tensor:
        f = torch.cat([model.embed(x[i:i + 500]) for i in range(0, len(x), 500)])
        return torch.nn.functional.normalize(f.float(), dim=1).cpu()

    _, idx = knn(features(data.test_x[qry]), features(data.train_x[ref]), 1)
    predicted = data.train_y[ref].cpu()[torch.from_numpy(idx[:, 0])]
    return 100.0 * float((predicted == data.test_y[qry].cpu()).float().mean())


def train_ssl(cfg: SSLConfig, out: str, *, device: str = "auto", resume: bool = False, restart: bool = False,
              quiet: bool = True, log: Callable[[str], None] = lambda m: None,
              on_epoch: Optional[Callable[[int, float], None]] = None) -> str:
    """Train the encoder ``cfg`` describes and save it to ``out`` (role ``ssl``); returns ``out``.

    ``on_epoch(epoch, loss)`` runs after each epoch's checkpoint (tests interrupt runs there)."""
    check_fields(SSLConfig, dataclasses.asdict(cfg), RANGES, "SSL")
    ckpt = check_outputs(out, resume, restart)
    dev = resolve_device(device)
    data = load_dataset(cfg.dataset, root=cfg.data_root, max_per_class=cfg.max_per_class, device=dev)
    if len(data.train_y) < 2:
        raise CondenseError(f"Self-supervised training needs at least 2 training images; {data.name} has "
                            f"{len(data.train_y)}.")
    c, h, w = data.image_shape
    model_args = {"backbone": cfg.model, "backbone_args": dict(cfg.model_args), "hidden": cfg.hidden}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for("ssl", cfg.seed, 0))
        model = create_model("BarlowTwins", c, cfg.proj_dim, (h, w), **model_args).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    key = json.dumps({**dataclasses.asdict(cfg), "data": data.fingerprint()}, sort_keys=True, default=str)
    plan = EpochPlan("ssl", cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.seed, key)
    start, losses = start_state(out, plan, model, opt, resume, restart)
    views = ViewConfig(crop_scale=cfg.crop_scale, jitter=cfg.jitter, flip=data.hflip_safe)

    def objective(net: torch.nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if len(batch) < 2:  # a last batch of one image has no batch statistics (BatchNorm, standardisation): skip
            return torch.zeros((), device=batch.device, requires_grad=True)
        v1, v2 = two_views(batch, data.mean, data.std, views, g)
        return barlow_twins_loss(net(v1), net(v2), cfg.off_diagonal)

    log(f"ssl: Barlow Twins on {len(data.train_y)} unlabeled {data.name} images, {cfg.model} backbone, "
        f"{plural(cfg.epochs, 'epoch')}" + (f", resuming after epoch {start}" if start else ""))
    losses = train_epochs(out, plan, model, opt, data.train_x, data.train_y, objective, start, losses, quiet=quiet,
                          on_epoch=on_epoch)
    accuracy = knn_accuracy(model, data)
    save_network(out, model, architecture="BarlowTwins", model_args=model_args, channels=c, num_classes=cfg.proj_dim,
                 image_size=(h, w), role="ssl", dataset=data.name, dataset_fingerprint=data.fingerprint(),
                 metrics={"loss": losses[-1] if losses else None, "losses": losses, "knn1_accuracy": accuracy,
                          "feature_dim": model.feature_dim},
                 training={**dataclasses.asdict(cfg), "method": "barlow_twins", "optimizer": "adamw, cosine"})
    if os.path.exists(ckpt):
        os.remove(ckpt)
    log(f"ssl: final loss {losses[-1]:.4g}, 1-NN accuracy of the representation {accuracy:.2f}%; wrote {out}")
    return out
