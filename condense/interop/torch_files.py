"""Torch files made elsewhere, read without unpickling code, and the checksums that record where a set came from.

``torch.load(weights_only=True)`` builds tensors, numbers, strings and containers only. The result files of the
official DC/DSA/DM and DataDAM scripts (VICO-UoE/DatasetCondensation ``main.py``/``main_DM.py``,
DataDistillation/DataDAM ``main_DataDAM.py``) also hold their accuracies as numpy floats, so numpy's scalar
constructor and its numeric dtypes are allowed as well: they rebuild a number from its bytes and run no code.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from typing import Any

import numpy as np
import torch

from ..errors import CondenseError
from ..io import reason

try:  # numpy 2 moved its internals to numpy._core; pickles name either place
    from numpy._core.multiarray import scalar as _scalar
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import scalar as _scalar

_NUMERIC = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
            "float64")
SAFE_NUMPY = [np.dtype, (_scalar, "numpy.core.multiarray.scalar"), (_scalar, "numpy._core.multiarray.scalar"),
              *dict.fromkeys(type(np.dtype(t)) for t in _NUMERIC)]


def load_torch_file(path: str, what: str = "File") -> Any:
    """The content of a ``torch.save`` file, read with ``weights_only=True`` on the CPU; one sentence otherwise."""
    if not os.path.isfile(path):
        raise CondenseError(f"{what} {path} does not exist.")
    try:
        with torch.serialization.safe_globals(SAFE_NUMPY):
            return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as err:
        raise CondenseError(f"{what} {path} cannot be read: {reason(err)}.") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, zipfile.BadZipFile, OSError, UnicodeDecodeError):
        raise CondenseError(f"{what} {path} cannot be read with torch.load(weights_only=True): it is corrupt, not a "
                            f"torch file, or holds objects other than tensors, numbers and containers (condense "
                            f"never unpickles code).") from None


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes (of every file under it, by relative name, for a folder)."""
    digest = hashlib.sha256()
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(folder, f) for folder, _, names in os.walk(path) for f in names)
    for f in files:
        if f != path:
            digest.update(os.path.relpath(f, path).encode())
        with open(f, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
