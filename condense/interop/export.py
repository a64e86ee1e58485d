"""``condense export``: a set's training images and labels in the layouts other code reads.

What is exported is what a network trains on: :meth:`SynthSet.decode` (after any multi-formation or
compensator decoder), ordered class by class (all images of class 0, then class 1, ...), as the official
DC/DSA/DM (VICO-UoE/DatasetCondensation) and MTT (GeorgeCazenavette/mtt-distillation) scripts lay out
``image_syn``/``label_syn`` and as DD-Ranking (NUS-HPC-AI-Lab/DD-Ranking) builds hard labels for a tensor of
IPC images per class. Pixels are ``normalised`` (the set's mean/std, or ``mean``/``std`` given; exact) or
``unit`` (in [0, 1], clamped, as a viewer or a PNG holds them).

- ``pt``: one ``torch.save`` dict that loads with ``torch.load(weights_only=True)``: ``data`` = [[images,
  labels]] (the official DC/DSA/DM result layout, read as ``data[-1]``), ``images``, ``labels`` (int64 hard
  labels), ``soft_labels`` and ``syn_lr`` when the set has them, and ``condense`` (plain metadata).
- ``npz``: the same arrays under the same names plus ``mean``, ``std``, ``class_names`` and ``meta`` (JSON
  text); read with ``numpy.load(allow_pickle=False)``.
- ``imagefolder``: ``OUT/<class>/<index>.png`` (8-bit, so within half a grey level of the set), the folder
  names sorting in class order as torchvision's ``ImageFolder`` expects, plus ``condense.json`` (metadata, the
  learned lr, the file of every row) and ``soft_labels.npy`` when the set has soft labels.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..errors import CondenseError
from ..io import atomic_write, check_output, staged_folder, write_npz
from ..store import SynthSet
from ..version import __version__

FORMATS = ("imagefolder", "npz", "pt")
PIXELS = ("normalised", "unit")
EXPORT_TAG = "condense-export"  # meta["format"] of every export, read back by `condense import`
META_FILE = "condense.json"
SOFT_FILE = "soft_labels.npy"


@dataclass
class Exported:
    """The arrays and metadata of an export, before they are written in a format."""

    images: torch.Tensor              # float32 (N, C, H, W), class-blocked
    labels: torch.Tensor              # int64 (N,): hard labels (the argmax of soft ones)
    soft_labels: Optional[torch.Tensor]  # float32 (N, K) as stored (probabilities or logits), or None
    lr: Optional[float]
    meta: dict[str, Any]
    zca: Optional[tuple[torch.Tensor, torch.Tensor]] = None


def _floats(values: Optional[Sequence[float]], name: str, channels: int) -> Optional[tuple[float, ...]]:
    if values is None:
        return None
    vals = tuple(float(v) for v in values)
    if len(vals) != channels or not all(np.isfinite(vals)):
        raise CondenseError(f"--{name} needs {channels} finite number(s), one per channel, got {list(values)}.")
    if name == "std" and min(vals) <= 0:
        raise CondenseError(f"--std must be positive, got {list(vals)}.")
    return vals


def exported(synth: SynthSet, pixels: str = "normalised", mean: Optional[Sequence[float]] = None,
             std: Optional[Sequence[float]] = None, source: str = "", checksum: str = "") -> Exported:
    """The decoded set, class-blocked, its pixels as asked; refuses what a format of labelled images cannot hold."""
    if pixels not in PIXELS:
        raise CondenseError(f"Unknown pixels '{pixels}'; choose one of: {', '.join(PIXELS)}.")
    if synth.label_kind == "regression":
        raise CondenseError(f"The {synth.method} set holds regression targets, not class labels; export supports "
                            f"labelled sets.")
    zca = synth.zca_matrix is not None
    if zca and (pixels == "unit" or mean is not None or std is not None):
        raise CondenseError("The set lives in ZCA space, which has no [0, 1] pixels and no mean/std; export it with "
                            "--pixels normalised and no --mean/--std (the ZCA transform goes with it).")
    if pixels == "unit" and (mean is not None or std is not None):
        raise CondenseError("--mean/--std choose a normalisation, which --pixels unit does not apply; give one or the "
                            "other.")
    channels = synth.images.shape[1]
    mean, std = _floats(mean, "mean", channels), _floats(std, "std", channels)
    if (mean is None) != (std is None):
        raise CondenseError("--mean and --std go together; give both or neither.")
    images, labels = synth.decode()
    images, labels = images.detach().cpu().float(), labels.detach().cpu()
    hard = labels.argmax(1) if labels.dim() == 2 else labels.long()
    order = torch.sort(hard, stable=True).indices  # class-blocked, each class in stored order
    images, hard = images[order], hard[order]
    soft = labels[order].float().contiguous() if labels.dim() == 2 else None
    out_mean, out_std = tuple(synth.mean), tuple(synth.std)
    if pixels == "unit":
        images = synth.denormalized(images)
        out_mean = out_std = None
    elif mean is not None and (mean, std) != (out_mean, out_std):
        shape = (1, -1, 1, 1)
        x01 = images * torch.tensor(synth.std).view(shape) + torch.tensor(synth.mean).view(shape)
        images = (x01 - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)
        out_mean, out_std = mean, std
    counts = torch.bincount(hard, minlength=synth.num_classes).tolist()
    meta = {"format": EXPORT_TAG, "version": 1, "condense": __version__, "dataset": synth.dataset,
            "dataset_fingerprint": synth.dataset_fingerprint, "num_classes": synth.num_classes,
            "class_names": list(synth.class_names), "method": synth.method, "source": source,
            "source_sha256": checksum, "pixels": "zca" if zca else pixels,
            "mean": list(out_mean) if out_mean is not None else None,
            "std": list(out_std) if out_std is not None else None, "label_kind": synth.label_kind,
            "label_temperature": float(synth.label_temperature), "relabel_network": synth.relabel_network,
            "decoder": synth.decoder, "per_class": counts, "order": "class-blocked",
            "lr": float(synth.lr) if synth.lr is not None else None}
    return Exported(images=images.contiguous(), labels=hard.contiguous(), soft_labels=soft,
                    lr=meta["lr"], meta=meta, zca=(synth.zca_matrix.float(), synth.zca_mean.float()) if zca else None)


def class_folders(names: Sequence[str]) -> list[str]:
    """Folder names that sort in class order: the class names when they are safe file names already in sorted
    order, else ``<index>_<name>`` (zero-padded)."""
    safe = all(re.fullmatch(r"[A-Za-z0-9][\w.\- ]*", n) for n in names)
    if safe and list(names) == sorted(names) and len(set(names)) == len(names):
        return list(names)
    width = len(str(len(names) - 1))
    return [f"{i:0{width}d}_{re.sub(r'[^A-Za-z0-9_.-]+', '-', n).strip('-') or 'class'}" for i, n in enumerate(names)]


def _write_folder(e: Exported, out: str) -> None:
    from PIL import Image  # only this format needs PIL

    if e.meta["pixels"] != "unit":
        raise CondenseError("An image folder holds 8-bit pixels in [0, 1]; export it with --pixels unit (the "
                            "default for this format).")
    folders = class_folders(e.meta["class_names"])
    grey = e.images.shape[1] == 1
    if e.images.shape[1] not in (1, 3):
        raise CondenseError(f"PNG holds 1 or 3 channels; these images have {e.images.shape[1]}: export as npz or pt.")
    pixels = (e.images * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    files = []
    with staged_folder(out) as staging:
        for name in sorted(set(folders[int(c)] for c in e.labels)):
            os.makedirs(os.path.join(staging, name))
        for i, (img, c) in enumerate(zip(pixels, e.labels.tolist())):
            rel = f"{folders[c]}/{i:05d}.png"
            Image.fromarray(img[..., 0] if grey else img, mode="L" if grey else "RGB").save(os.path.join(staging, rel))
            files.append(rel)
        if e.soft_labels is not None:
            np.save(os.path.join(staging, SOFT_FILE), e.soft_labels.numpy(), allow_pickle=False)
        with open(os.path.join(staging, META_FILE), "w", encoding="utf-8") as f:
            json.dump({**e.meta, "files": files, "class_folders": folders}, f, indent=1)


def is_export_folder(names: Sequence[str]) -> bool:
    """An earlier image-folder export (it may be replaced whole): its metadata file is there."""
    return META_FILE in names


def export_set(synth: SynthSet, fmt: str, out: str, pixels: Optional[str] = None,
               mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None, source: str = "",
               checksum: str = "") -> str:
    """Write ``synth`` as ``fmt`` (one of FORMATS) to ``out`` atomically; returns ``out``. ``pixels`` defaults to
    ``unit`` for an image folder and ``normalised`` otherwise."""
    if fmt not in FORMATS:
        raise CondenseError(f"Unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}.")
    if fmt == "imagefolder":
        check_output(out, folder=True, owned=is_export_folder)
    else:
        check_output(out)
    e = exported(synth, pixels or ("unit" if fmt == "imagefolder" else "normalised"), mean, std, source, checksum)
    if fmt == "imagefolder":
        _write_folder(e, out)
    elif fmt == "npz":
        extra = {"soft_labels": e.soft_labels.numpy()} if e.soft_labels is not None else {}
        if e.lr is not None:
            extra["lr"] = np.asarray(e.lr, dtype=np.float32)
        if e.zca is not None:
            extra.update(zca_matrix=e.zca[0].numpy(), zca_mean=e.zca[1].numpy())
        if e.meta["mean"] is not None:
            extra.update(mean=np.asarray(e.meta["mean"], dtype=np.float64), std=np.asarray(e.meta["std"], dtype=np.float64))
        write_npz(out, images=e.images.numpy(), labels=e.labels.numpy(),
                  class_names=np.asarray(e.meta["class_names"], dtype=str), meta=np.asarray(json.dumps(e.meta)), **extra)
    else:
        blob: dict[str, Any] = {"data": [[e.images, e.labels]], "accs_all_exps": {}, "images": e.images,
                                "labels": e.labels, "condense": e.meta}
        if e.soft_labels is not None:
            blob["soft_labels"] = e.soft_labels
        if e.lr is not None:
            blob["syn_lr"] = torch.tensor(e.lr, dtype=torch.float32)
        if e.zca is not None:
            blob.update(zca_matrix=e.zca[0], zca_mean=e.zca[1])
        atomic_write(out, lambda tmp: torch.save(blob, tmp))
    return out
