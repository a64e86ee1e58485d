"""Resumable epoch-by-epoch training of one network on an unlabeled objective (SSL encoders, the MAE).

Each epoch is one ``train.fit`` pass with its own random stream and the cosine lr of that epoch, then a
checksummed checkpoint (``condense.checkpoint``) of the network, the optimiser and the losses so far, so a
killed run resumes bit-exactly; a non-finite loss stops the run with the last good checkpoint kept.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .checkpoint import check_start, checkpoint_path, read_checkpoint, write_training_state
from .errors import CondenseError
from .io import check_output
from .progress import loss_progress
from .seeding import generator
from .train import Labels, TrainRecipe, fit

Objective = Callable[[torch.nn.Module, torch.Tensor, torch.Generator], torch.Tensor]  # (net, batch, gen) -> loss

FORMAT = 1
_FIELDS = {"format": int, "key": str, "epoch": int, "model": dict, "optimizer": dict, "losses": list}
_FIX = "rerun with --restart to start over"


@dataclass
class EpochPlan:
    name: str                 # in messages and on the bar ("ssl", "mae"); also the seed stream
    epochs: int
    batch_size: int
    lr: float                 # AdamW, cosine over the epochs
    weight_decay: float
    seed: int
    key: str                  # the settings a checkpoint must agree on


def check_outputs(out: str, resume: bool, restart: bool) -> str:
    """Before any work: the network file and its checkpoint can be written, and the resume/restart choice fits
    what is on disk; returns the checkpoint's path."""
    check_output(out)
    ckpt = checkpoint_path(out)
    check_output(ckpt)
    check_start(out, resume, restart)
    return ckpt


def start_state(out: str, plan: EpochPlan, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                resume: bool, restart: bool) -> tuple[int, list[float]]:
    """The epoch to continue after and the losses so far: restored from the checkpoint on ``resume``; a
    ``restart`` discards it."""
    ckpt = checkpoint_path(out)
    if resume:
        payload = read_checkpoint(ckpt, what=f"{plan.name.upper()} checkpoint", version=FORMAT, fields=_FIELDS,
                                  fix=_FIX)
        if payload["key"] != plan.key:
            raise CondenseError(f"{plan.name.upper()} checkpoint {ckpt} was made with other settings (data, model, "
                                f"seed or recipe); rerun with the same options, or {_FIX}.")
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        return payload["epoch"], [float(v) for v in payload["losses"]]
    if restart and os.path.exists(ckpt):
        os.remove(ckpt)
    return 0, []


def train_epochs(out: str, plan: EpochPlan, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 x: torch.Tensor, y: torch.Tensor, objective: Objective, start: int, losses: list[float], *, quiet: bool,
                 on_epoch: Optional[Callable[[int, float], None]] = None) -> list[float]:
    """Epochs ``start + 1 .. plan.epochs`` of ``objective`` on ``x`` (``y`` only sizes the batches: the objective
    reads no label), a checkpoint after each; returns the losses."""
    ckpt = checkpoint_path(out)
    schedule = TrainRecipe(epochs=plan.epochs, schedule="cosine", lr=plan.lr)
    with loss_progress(quiet) as bar:
        task = bar.add_task(plan.name, total=plan.epochs, completed=start,
                            loss=f"{losses[-1]:.4g}" if losses else "-")
        for epoch in range(start + 1, plan.epochs + 1):
            recipe = TrainRecipe(epochs=1, batch_size=plan.batch_size, optimizer="adamw",
                                 lr=schedule.lr_at(epoch), weight_decay=plan.weight_decay)
            seen: list[float] = []
            fit([model], [generator(plan.name, plan.seed, epoch)], x, Labels(y), recipe, optimizer=optimizer,
                objective=objective, on_epoch=lambda _e, loss: seen.append(loss))
            if not math.isfinite(seen[-1]):
                raise CondenseError(f"{plan.name.upper()} training diverged at epoch {epoch} (loss {seen[-1]}); the "
                                    f"checkpoint of epoch {epoch - 1} is kept; lower --lr and resume or restart.")
            losses.append(seen[-1])
            write_training_state(ckpt, FORMAT, plan.key, epoch, model, optimizer, losses=list(losses))
            bar.update(task, advance=1, loss=f"{seen[-1]:.4g}")
            if on_epoch is not None:
                on_epoch(epoch, seen[-1])
    return losses
