"""`condense mae`: train the small masked autoencoder on the training split, resumably; saved as a network file.

The recipe is MAE's (He et al., CVPR 2022) at CPU size: random masking of ``mask_ratio`` (0.5) of the patches of
every image, the mean squared error on the dropped patches' pixels (normalised space, no per-patch
normalisation: the predictions are pasted into images), AdamW (lr 1e-3, weight decay 0.05) with a cosine
schedule. Every epoch goes through ``train.fit`` (the one loop) with that objective; the batch order and the
masks of epoch e come from ``generator("mae", seed, e)`` and the initialisation from ``seed_for("mae", seed, 0)``.
After every epoch a checksummed checkpoint (``OUT.ckpt.pt``: weights, AdamW state, settings key, losses) is
written, so a run killed after epoch e and resumed ends with the weights of an uninterrupted one.

The file (role ``autoencoder``, architecture ``MAE``) records the loss curve and, on up to 1,000 test images
with ``eval_mask_ratio`` (DQ's 0.2) of random patches dropped, the reconstruction error of the dropped pixels
against the error of leaving them at the dataset mean (what ``fill`` "zero" gives).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ..data import load_dataset
from ..epochs import EpochPlan, check_outputs, start_state, train_epochs
from ..device import resolve_device
from ..errors import CondenseError
from ..fields import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, SEED, Range, check_fields
from ..models import create_model, save_network
from ..patches import kept_count, patchify, random_keep
from ..seeding import seed_for
from ..text import plural



@dataclass
class MAEConfig:
    """What `condense mae` trains, and how; all of it goes into the network file's training record."""

    dataset: str = "mnist5k"
    data_root: Optional[str] = None
    max_per_class: Optional[int] = None
    patch: int = 0                # patch side (0: the grid nearest DQ's 14×14, 2 px at 32 px)
    dim: int = 64
    depth: int = 4
    heads: int = 4
    decoder_dim: int = 64
    decoder_depth: int = 2
    mlp_ratio: float = 2.0
    mask_ratio: float = 0.5       # patches dropped at random while training
    eval_mask_ratio: float = 0.2  # patches dropped for the recorded reconstruction error (DQ's mask ratio)
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3              # AdamW, cosine schedule over the epochs
    weight_decay: float = 0.05
    seed: int = 0

    def model_args(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("patch", "dim", "depth", "heads", "decoder_dim", "decoder_depth",
                                              "mlp_ratio")}


RANGES = {**dict.fromkeys(("dim", "depth", "heads", "decoder_dim", "decoder_depth", "epochs", "batch_size",
                           "max_per_class"), AT_LEAST_1),
          "patch": NON_NEGATIVE, "mlp_ratio": Range(0, 1000, open_low=True, open_high=True), "lr": POSITIVE,
          "weight_decay": NON_NEGATIVE, "seed": SEED, "mask_ratio": Range(0, 1, open_low=True, open_high=True),
          "eval_mask_ratio": FRACTION}






@torch.no_grad()
def reconstruction_error(model: torch.nn.Module, x: torch.Tensor, mask_ratio: float, seed: int = 0,
                         limit: int = 1000) -> dict[str, float]:
    """Mean squared error of the dropped pixels (normalised space) on up to ``limit`` images with ``mask_ratio`` of
    their patches dropped at random (fixed seed): the MAE's fill, and the dataset mean's (0) for comparison."""
    x = x[:limit]
    length = patchify(x[:1], model.patch).shape[1]
    keep = random_keep(len(x), length, kept_count(length, mask_ratio), torch.Generator().manual_seed(seed))
    keep = keep.to(x.device)
    dropped = ~keep
    target = patchify(x, model.patch)
    pred = torch.cat([model.eval().reconstruct(a, k) for a, k in zip(x.split(256), keep.split(256))])
    count = max(int(dropped.sum()) * target.shape[2], 1)
    return {"mse_fill": float((pred - target)[dropped].pow(2).sum()) / count,
            "mse_mean": float(target[dropped].pow(2).sum()) / count}


def train_mae(cfg: MAEConfig, out: str, *, device: str = "auto", resume: bool = False, restart: bool = False,
              quiet: bool = True, log: Callable[[str], None] = lambda m: None,
              on_epoch: Optional[Callable[[int, float], None]] = None) -> str:
    """Train the MAE ``cfg`` describes and save it to ``out`` (role ``autoencoder``); returns ``out``.

    ``on_epoch(epoch, loss)`` runs after each epoch's checkpoint (tests interrupt runs there)."""
    check_fields(MAEConfig, dataclasses.asdict(cfg), RANGES, "MAE")
    ckpt = check_outputs(out, resume, restart)
    dev = resolve_device(device)
    data = load_dataset(cfg.dataset, root=cfg.data_root, max_per_class=cfg.max_per_class, device=dev)
    c, h, w = data.image_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for("mae", cfg.seed, 0))
        model = create_model("MAE", c, 1, (h, w), **cfg.model_args()).to(dev)
    length = (h // model.patch) * (w // model.patch)
    keep = kept_count(length, cfg.mask_ratio)
    if keep >= length:
        raise CondenseError(f"MAE option 'mask_ratio' {cfg.mask_ratio} drops {length - keep} of {length} patches; "
                            f"it must drop at least one and keep at least one.")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    key = json.dumps({**dataclasses.asdict(cfg), "data": data.fingerprint()}, sort_keys=True, default=str)
    plan = EpochPlan("mae", cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.seed, key)
    start, losses = start_state(out, plan, model, opt, resume, restart)

    def objective(net: torch.nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return net.loss(batch, random_keep(len(batch), length, keep, g).to(batch.device))

    log(f"mae: {len(data.train_y)} {data.name} training images, {model.patch}-px patches ({h // model.patch}×"
        f"{w // model.patch}), {plural(cfg.epochs, 'epoch')}"
        + (f", resuming after epoch {start}" if start else ""))
    losses = train_epochs(out, plan, model, opt, data.train_x, data.train_y, objective, start, losses, quiet=quiet,
                          on_epoch=on_epoch)
    error = reconstruction_error(model, data.test_x, cfg.eval_mask_ratio)
    save_network(out, model, architecture="MAE", model_args=cfg.model_args(), channels=c, num_classes=1,
                 image_size=(h, w), role="autoencoder", dataset=data.name, dataset_fingerprint=data.fingerprint(),
                 metrics={"loss": losses[-1] if losses else None, "losses": losses, "patch": model.patch,
                          f"test_mse_dropped_{cfg.eval_mask_ratio:g}": error["mse_fill"],
                          f"test_mse_mean_fill_{cfg.eval_mask_ratio:g}": error["mse_mean"]},
                 training={**dataclasses.asdict(cfg), "method": "masked autoencoder", "optimizer": "adamw, cosine"})
    if os.path.exists(ckpt):
        os.remove(ckpt)
    log(f"mae: final loss {losses[-1]:.4g}; dropped-patch MSE {error['mse_fill']:.4g} against {error['mse_mean']:.4g} "
        f"for the dataset mean; wrote {out}")
    return out
