"""torchvision's on-disk formats, read with download=False; a missing root names the files expected."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import CondenseError
from .dataset import ImageDataset, from_uint8


@dataclass(frozen=True)
class TorchvisionSpec:
    cls_name: str
    expected: str                      # what must be under ROOT, for the error sentence
    mean: tuple[float, ...]
    std: tuple[float, ...]
    split_kw: Callable[[bool], dict]   # train flag -> constructor kwargs
    hflip_safe: bool = True            # digits and house numbers change meaning when mirrored


SPECS = {
    "mnist": TorchvisionSpec("MNIST", "ROOT/MNIST/raw/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                             "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte", (0.1307,), (0.3081,),
                             lambda t: {"train": t}, False),
    "fashionmnist": TorchvisionSpec("FashionMNIST", "ROOT/FashionMNIST/raw/ with train-images-idx3-ubyte, "
                                    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte",
                                    (0.2861,), (0.3530,), lambda t: {"train": t}),
    "svhn": TorchvisionSpec("SVHN", "ROOT/train_32x32.mat and ROOT/test_32x32.mat", (0.4377, 0.4438, 0.4728),
                            (0.1980, 0.2010, 0.1970), lambda t: {"split": "train" if t else "test"}, False),
    "cifar10": TorchvisionSpec("CIFAR10", "ROOT/cifar-10-batches-py/ with data_batch_1..5, test_batch and "
                               "batches.meta", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010),
                               lambda t: {"train": t}),
    "cifar100": TorchvisionSpec("CIFAR100", "ROOT/cifar-100-python/ with train, test and meta",
                                (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), lambda t: {"train": t}),
}


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(ds.data)
    if data.ndim == 4 and data.shape[1] == 3:       # SVHN stores N×C×H×W
        data = data.transpose(0, 2, 3, 1)
    labels = np.asarray(getattr(ds, "targets", getattr(ds, "labels", None)), dtype=np.int64)
    return data.astype(np.uint8), labels


def load_torchvision(name: str, root) -> ImageDataset:
    import torchvision.datasets as tvd

    spec = SPECS[name]
    if not root:
        raise CondenseError(f"Dataset {name} is read from disk: pass --data-root DIR (or set CONDENSE_DATA=DIR) with "
                            f"{spec.expected.replace('ROOT', 'DIR')}, or with an image tree DIR/{name}/train and "
                            f"DIR/{name}/test.")
    cls = getattr(tvd, spec.cls_name)
    try:
        train = cls(root, download=False, **spec.split_kw(True))
        test = cls(root, download=False, **spec.split_kw(False))
    except (RuntimeError, FileNotFoundError, OSError):
        raise CondenseError(f"Dataset {name} expects {spec.expected.replace('ROOT', root)}, or an image tree "
                            f"{os.path.join(root, name)}/train and /test; not found or incomplete (condense never "
                            "downloads).") from None
    classes = list(getattr(train, "classes", [])) or [str(c) for c in range(10)]
    return from_uint8(name, _arrays(train), _arrays(test), classes, spec.mean, spec.std, spec.hflip_safe)
