"""SynthSet: the one artifact passed between stages, and its validated HDF5 format.

A SynthSet file is readable with plain h5py: arrays are datasets, metadata are attributes.
Saving is atomic (temp file in the same folder, then ``os.replace``) so an interrupted save
never destroys an earlier result. Loading checks everything and fails with one sentence.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional

import h5py
import numpy as np
import torch

from .errors import CondenseError

FORMAT_VERSION = 1
_ARRAYS = ("images", "labels", "lr", "zca_matrix", "zca_mean")


def _library_versions() -> dict[str, str]:
    import kornia

    return {"torch": torch.__version__, "kornia": kornia.__version__, "h5py": h5py.__version__,
            "numpy": np.__version__, "condense": _condense_version()}


def _condense_version() -> str:
    try:
        from importlib.metadata import version

        return version("condense")
    except Exception:  # running from a source tree without installation
        return "unknown"


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in _ARRAYS:
        if name in arrays:
            arr = np.ascontiguousarray(arrays[name])
            digest.update(name.encode())
            digest.update(str(arr.dtype).encode() + str(arr.shape).encode())
            digest.update(arr.tobytes())
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str, write_fn) -> None:
    """Call ``write_fn(tmp_path)`` then move the result over ``path`` in one step."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result should look like any new file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@dataclass
class SynthSet:
    """A synthetic (or coreset) training set plus everything needed to use it correctly."""

    images: torch.Tensor                      # float32 (N, C, H, W) in the learned space
    labels: torch.Tensor                      # int64 (N,) hard labels, or float32 (N, K) soft labels
    dataset: str
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    method: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    iterations_done: int = 0
    lr: Optional[torch.Tensor] = None         # learned step size (MTT), scalar tensor
    zca_matrix: Optional[torch.Tensor] = None  # (D, D) whitening matrix when images live in ZCA space
    zca_mean: Optional[torch.Tensor] = None    # (D,)
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    # ---- convenience -------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def soft_labels(self) -> bool:
        return self.labels.dim() == 2

    @property
    def hard_labels(self) -> torch.Tensor:
        return self.labels.argmax(1) if self.soft_labels else self.labels

    @property
    def ipc(self) -> int:
        counts = torch.bincount(self.hard_labels.cpu(), minlength=self.num_classes)
        return int(counts.max())

    def detached(self) -> "SynthSet":
        """A copy with CPU tensors that own their memory (safe to save while training goes on)."""
        copy = dict(self.__dict__)
        for name in _ARRAYS:
            if copy.get(name) is not None:
                copy[name] = copy[name].detach().cpu().clone()
        return SynthSet(**copy)

    def denormalized(self) -> torch.Tensor:
        """Images in [0, 1] pixel space (undoing ZCA is not possible without its inverse)."""
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (self.images.detach().cpu() * std + mean).clamp(0, 1)

    # ---- persistence -------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"images": self.images.detach().cpu().numpy().astype(np.float32, copy=False),
                  "labels": self.labels.detach().cpu().numpy()}
        if self.lr is not None:
            arrays["lr"] = np.asarray(self.lr.detach().cpu().numpy(), dtype=np.float32)
        if self.zca_matrix is not None:
            arrays["zca_matrix"] = self.zca_matrix.detach().cpu().numpy().astype(np.float32)
            arrays["zca_mean"] = self.zca_mean.detach().cpu().numpy().astype(np.float32)
        return arrays

    def save(self, path: str) -> str:
        """Validate, then write atomically. Returns the path."""
        validate(self)
        arrays = self._arrays()
        created = self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        attrs = {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "num_classes": int(self.num_classes),
            "class_names": json.dumps(list(self.class_names)),
            "image_shape": json.dumps(list(self.image_shape)),
            "mean": json.dumps([float(m) for m in self.mean]),
            "std": json.dumps([float(s) for s in self.std]),
            "method": self.method,
            "config": json.dumps(self.config, sort_keys=True, default=str),
            "seed": int(self.seed),
            "iterations_done": int(self.iterations_done),
            "created": created,
            "versions": json.dumps(self.versions or _library_versions(), sort_keys=True),
            "checksum": _checksum(arrays),
        }

        def write(tmp: str) -> None:
            with h5py.File(tmp, "w") as f:
                for name, arr in arrays.items():
                    f.create_dataset(name, data=arr)
                for key, value in attrs.items():
                    f.attrs[key] = value

        atomic_write(path, write)
        return path

    @classmethod
    def load(cls, path: str) -> "SynthSet":
        return load(path)


def validate(s: SynthSet, where: str = "the synthetic set") -> None:
    """Raise CondenseError with one sentence if the set is inconsistent or non-finite."""
    if s.images.dim() != 4:
        raise CondenseError(f"{where} has images of shape {tuple(s.images.shape)}; expected N×C×H×W.")
    n = s.images.shape[0]
    if n == 0:
        raise CondenseError(f"{where} holds no images.")
    if s.images.dtype != torch.float32:
        raise CondenseError(f"{where} has images of dtype {s.images.dtype}; expected float32.")
    if s.labels.shape[0] != n:
        raise CondenseError(f"{where} has {n} images but {s.labels.shape[0]} labels.")
    if s.labels.dim() == 1:
        if s.labels.dtype != torch.int64:
            raise CondenseError(f"{where} has hard labels of dtype {s.labels.dtype}; expected int64.")
        if int(s.labels.min()) < 0 or int(s.labels.max()) >= s.num_classes:
            raise CondenseError(f"{where} has labels outside 0..{s.num_classes - 1}.")
    elif s.labels.dim() == 2:
        if s.labels.shape[1] != s.num_classes or s.labels.dtype != torch.float32:
            raise CondenseError(f"{where} has soft labels of shape {tuple(s.labels.shape)}; "
                                f"expected float32 N×{s.num_classes}.")
    else:
        raise CondenseError(f"{where} has labels of shape {tuple(s.labels.shape)}; expected N or N×K.")
    if len(s.class_names) != s.num_classes:
        raise CondenseError(f"{where} names {len(s.class_names)} classes but has num_classes={s.num_classes}.")
    channels = s.images.shape[1]
    if len(s.mean) != channels or len(s.std) != channels:
        raise CondenseError(f"{where} has mean/std for {len(s.mean)} channels but images have {channels}.")
    for name in _ARRAYS:
        t = getattr(s, name)
        if t is not None and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CondenseError(f"{where} contains NaN or infinite values in '{name}'.")
    if (s.zca_matrix is None) != (s.zca_mean is None):
        raise CondenseError(f"{where} has only half of its ZCA transform (matrix and mean go together).")


def _attr(f: h5py.File, key: str, path: str):
    if key not in f.attrs:
        raise CondenseError(f"{path} is not a valid SynthSet file: attribute '{key}' is missing.")
    value = f.attrs[key]
    return value.decode() if isinstance(value, bytes) else value


def load(path: str) -> SynthSet:
    """Load and validate a SynthSet file; any problem is one CondenseError sentence."""
    if not os.path.isfile(path):
        raise CondenseError(f"SynthSet file {path} does not exist.")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise CondenseError(f"{path} is not a readable HDF5 file (corrupt or truncated?).") from None
    try:
        with f:
            version = int(_attr(f, "format_version", path))
            if version != FORMAT_VERSION:
                raise CondenseError(f"{path} has SynthSet format version {version}; this condense reads "
                                    f"version {FORMAT_VERSION}.")
            for name in ("images", "labels"):
                if name not in f:
                    raise CondenseError(f"{path} is not a valid SynthSet file: dataset '{name}' is missing.")
            try:
                arrays = {name: f[name][()] for name in _ARRAYS if name in f}
            except (OSError, KeyError, ValueError):
                raise CondenseError(f"{path} is corrupt or truncated: its arrays cannot be read.") from None
            try:
                meta = {
                    "dataset": str(_attr(f, "dataset", path)),
                    "num_classes": int(_attr(f, "num_classes", path)),
                    "class_names": json.loads(_attr(f, "class_names", path)),
                    "image_shape": json.loads(_attr(f, "image_shape", path)),
                    "mean": tuple(json.loads(_attr(f, "mean", path))),
                    "std": tuple(json.loads(_attr(f, "std", path))),
                    "method": str(_attr(f, "method", path)),
                    "config": json.loads(_attr(f, "config", path)),
                    "seed": int(_attr(f, "seed", path)),
                    "iterations_done": int(_attr(f, "iterations_done", path)),
                    "created": str(_attr(f, "created", path)),
                    "versions": json.loads(_attr(f, "versions", path)),
                }
            except (ValueError, TypeError):
                raise CondenseError(f"{path} is not a valid SynthSet file: its metadata cannot be parsed.") from None
            checksum = str(_attr(f, "checksum", path))
    except OSError:
        raise CondenseError(f"{path} is corrupt or truncated: HDF5 read failed.") from None
    if _checksum(arrays) != checksum:
        raise CondenseError(f"{path} fails its checksum: the arrays were modified or corrupted.")
    if arrays["images"].dtype != np.float32 or arrays["images"].ndim != 4:
        raise CondenseError(f"{path} has images of dtype {arrays['images'].dtype} and "
                            f"{arrays['images'].ndim} dimensions; expected float32 N×C×H×W.")
    if list(arrays["images"].shape[1:]) != list(meta["image_shape"]):
        raise CondenseError(f"{path} declares image_shape {meta['image_shape']} but stores "
                            f"{list(arrays['images'].shape[1:])}.")
    meta.pop("image_shape")
    tensors = {name: torch.from_numpy(np.array(arr)) for name, arr in arrays.items()}  # keeps 0-d lr 0-d
    synth = SynthSet(**tensors, **meta)
    validate(synth, where=path)
    return synth


def save_grid(synth: SynthSet, path: str, max_per_class: int = 10, min_cell: int = 32) -> str:
    """Write a PNG grid, one row per class, denormalised; tiny images are upscaled (nearest)."""
    import torch.nn.functional as F
    from torchvision.utils import save_image

    labels = synth.hard_labels.cpu()
    pixels = synth.denormalized()
    rows = []
    for c in range(synth.num_classes):
        row = pixels[labels == c][:max_per_class]
        pad = max_per_class - row.shape[0]
        if pad > 0:  # keep rows aligned when a class has fewer images
            row = torch.cat([row, torch.ones(pad, *row.shape[1:])])
        rows.append(row)
    grid = torch.cat(rows)
    scale = max(1, -(-min_cell // grid.shape[-1]))
    if scale > 1:
        grid = F.interpolate(grid, scale_factor=scale, mode="nearest")
    atomic_write(path, lambda tmp: save_image(grid, tmp, nrow=max_per_class, padding=2, pad_value=1.0, format="png"))
    return path
