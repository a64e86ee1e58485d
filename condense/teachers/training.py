"""``condense teachers``: train teacher networks on the full real training split, resumably.

Each (architecture, seed) is one network file; teachers already in the folder are kept. Training runs one
epoch at a time through the one loop (``train.fit``, continuing the caller's optimiser) at the cosine
learning rate of that epoch, with every draw of epoch e from ``seed_for("teacher", seed, e)``; after each
epoch a checksummed checkpoint is written, so a killed run resumes to the same weights an uninterrupted run
reaches. The test accuracy is measured once, at the end, and recorded (nothing is selected on it).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from ..augment import dsa_for
from ..data import ImageDataset, load_dataset
from ..errors import CondenseError
from ..fields import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, check_fields, check_value
from ..io import check_output
from ..models import create_model, read_network_info, save_network
from ..progress import loss_progress
from ..seeding import generator, seed_for
from ..train import Labels, TrainRecipe, fit, test_accuracy
from ..text import plural
from . import checkpoint
from .files import is_teacher_folder, teacher_file, write_catalog

AUGMENTS = ("dsa", "none")


@dataclass(frozen=True)
class TeacherRecipe:
    """SGD with momentum and a cosine schedule on the whole training split (the usual CIFAR teacher recipe,
    e.g. SRe2L's and RDED's, at CPU-sized epochs), non-siamese DSA on every batch."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: str = "dsa"

    def epoch_recipe(self, epoch: int) -> TrainRecipe:
        """One epoch at the learning rate the full cosine schedule gives (1-based) ``epoch``."""
        lr = TrainRecipe(epochs=self.epochs, lr=self.lr, schedule="cosine").lr_at(epoch)
        return TrainRecipe(epochs=1, batch_size=self.batch_size, lr=lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, schedule="constant")


RANGES = {"epochs": AT_LEAST_1, "batch_size": AT_LEAST_1, "lr": POSITIVE, "momentum": FRACTION,
          "weight_decay": NON_NEGATIVE}


def _key(data: ImageDataset, model: str, model_args: dict, seed: int, recipe: TeacherRecipe) -> str:
    return json.dumps({"data": data.fingerprint(), "model": model, "model_args": model_args, "seed": seed,
                       "recipe": dataclasses.asdict(recipe)}, sort_keys=True)



def train_one(data: ImageDataset, model: str, model_args: dict, seed: int, recipe: TeacherRecipe, path: str,
              device: torch.device, bar: Progress, extra: dict[str, Any],
              on_epoch: Optional[Callable[[int], None]] = None) -> str:
    """Train (or resume) one teacher and write its network file; the checkpoint goes once the file is written."""
    key = _key(data, model, model_args, seed, recipe)
    ckpt = checkpoint.checkpoint_path(path)
    c, h, w = data.image_shape
    torch.manual_seed(seed_for("teacher", seed, 0))
    net = create_model(model, c, data.num_classes, (h, w), **model_args).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    start, seconds = 0, 0.0
    if os.path.isfile(ckpt):
        payload = checkpoint.load(ckpt, key)
        net.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        start, seconds = payload["epoch"], payload["seconds"]
    dsa = dsa_for(data.hflip_safe) if recipe.augment == "dsa" else None
    task = bar.add_task(os.path.basename(path), total=recipe.epochs, completed=start, loss="-")
    for epoch in range(start + 1, recipe.epochs + 1):
        t0, losses = time.perf_counter(), []
        fit([net], [generator("teacher", seed, epoch)], data.train_x, Labels(data.train_y), recipe.epoch_recipe(epoch),
            dsa=dsa, optimizer=opt, on_epoch=lambda _e, loss: losses.append(loss))
        seconds += time.perf_counter() - t0
        checkpoint.save(ckpt, key, epoch, net, opt, seconds)
        bar.update(task, advance=1, loss=f"{losses[-1]:.4g}")
        if on_epoch is not None:  # after the checkpoint, so an interrupt here loses nothing
            on_epoch(epoch)
    accuracy = 100 * test_accuracy(net, data.test_x, data.test_y)
    save_network(path, net, architecture=model, model_args=model_args, channels=c, num_classes=data.num_classes,
                 image_size=(h, w), role="teacher", dataset=data.name, dataset_fingerprint=data.fingerprint(),
                 metrics={"test_accuracy": accuracy, "train_seconds": seconds},
                 training={**dataclasses.asdict(recipe), "optimizer": "sgd", "schedule": "cosine", "seed": seed,
                           "key": key, **extra})
    os.remove(ckpt)
    return path


def _done(path: str, key: str) -> bool:
    """Whether ``path`` already holds this teacher (kept); another teacher there is refused."""
    if not os.path.isfile(path):
        return False
    try:
        info = read_network_info(path)
    except CondenseError:
        return False  # unreadable: trained again and replaced
    if info.training.get("key") != key:
        raise CondenseError(f"{path} already holds a teacher trained with other settings; use another --out folder "
                            f"or the same options.")
    return True


def train_teachers(dataset: str, models: Sequence[str], out: str, *, seeds: int = 1,
                   model_args: Optional[dict] = None, recipe: TeacherRecipe = TeacherRecipe(),
                   data_root: Optional[str] = None, max_per_class: Optional[int] = None,
                   device: torch.device = torch.device("cpu"), quiet: bool = False,
                   log: Callable[[str], None] = lambda m: None,
                   on_epoch: Optional[Callable[[int], None]] = None) -> list[str]:
    """Train ``seeds`` teachers per architecture in ``models`` on ``dataset`` into folder ``out`` (teachers already
    there are kept, unfinished ones resume) and rewrite its ``catalog.json``; returns the network files."""
    check_fields(TeacherRecipe, dataclasses.asdict(recipe), RANGES, "Teacher training")
    check_value("Teacher training option 'seeds'", seeds, int, AT_LEAST_1)
    if recipe.augment not in AUGMENTS:
        raise CondenseError(f"Unknown teacher augmentation '{recipe.augment}'; choose one of: {', '.join(AUGMENTS)}.")
    if not models:
        raise CondenseError("No teacher architecture given; pass --models, e.g. ConvNetBN.")
    check_output(out, folder=True, owned=is_teacher_folder)
    data = load_dataset(dataset, root=data_root, max_per_class=max_per_class, device=device)
    c, h, w = data.image_shape
    with torch.device("meta"):  # fail now, in one sentence, on a model the data cannot feed
        for model in models:
            create_model(model, c, data.num_classes, (h, w), **(model_args or {}))
    extra = {"max_per_class": max_per_class}
    paths = []
    with loss_progress(quiet) as bar:
        for model in models:
            for seed in range(seeds):
                path = teacher_file(out, dataset, model, seed)
                if _done(path, _key(data, model, model_args or {}, seed, recipe)):
                    log(f"{path} is already trained; kept.")
                else:
                    train_one(data, model, dict(model_args or {}), seed, recipe, path, device, bar, extra, on_epoch)
                    info = read_network_info(path)
                    log(f"{path}: test accuracy {info.metrics['test_accuracy']:.2f}% after "
                        f"{plural(recipe.epochs, 'epoch')} ({info.metrics['train_seconds'] / 60:.1f} min).")
                paths.append(path)
    write_catalog(out)
    return paths
