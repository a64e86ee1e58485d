"""Network files: one trained network per HDF5 file, loaded without unpickling anything.

Teachers, feature networks, self-supervised encoders, autoencoders and reference models all use it.
The file holds a ``state/`` group with one dataset per ``state_dict()`` entry (buffers included) and
attributes naming how to rebuild the model (registry architecture + arguments), what it was trained
on and how, and a sha256 checksum over the state. Every problem on load is one CondenseError sentence.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Optional

import h5py
import numpy as np
import torch
import torch.nn as nn

from ..errors import CondenseError
from ..io import unreadable, write_hdf5
from ..version import __version__
from .registry import create_model, list_models

KIND = "condense-network"
FORMAT_VERSION = 1
ROLES = ("teacher", "feature", "ssl", "autoencoder", "reference", "other")
Spec = tuple[tuple[int, ...], str]  # (shape, dtype name as numpy and torch both spell it, e.g. "float32")


@dataclass(frozen=True)
class NetworkInfo:
    path: str
    architecture: str
    model_args: dict
    channels: int
    num_classes: int
    image_size: tuple[int, int]
    role: str
    dataset: str
    dataset_fingerprint: str
    metrics: dict
    training: dict
    created: str
    versions: dict
    checksum: str
    entries: dict[str, Spec]  # state entry name -> (shape, dtype)


def _spec(t: torch.Tensor) -> Spec:
    return tuple(t.shape), str(t.dtype).removeprefix("torch.")


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{arr.dtype}|{list(arr.shape)}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _check_fits(entries: dict[str, Spec], state: dict[str, torch.Tensor], what: str, target: str) -> None:
    """Refuse, naming the first offending entry, unless ``entries`` match ``state`` in names, shapes and dtypes."""
    for key in sorted(set(state) | set(entries)):
        if key not in entries:
            raise CondenseError(f"{what} lacks entry '{key}', which {target} needs.")
        if key not in state:
            raise CondenseError(f"{what} has entry '{key}', which {target} does not have.")
        (shape, dtype), (want_shape, want_dtype) = entries[key], _spec(state[key])
        if (tuple(shape), dtype) != (want_shape, want_dtype):
            raise CondenseError(f"{what} has entry '{key}' as {dtype} {list(shape)}; "
                                f"{target} needs {want_dtype} {list(want_shape)}.")


def save_network(path: str, model: nn.Module, *, architecture: str, model_args: dict, channels: int,
                 num_classes: int, image_size: tuple[int, int], role: str, dataset: str = "",
                 dataset_fingerprint: str = "", metrics: Optional[dict] = None,
                 training: Optional[dict] = None) -> str:
    """Write ``model``'s state and how to rebuild it atomically; returns ``path``."""
    if role not in ROLES:
        raise CondenseError(f"Network role '{role}' is not one of: {', '.join(ROLES)}.")
    try:
        args_json = json.dumps(model_args, sort_keys=True)
    except TypeError:
        raise CondenseError(f"Model arguments {model_args!r} are not plain JSON values.") from None
    state = model.state_dict()
    # Refuse now a file that load_network could not rebuild (a meta-device build allocates nothing).
    with torch.device("meta"):
        fresh = create_model(architecture, channels, num_classes, tuple(image_size), **json.loads(args_json))
    _check_fits({k: _spec(v) for k, v in state.items()}, fresh.state_dict(), "The network to save",
                f"architecture '{architecture}' with {args_json}")
    arrays = {k: v.detach().cpu().contiguous().numpy() for k, v in state.items()}
    attrs = {
        "kind": KIND, "format_version": FORMAT_VERSION, "architecture": architecture, "model_args": args_json,
        "channels": int(channels), "num_classes": int(num_classes), "image_size": json.dumps(list(image_size)),
        "role": role, "dataset": dataset, "dataset_fingerprint": dataset_fingerprint,
        "metrics": json.dumps(metrics or {}, sort_keys=True, default=str),
        "training": json.dumps(training or {}, sort_keys=True, default=str),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": json.dumps({"torch": torch.__version__, "condense": __version__}, sort_keys=True),
        "checksum": _checksum(arrays),
    }

    def fill(f: h5py.File) -> None:
        group = f.create_group("state")
        for key, arr in arrays.items():
            group.create_dataset(key, data=arr)
        f.attrs.update(attrs)

    return write_hdf5(path, fill)


def _open(path: str) -> h5py.File:
    if not os.path.isfile(path):
        raise CondenseError(f"Network file {path} does not exist.")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise (unreadable(path, err, "Network file") or
               CondenseError(f"{path} is not a readable HDF5 file (corrupt or truncated?).")) from None


def _info(f: h5py.File, path: str) -> NetworkInfo:
    a = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
    if a.get("kind") != KIND or not isinstance(f.get("state"), h5py.Group):
        raise CondenseError(f"{path} is an HDF5 file but not a condense network file.")
    if a.get("format_version") != FORMAT_VERSION:
        raise CondenseError(f"{path} has network format version {a.get('format_version')}; "
                            f"this condense reads version {FORMAT_VERSION}.")
    try:
        return NetworkInfo(
            path=path, architecture=str(a["architecture"]), model_args=dict(json.loads(a["model_args"])),
            channels=int(a["channels"]), num_classes=int(a["num_classes"]),
            image_size=tuple(json.loads(a["image_size"])), role=str(a["role"]), dataset=str(a["dataset"]),
            dataset_fingerprint=str(a["dataset_fingerprint"]), metrics=json.loads(a["metrics"]),
            training=json.loads(a["training"]), created=str(a["created"]), versions=json.loads(a["versions"]),
            checksum=str(a["checksum"]),
            entries={k: (tuple(d.shape), str(d.dtype)) for k, d in f["state"].items()})
    except KeyError as err:
        raise CondenseError(f"{path} is not a valid network file: attribute {err} is missing.") from None
    except (ValueError, TypeError, AttributeError):
        raise CondenseError(f"{path} is not a valid network file: its metadata cannot be parsed.") from None


def read_network_info(path: str) -> NetworkInfo:
    """Metadata and state entry shapes/dtypes only; no array is read and no model is built."""
    with _open(path) as f:
        return _info(f, path)


def _read_state(f: h5py.File, info: NetworkInfo) -> dict[str, torch.Tensor]:
    try:
        arrays = {k: np.asarray(d[()]) for k, d in f["state"].items()}
    except (OSError, ValueError, KeyError):
        raise CondenseError(f"{info.path} is corrupt or truncated: its arrays cannot be read.") from None
    if _checksum(arrays) != info.checksum:
        raise CondenseError(f"{info.path} fails its checksum: the network weights were modified or corrupted.")
    return {k: torch.from_numpy(arr) for k, arr in arrays.items()}


def load_network(path: str, device="cpu") -> tuple[nn.Module, NetworkInfo]:
    """Rebuild the saved network with ``create_model``, check and load its state; returns (eval-mode model, info)."""
    with _open(path) as f:
        info = _info(f, path)
        if info.architecture not in list_models():
            raise CondenseError(f"{path} holds a '{info.architecture}' network, which this condense does not "
                                f"know; it knows: {', '.join(list_models())}.")
        try:
            model = create_model(info.architecture, info.channels, info.num_classes, info.image_size,
                                 **info.model_args)
        except CondenseError:
            raise
        except Exception as err:
            raise CondenseError(f"{path}: architecture '{info.architecture}' cannot be built with "
                                f"{info.model_args} ({type(err).__name__}).") from None
        _check_fits(info.entries, model.state_dict(), path, f"architecture '{info.architecture}'")
        model.load_state_dict(_read_state(f, info))
    return model.to(device).eval(), info


def load_state_into(model: nn.Module, path: str) -> Optional[NetworkInfo]:
    """Load user-supplied weights into ``model``: a network file, or a plain ``.pt``/``.pth`` state_dict.

    A state_dict is read with ``torch.load(weights_only=True)``, which refuses pickled objects other than
    tensors and plain containers. Returns the network file's info, or None for a state_dict.
    """
    target = f"the {type(model).__name__} model"
    if h5py.is_hdf5(path):
        with _open(path) as f:
            info = _info(f, path)
            _check_fits(info.entries, model.state_dict(), path, target)
            model.load_state_dict(_read_state(f, info))
        return info
    if not os.path.isfile(path):
        raise CondenseError(f"Weights file {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as err:
        raise unreadable(path, err, "Weights file") from None
    except Exception as err:
        raise CondenseError(f"{path} is neither a network file nor a weights-only state_dict "
                            f"({type(err).__name__}).") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CondenseError(f"{path} is not a state_dict (a mapping of entry names to tensors).")
    _check_fits({k: _spec(v) for k, v in state.items()}, model.state_dict(), path, target)
    model.load_state_dict(state)
    return None
