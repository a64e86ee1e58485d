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
import math
import os
from typing import Any, Callable, Optional

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..data import load_dataset
from ..device import resolve_device
from ..checkpoint import read_checkpoint, write_checkpoint
from ..errors import CondenseError
from ..fields import check_fields
from ..io import check_output
from ..models import create_model, save_network
from ..neighbours import knn
from ..seeding import generator, seed_for
from ..train import Labels, TrainRecipe, fit
from .barlow import RANGES, SSLConfig, barlow_twins_loss
from .views import ViewConfig, two_views

FORMAT = 1
_FIELDS = {"format": int, "key": str, "epoch": int, "model": dict, "optimizer": dict, "losses": list}
_FIX = "rerun with --restart to start over"


def checkpoint_path(out: str) -> str:
    return out + ".ckpt.pt"


def _save_checkpoint(path: str, key: str, epoch: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
                     losses: list[float]) -> None:
    write_checkpoint(path, {"format": FORMAT, "key": key, "epoch": epoch, "losses": list(losses),
                            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                            "optimizer": opt.state_dict()})


def _load_checkpoint(path: str, key: str) -> dict[str, Any]:
    payload = read_checkpoint(path, what="SSL checkpoint", version=FORMAT, fields=_FIELDS, fix=_FIX)
    if payload["key"] != key:
        raise CondenseError(f"SSL checkpoint {path} was made with other settings (data, model, seed or recipe); "
                            f"rerun with the same options, or {_FIX}.")
    return payload


def check_start(out: str, resume: bool, restart: bool) -> None:
    """Before any work: no resume without a checkpoint, no fresh start over an unfinished run."""
    ckpt = checkpoint_path(out)
    if resume and restart:
        raise CondenseError("--resume continues a checkpoint and --restart discards it; give only one.")
    if resume and not os.path.isfile(ckpt):
        raise CondenseError(f"Nothing to resume: checkpoint {ckpt} does not exist.")
    if not resume and not restart and os.path.exists(ckpt):
        raise CondenseError(f"{ckpt} holds an unfinished run; continue it with --resume or discard it with --restart.")


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


def _progress(quiet: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), disable=quiet, transient=False)


def train_ssl(cfg: SSLConfig, out: str, *, device: str = "auto", resume: bool = False, restart: bool = False,
              quiet: bool = True, log: Callable[[str], None] = lambda m: None,
              on_epoch: Optional[Callable[[int, float], None]] = None) -> str:
    """Train the encoder ``cfg`` describes and save it to ``out`` (role ``ssl``); returns ``out``.

    ``on_epoch(epoch, loss)`` runs after each epoch's checkpoint (tests interrupt runs there)."""
    check_fields(SSLConfig, dataclasses.asdict(cfg), RANGES, "SSL")
    check_output(out)
    ckpt = checkpoint_path(out)
    check_output(ckpt)
    check_start(out, resume, restart)
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
    start, losses = 0, []
    if resume:
        payload = _load_checkpoint(ckpt, key)
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        start, losses = payload["epoch"], [float(v) for v in payload["losses"]]
    elif restart and os.path.exists(ckpt):
        os.remove(ckpt)
    views = ViewConfig(crop_scale=cfg.crop_scale, jitter=cfg.jitter, flip=data.hflip_safe)

    def objective(net: torch.nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if len(batch) < 2:  # a last batch of one image has no batch statistics (BatchNorm, standardisation): skip
            return torch.zeros((), device=batch.device, requires_grad=True)
        v1, v2 = two_views(batch, data.mean, data.std, views, g)
        return barlow_twins_loss(net(v1), net(v2), cfg.off_diagonal)

    schedule = TrainRecipe(epochs=cfg.epochs, schedule="cosine", lr=cfg.lr)
    log(f"ssl: Barlow Twins on {len(data.train_y)} unlabeled {data.name} images, {cfg.model} backbone, "
        f"{cfg.epochs} epochs" + (f", resuming after epoch {start}" if start else ""))
    with _progress(quiet) as bar:
        task = bar.add_task("ssl", total=cfg.epochs, completed=start, loss=f"{losses[-1]:.4g}" if losses else "-")
        for epoch in range(start + 1, cfg.epochs + 1):
            recipe = TrainRecipe(epochs=1, batch_size=cfg.batch_size, optimizer="adamw", lr=schedule.lr_at(epoch),
                                 weight_decay=cfg.weight_decay)
            seen: list[float] = []
            fit([model], [generator("ssl", cfg.seed, epoch)], data.train_x, Labels(data.train_y), recipe,
                optimizer=opt, objective=objective, on_epoch=lambda _e, loss: seen.append(loss))  # labels unused
            if not math.isfinite(seen[-1]):
                raise CondenseError(f"Self-supervised training diverged at epoch {epoch} (loss {seen[-1]}); the "
                                    f"checkpoint of epoch {epoch - 1} is kept; lower --lr and resume or restart.")
            losses.append(seen[-1])
            _save_checkpoint(ckpt, key, epoch, model, opt, losses)
            bar.update(task, advance=1, loss=f"{seen[-1]:.4g}")
            if on_epoch is not None:
                on_epoch(epoch, seen[-1])
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
