"""Portable dataset references: a set names its data and records the data's fingerprint, so that another
machine finds the same data in its own place (and refuses other data under the same name).

A data root (``--data-root DIR``, else ``$CONDENSE_DATA``) holds datasets by name: torchvision's own files
for the registry names (``DIR/cifar-10-batches-py``), or an image tree ``DIR/NAME/{train,test}/<class>/<image>``
for any NAME; for example ``DIR/cifar10`` is the tree that extracting ``cifar10-jpeg.tar`` inside it gives.
Older sets recorded ``imagefolder:/absolute/path`` of the machine that made them; when that path is missing here,
the folder's name (or the name the documented set-up gives it now, ``LEGACY_NAMES``) is looked up in the data
roots instead.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

from ..errors import CondenseError
from .views import split_view

DATA_ENV = "CONDENSE_DATA"
# Folder names that older sets recorded -> the name the documented set-up uses for the same data.
LEGACY_NAMES = {"cifar10-jpeg": "cifar10"}
# The fingerprints of those folders' data, for the sets that recorded none (format 1): CIFAR-10 recoded as JPEG
# (50,000 + 10,000 images of ``cifar10-jpeg.tar``, statistics of its training split), read as an image folder.
LEGACY_FINGERPRINTS: dict[str, str] = {"cifar10-jpeg": "0c2774e7b85ef272"}


def data_root(root: Optional[str] = None) -> Optional[str]:
    """The data root: ``root`` when given, else ``$CONDENSE_DATA``, else None."""
    return root or os.environ.get(DATA_ENV) or None


def named_folder(name: str, root: Optional[str]) -> Optional[str]:
    """``root/name`` when it is an image tree (it has a ``train/`` folder), else None."""
    if not root or not name or name.startswith(".") or "/" in name or os.sep in name or ":" in name:
        return None
    path = os.path.join(os.path.expanduser(root), name)
    return path if os.path.isdir(os.path.join(path, "train")) else None


def resolve_reference(name: str, roots: Sequence[Optional[str]]) -> str:
    """The name to load for a dataset a set recorded: unchanged, except an ``imagefolder:PATH`` whose PATH is
    not on this machine, which becomes the folder of the same (or its documented) name in the first data root
    that has one. A view (``@classes=...``) is kept."""
    base = split_view(name)[0]
    suffix = name[len(base):]
    if not base.startswith("imagefolder:"):
        return name
    path = base.split(":", 1)[1]
    if os.path.isdir(os.path.expanduser(path)):
        return name
    folder = os.path.basename(os.path.normpath(path))
    wanted = LEGACY_NAMES.get(folder, folder)
    for root in dict.fromkeys(filter(None, roots)):
        for candidate in dict.fromkeys((folder, wanted)):
            found = named_folder(candidate, root)
            if found:
                return f"imagefolder:{found}{suffix}"
    raise CondenseError(f"The set was made from the image folder {path}, which is not on this machine; put that data "
                        f"in DIR/{wanted}/train and DIR/{wanted}/test and pass --data-root DIR (or set "
                        f"{DATA_ENV}=DIR).")
