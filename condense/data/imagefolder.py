"""`imagefolder:PATH`: any PATH/train/<class>/* + PATH/test/<class>/* tree, decoded once and cached."""
from __future__ import annotations

import hashlib
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np

from ..errors import CondenseError
from ..io import cache_root, write_npz
from .dataset import ImageDataset, from_uint8

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _listing(root: str, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise CondenseError(f"imagefolder expects {folder}/<class>/<image> folders; {folder} does not exist.")
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if not classes:
        raise CondenseError(f"imagefolder found no class folders in {folder}.")
    files = []
    for label, c in enumerate(classes):
        names = sorted(f for f in os.listdir(os.path.join(folder, c)) if f.lower().endswith(IMAGE_EXTENSIONS))
        files += [(os.path.join(folder, c, f), label) for f in names]
    if not files:
        raise CondenseError(f"imagefolder found no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}.")
    return classes, files


def _decode(path: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            mode = "L" if img.mode in ("L", "1", "I;16", "I") else "RGB"
            return np.asarray(img.convert(mode))
    except PermissionError:
        raise CondenseError(f"imagefolder image {path} cannot be read: permission denied.") from None
    except Exception as err:  # PIL raises many kinds for a non-image or a corrupt one; all are bad input
        raise CondenseError(f"imagefolder cannot decode {path} ({type(err).__name__}); remove or replace "
                            f"that file.") from None


def _decode_all(files: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        images = list(pool.map(_decode, [f for f, _ in files], chunksize=256))
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        first = next(f for (f, _), im in zip(files, images) if im.shape != images[0].shape)
        raise CondenseError(f"imagefolder needs images of one size; {first} differs from {files[0][0]}.")
    x = np.stack(images)
    if x.ndim == 3:
        x = x[..., None]
    return x, np.asarray([label for _, label in files], dtype=np.int64)


def _cached(path: str, classes: int, counts: tuple[int, int]) -> Optional[tuple[np.ndarray, ...]]:
    """The decoded arrays in the cache file, or None when it is missing, unreadable or malformed (rebuilt)."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = tuple(z[k] for k in ("xtr", "ytr", "xte", "yte"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    xtr, ytr, xte, yte = arrays
    sound = all(x.dtype == np.uint8 and x.ndim == 4 and y.dtype == np.int64 and y.shape == x.shape[:1] == (n,)
                and 0 <= y.min() <= y.max() < classes for x, y, n in ((xtr, ytr, counts[0]), (xte, yte, counts[1])))
    return arrays if sound else None


def load_imagefolder(root: str) -> ImageDataset:
    root = os.path.abspath(os.path.expanduser(root))
    train_classes, train_files = _listing(root, "train")
    test_classes, test_files = _listing(root, "test")
    if train_classes != test_classes:
        raise CondenseError(f"imagefolder {root} has different class folders in train/ and test/.")
    key = hashlib.sha256(repr((root, [(f, os.path.getmtime(f)) for f, _ in train_files + test_files])).encode())
    cached = cache_root(f"imagefolder-{key.hexdigest()[:20]}.npz")
    arrays = _cached(cached, len(train_classes), (len(train_files), len(test_files)))
    if arrays is None:  # a missing or corrupt cache is rebuilt from the images
        arrays = (*_decode_all(train_files), *_decode_all(test_files))
        try:
            write_npz(cached, xtr=arrays[0], ytr=arrays[1], xte=arrays[2], yte=arrays[3])
        except CondenseError:
            pass  # only a cache: a full or read-only disk costs the next run a decode, not this run
    xtr, ytr, xte, yte = arrays
    if xtr.shape[1:] != xte.shape[1:]:
        raise CondenseError(f"imagefolder {root} has train images of shape {xtr.shape[1:]} but test images of {xte.shape[1:]}.")
    return from_uint8(f"imagefolder:{root}", (xtr, ytr), (xte, yte), train_classes)
