"""Readers of the files other distillation code writes; each returns what the file holds, unchecked against any data.

Layouts (the facts each reader relies on):

- ``dc``: a result file of the official DC/DSA/DM scripts (VICO-UoE/DatasetCondensation ``main.py``,
  ``main_DM.py``; ``res_<method>_<dataset>_<model>_<ipc>ipc.pt``): a dict whose ``data`` is a list of
  ``[image_syn, label_syn]`` pairs, one per experiment: float N×C×H×W images normalised with the dataset's
  mean/std, int64 labels, class by class. ``entry`` picks the pair (default: the last).
- ``datadam``: DataDAM's outputs (DataDistillation/DataDAM): its result file ``res_DataDAM_..._<ipc>ipc_.pt``, the
  ``dc`` layout appended with each new best (the last entry is the best), or an ``<DATASET>_IPC<n>_images.pt`` /
  ``..._labels.pt`` pair of tensors.
- ``mtt``: MTT's saves (GeorgeCazenavette/mtt-distillation ``distill.py``): ``images_best.pt`` (N×C×H×W,
  normalised, in ZCA space when distilled with ``--zca``) and ``labels_best.pt`` (int64) in one folder; MTT keeps
  its learned step size only in its logs, so it is given apart (``syn_lr``: a number or a ``.pt`` scalar).
- ``pt``: a ``condense export --format pt`` file (the ``dc`` layout plus ``images``, ``labels``, ``soft_labels``,
  ``syn_lr`` and ``condense`` metadata).
- ``npz``: arrays ``images`` (N×C×H×W) and ``labels`` (N, or N×K soft labels), optional ``soft_labels``,
  ``lr``, ``mean``/``std``, ``zca_matrix``/``zca_mean`` and ``meta`` (a ``condense export --format npz`` file
  has them all); read with ``allow_pickle=False``.
- ``imagefolder``: ``DIR/<class>/<image>.png`` (any PIL format), one folder per class named by the class name,
  its index, or ``<index>_<name>``; a ``condense export`` folder also has ``condense.json`` and soft labels.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from ..errors import CondenseError
from ..io import reason
from .export import EXPORT_TAG, META_FILE, SOFT_FILE
from .torch_files import load_torch_file

LAYOUTS = ("auto", "dc", "datadam", "mtt", "pt", "npz", "imagefolder")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Found:
    """What a file holds: images and labels as stored, plus whatever it says about itself."""

    layout: str
    images: torch.Tensor
    labels: torch.Tensor
    files: list[str]
    pixels: Optional[str] = None              # "unit" | "normalised" | "zca" when the file says
    mean: Optional[tuple[float, ...]] = None  # the file's normalisation, when it says
    std: Optional[tuple[float, ...]] = None
    lr: Optional[float] = None
    soft_labels: Optional[torch.Tensor] = None
    meta: dict[str, Any] = field(default_factory=dict)   # a condense export's metadata
    class_folders: Optional[list[str]] = None  # imagefolder: the class folder of every image
    zca: Optional[tuple[torch.Tensor, torch.Tensor]] = None
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. the entry of a results file


def _tensor(value: Any, what: str, path: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise CondenseError(f"{path}: {what} is a {type(value).__name__}, not a tensor.")
    return value.detach().cpu()


def _lr(value: Any, path: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise CondenseError(f"{path} holds a learned step size that is not a finite number > 0.")
    return float(value)


def _export_meta(meta: Any, path: str) -> dict[str, Any]:
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_TAG:
        raise CondenseError(f"{path} has metadata that is not a condense export's.")
    return meta


def _from_meta(found: Found, meta: dict[str, Any]) -> Found:
    found.meta = meta
    found.pixels = meta.get("pixels")
    if meta.get("mean") is not None:
        found.mean, found.std = tuple(meta["mean"]), tuple(meta["std"])
    return found


def read_results(path: str, layout: str, entry: Optional[int] = None) -> Found:
    """The ``dc`` layout (and DataDAM's result file, and a ``pt`` export)."""
    blob = load_torch_file(path, "Result file")
    data = blob.get("data") if isinstance(blob, dict) else None
    if not isinstance(data, list) or not data or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in data):
        raise CondenseError(f"{path} is not a DC/DSA/DM-style result file: it needs 'data', a list of "
                            f"[images, labels] pairs.")
    index = len(data) - 1 if entry is None else entry
    if isinstance(index, bool) or not isinstance(index, int) or not -len(data) <= index < len(data):
        raise CondenseError(f"{path} holds {len(data)} entries in 'data'; --entry {entry} is not one of them "
                            f"(0..{len(data) - 1}, or negative from the end).")
    images, labels = (_tensor(v, f"data[{index}][{i}]", path) for i, v in enumerate(data[index]))
    found = Found(layout=layout, images=images, labels=labels, files=[path],
                  notes={"entry": index % len(data), "entries": len(data)})
    if "condense" in blob:
        _from_meta(found, _export_meta(blob["condense"], path))
        found.layout = "pt" if layout in ("dc", "pt") else layout
        if "soft_labels" in blob:
            found.soft_labels = _tensor(blob["soft_labels"], "soft_labels", path)
        found.lr = _lr(blob.get("syn_lr"), path)
        if "zca_matrix" in blob:
            found.zca = (_tensor(blob["zca_matrix"], "zca_matrix", path), _tensor(blob["zca_mean"], "zca_mean", path))
    elif layout == "pt":
        raise CondenseError(f"{path} has no 'condense' metadata, so it is not a condense export; import it with "
                            f"--layout dc (or datadam).")
    return found


def _partner(images_path: str) -> str:
    """The labels file beside an images file: ``images_best.pt`` -> ``labels_best.pt``,
    ``CIFAR10_IPC10_images.pt`` -> ``CIFAR10_IPC10_labels.pt``."""
    folder, name = os.path.split(images_path)
    partner = re.sub(r"images", "labels", name)
    if partner == name:
        raise CondenseError(f"{images_path}: the images file of a pair must have 'images' in its name (its labels are "
                            f"the file with 'labels' instead).")
    return os.path.join(folder, partner)


def read_pair(path: str, layout: str) -> Found:
    """An images tensor file and its labels file (MTT, DataDAM); ``path`` is the images file, or for MTT a
    folder holding ``images_best.pt`` and ``labels_best.pt``."""
    images_path = os.path.join(path, "images_best.pt") if os.path.isdir(path) else path
    labels_path = _partner(images_path)
    images = _tensor(load_torch_file(images_path, "Images file"), "the images file", images_path)
    labels = _tensor(load_torch_file(labels_path, "Labels file"), "the labels file", labels_path)
    return Found(layout=layout, images=images, labels=labels, files=[images_path, labels_path])


def read_npz(path: str) -> Found:
    if not os.path.isfile(path):
        raise CondenseError(f"Array file {path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except PermissionError as err:
        raise CondenseError(f"Array file {path} cannot be read: {reason(err)}.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        raise CondenseError(f"{path} is not a readable .npz of plain arrays (corrupt, or holds objects; condense "
                            f"reads it with allow_pickle=False).") from None
    for key in ("images", "labels"):
        if key not in arrays:
            raise CondenseError(f"{path} has no array '{key}'; an .npz set needs 'images' (N×C×H×W) and 'labels'.")
    if arrays["images"].dtype.kind not in "fiu" or arrays["labels"].dtype.kind not in "fiu":
        raise CondenseError(f"{path} has 'images' or 'labels' that are not numbers.")
    found = Found(layout="npz", images=torch.from_numpy(arrays["images"].copy()),
                  labels=torch.from_numpy(arrays["labels"].copy()), files=[path])
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except (ValueError, TypeError):
            raise CondenseError(f"{path} has a 'meta' array that is not JSON text.") from None
        _from_meta(found, _export_meta(meta, path))
    if "soft_labels" in arrays:
        found.soft_labels = torch.from_numpy(arrays["soft_labels"].copy())
    if "lr" in arrays:
        found.lr = _lr(float(arrays["lr"]) if arrays["lr"].size == 1 else None, path)
    if "mean" in arrays and "std" in arrays and found.mean is None:
        found.mean, found.std = tuple(map(float, arrays["mean"].ravel())), tuple(map(float, arrays["std"].ravel()))
    if "zca_matrix" in arrays and "zca_mean" in arrays:
        found.zca = (torch.from_numpy(arrays["zca_matrix"].copy()), torch.from_numpy(arrays["zca_mean"].copy()))
    return found


def read_folder(path: str, channels: int) -> Found:
    """Images as [0, 1] pixels (``channels`` 1: greyscale, 3: RGB), each labelled by its folder (matched to
    classes by the caller), in the order of a condense export's metadata or else sorted by folder and name."""
    from PIL import Image  # only this layout needs PIL

    meta = None
    if os.path.isfile(os.path.join(path, META_FILE)):
        try:
            meta = _export_meta(json.load(open(os.path.join(path, META_FILE), encoding="utf-8")), path)
        except (ValueError, UnicodeDecodeError):
            raise CondenseError(f"{os.path.join(path, META_FILE)} is not JSON.") from None
    if meta is not None and isinstance(meta.get("files"), list):
        rel = meta["files"]
        if not all(isinstance(r, str) and r.count("/") == 1 and ".." not in r for r in rel):
            raise CondenseError(f"{os.path.join(path, META_FILE)} lists files outside its folder.")
    else:
        folders = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
        rel = [f"{d}/{f}" for d in folders for f in sorted(os.listdir(os.path.join(path, d)))
               if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not rel:
        raise CondenseError(f"{path} holds no class folders with images (DIR/<class>/<image>.png).")
    mode = "L" if channels == 1 else "RGB"
    images = []
    for r in rel:
        file = os.path.join(path, r)
        try:
            with Image.open(file) as img:
                images.append(np.asarray(img.convert(mode), dtype=np.uint8))
        except FileNotFoundError:
            raise CondenseError(f"{file} is listed in {META_FILE} but missing.") from None
        except PermissionError as err:
            raise CondenseError(f"Image {file} cannot be read: {reason(err)}.") from None
        except Exception as err:  # PIL raises many kinds for a non-image or a corrupt one; all are bad input
            raise CondenseError(f"Image {file} cannot be decoded ({type(err).__name__}); remove or replace it.") from None
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise CondenseError(f"The images in {path} differ in size; a set needs images of one size.")
    x = torch.from_numpy(np.stack(images)).float().div_(255)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    found = Found(layout="imagefolder", images=x.contiguous(), labels=torch.empty(0, dtype=torch.long), files=[path],
                  pixels="unit", class_folders=[r.split("/")[0] for r in rel])
    if meta is not None:
        _from_meta(found, meta)
        found.pixels = "unit"
        found.lr = _lr(meta.get("lr"), path)
        soft = os.path.join(path, SOFT_FILE)
        if os.path.isfile(soft):
            try:
                found.soft_labels = torch.from_numpy(np.load(soft, allow_pickle=False))
            except (OSError, ValueError):
                raise CondenseError(f"{soft} is not a plain .npy array.") from None
    return found


def detect(path: str) -> str:
    """The layout of ``path`` from its shape on disk and, for a torch file, its content."""
    if os.path.isdir(path):
        return "mtt" if os.path.isfile(os.path.join(path, "images_best.pt")) else "imagefolder"
    if path.lower().endswith(".npz"):
        return "npz"
    if not os.path.isfile(path):
        raise CondenseError(f"{path} does not exist.")
    name = os.path.basename(path)
    if re.search(r"_IPC\d+_images\.pt$", name):
        return "datadam"
    if "images" in name:
        return "mtt"
    return "datadam" if name.startswith("res_DataDAM") else "dc"


def read(path: str, layout: str = "auto", entry: Optional[int] = None, channels: int = 3) -> Found:
    """Read ``path`` in ``layout`` (``auto``: detected)."""
    if layout not in LAYOUTS:
        raise CondenseError(f"Unknown layout '{layout}'; choose one of: {', '.join(LAYOUTS)}.")
    if not os.path.exists(path):
        raise CondenseError(f"{path} does not exist.")
    kind = detect(path) if layout == "auto" else layout
    if entry is not None and kind not in ("dc", "datadam", "pt"):
        raise CondenseError(f"--entry picks a pair of a result file's 'data'; the {kind} layout has none.")
    if kind == "imagefolder":
        if not os.path.isdir(path):
            raise CondenseError(f"The imagefolder layout reads a folder; {path} is a file.")
        return read_folder(path, channels)
    if kind == "npz":
        return read_npz(path)
    if kind == "mtt" or (kind == "datadam" and (os.path.isdir(path) or "images" in os.path.basename(path))):
        return read_pair(path, kind)
    if os.path.isdir(path):
        raise CondenseError(f"The {kind} layout reads a result file; {path} is a folder.")
    return read_results(path, kind, entry)
