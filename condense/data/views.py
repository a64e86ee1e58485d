"""Dataset views: ``NAME@classes=2,3,4@size=32@channels=3`` reads NAME and then narrows or reshapes it.

Transfer experiments need a source and a target of the same image shape drawn from data on disk:
CIFAR-10 split by classes (pre-train on the animals ``cifar10@classes=2,3,4,5,6,7``, transfer to the
vehicles ``cifar10@classes=0,1,8,9``), or MNIST brought to CIFAR's shape (``mnist5k@size=32@channels=3``).

- ``classes=LIST``: the listed classes (indices or names), relabelled 0..k−1 in the order given, in every split.
- ``size=S``: every image resized to S×S (bilinear, antialiased; normalised values are an affine map of the
  pixels, so resizing them is resizing the pixels).
- ``channels=C``: 1 → 3 repeats the grey channel (mean and std repeated); 3 → 1 takes the luma
  (0.299 R + 0.587 G + 0.114 B) and renormalises with the training split's statistics.

Options apply in that order; the view's name is the whole string, so a set distilled from a view records it
and every later command (eval, audit) reads the same view.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import CondenseError
from .dataset import ImageDataset, channel_stats

VIEW_OPTIONS = ("classes", "size", "channels")
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class View:
    classes: Optional[tuple[str, ...]] = None
    size: Optional[int] = None
    channels: Optional[int] = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.classes, self.size, self.channels))


def _positive(key: str, value: str, name: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise CondenseError(f"Dataset view {name}: '{key}' takes a positive whole number, got '{value}'.")
    return int(value)


def split_view(name: str) -> tuple[str, View]:
    """(base dataset name, view) from ``NAME@key=value@...``; a name without view options is returned whole.

    Options are peeled from the right, so an image-folder path may itself contain '@' (but not '@key=')."""
    base, found = name, {}
    while "@" in base:
        head, _, tail = base.rpartition("@")
        key, eq, value = tail.partition("=")
        if not eq:
            break
        if key not in VIEW_OPTIONS:
            raise CondenseError(f"Dataset view {name}: unknown option '{key}'; options are {', '.join(VIEW_OPTIONS)} "
                                f"(e.g. cifar10@classes=0,1,8,9).")
        if key in found:
            raise CondenseError(f"Dataset view {name}: option '{key}' is given twice.")
        found[key] = value
        base = head
    if not base:
        raise CondenseError(f"Dataset view {name} names no dataset before its options.")
    view = View()
    if "classes" in found:
        items = tuple(c.strip() for c in found["classes"].split(","))
        if not all(items):
            raise CondenseError(f"Dataset view {name}: 'classes' takes a comma list of class indices or names.")
        if len(set(items)) != len(items):
            raise CondenseError(f"Dataset view {name}: 'classes' lists a class twice.")
        view = replace(view, classes=items)
    if "size" in found:
        view = replace(view, size=_positive("size", found["size"], name))
    if "channels" in found:
        channels = _positive("channels", found["channels"], name)
        if channels not in (1, 3):
            raise CondenseError(f"Dataset view {name}: 'channels' must be 1 or 3, got {channels}.")
        view = replace(view, channels=channels)
    return base, view


def _class_indices(ds: ImageDataset, wanted: tuple[str, ...], name: str) -> list[int]:
    out = []
    for item in wanted:
        if item in ds.class_names:
            out.append(ds.class_names.index(item))
        elif item.isdigit() and int(item) < ds.num_classes:
            out.append(int(item))
        else:
            listed = ", ".join(f"{i} {c}" if c != str(i) else c for i, c in enumerate(ds.class_names))
            raise CondenseError(f"Dataset view {name}: {ds.name} has no class '{item}'; its classes are {listed}.")
    if len(set(out)) != len(out):
        raise CondenseError(f"Dataset view {name}: 'classes' names the same class twice (by index and by name).")
    return out


def _subset(x: Optional[torch.Tensor], y: Optional[torch.Tensor], keep: list[int], classes: int):
    if x is None:
        return None, None
    remap = torch.full((classes,), -1, dtype=torch.long)
    remap[torch.tensor(keep)] = torch.arange(len(keep))
    rows = torch.nonzero(torch.isin(y.cpu(), torch.tensor(keep))).squeeze(1).to(y.device)
    return x[rows], remap[y[rows].cpu()].to(y.device)


def _resize(x: Optional[torch.Tensor], size: int) -> Optional[torch.Tensor]:
    if x is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return torch.cat([F.interpolate(x[i:i + 2048], size=(size, size), mode="bilinear", align_corners=False,
                                    antialias=True) for i in range(0, len(x), 2048)]) if len(x) else x


def _to_channels(ds: ImageDataset, channels: int) -> ImageDataset:
    if ds.channels == channels:
        return ds
    splits = ("train_x", "test_x", "val_x")
    if channels == 3:  # 1 → 3: the same normalised grey value in every channel
        return replace(ds, mean=ds.mean * 3, std=ds.std * 3,
                       **{k: getattr(ds, k).repeat(1, 3, 1, 1) for k in splits if getattr(ds, k) is not None})
    luma = torch.tensor(_LUMA).view(1, 3, 1, 1)
    grey = {k: (ds.denormalize(getattr(ds, k)) * luma.to(getattr(ds, k))).sum(1, keepdim=True)
            for k in splits if getattr(ds, k) is not None}
    (mean,), (std,) = channel_stats(grey["train_x"])
    return replace(ds, mean=(mean,), std=(std,), **{k: (v - mean) / std for k, v in grey.items()})


def apply_view(ds: ImageDataset, view: View, name: str) -> ImageDataset:
    """``ds`` narrowed and reshaped by ``view``, named ``name`` (the full view string)."""
    if view.classes is not None:
        keep = _class_indices(ds, view.classes, name)
        parts = {}
        for x_key, y_key in (("train_x", "train_y"), ("test_x", "test_y"), ("val_x", "val_y")):
            parts[x_key], parts[y_key] = _subset(getattr(ds, x_key), getattr(ds, y_key), keep, ds.num_classes)
        ds = replace(ds, class_names=[ds.class_names[i] for i in keep], **parts)
    if view.size is not None:
        ds = replace(ds, **{k: _resize(getattr(ds, k), view.size) for k in ("train_x", "test_x", "val_x")})
    if view.channels is not None:
        ds = _to_channels(ds, view.channels)
    return replace(ds, name=name)
