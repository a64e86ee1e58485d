"""The expert file format: one HDF5 file per expert, plus the buffer's manifest.

``expert_00007.h5`` holds a (E+1, P) float32 ``params`` array (the flat parameters at init and after
every epoch), a checksum per row so a slice can be verified without reading the whole file, and
its config, seed, test accuracy and parameter layout as attributes. ``buffer.h5`` holds the config
every expert of the folder shares and, with ``--zca``, the whitening transform. Files are written
atomically; every read problem is one CondenseError sentence.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Optional

import h5py
import numpy as np
import torch

from ..errors import CondenseError
from ..io import unreadable, write_hdf5
from ..models import ParamLayout
from ..seeding import seed_for
from .config import ExpertConfig

EXPERT_FORMAT = 1
MANIFEST = "buffer.h5"


def expert_path(folder: str, index: int) -> str:
    return os.path.join(folder, f"expert_{index:05d}.h5")


def _row_digest(row: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(row, dtype=np.float32).tobytes()).hexdigest()[:16]


def write_expert(path: str, params: torch.Tensor, layout: ParamLayout, cfg: ExpertConfig, index: int,
                 test_accuracy: float, zca_digest: str = "") -> None:
    arr = params.detach().cpu().numpy().astype(np.float32)

    def fill(f: h5py.File) -> None:
        f.create_dataset("params", data=arr)
        f.attrs["format_version"] = EXPERT_FORMAT
        f.attrs["kind"] = "condense-expert"
        f.attrs["config"] = cfg.key()
        f.attrs["index"] = int(index)
        f.attrs["seed"] = seed_for("expert", cfg.seed, index)
        f.attrs["test_accuracy"] = float(test_accuracy)
        f.attrs["layout"] = layout.to_json()
        f.attrs["row_checksums"] = json.dumps([_row_digest(r) for r in arr])
        f.attrs["zca_digest"] = zca_digest

    write_hdf5(path, fill)


@dataclass
class ExpertHeader:
    path: str
    config: ExpertConfig
    index: int
    seed: int
    test_accuracy: float
    layout: ParamLayout
    snapshots: int
    zca_digest: str
    row_checksums: list[str]


def read_header(path: str) -> ExpertHeader:
    """Open and check an expert file's structure; any problem is one CondenseError sentence."""
    if not os.path.isfile(path):
        raise CondenseError(f"Expert file {path} does not exist.")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("kind") != "condense-expert" or "params" not in f:
                raise CondenseError(f"{path} is not a condense expert file.")
            if int(f.attrs["format_version"]) != EXPERT_FORMAT:
                raise CondenseError(f"{path} has expert format {int(f.attrs['format_version'])}; "
                                    f"this condense reads {EXPERT_FORMAT}.")
            shape = f["params"].shape
            header = ExpertHeader(path=path, config=ExpertConfig(**json.loads(f.attrs["config"])),
                                  index=int(f.attrs["index"]), seed=int(f.attrs["seed"]),
                                  test_accuracy=float(f.attrs["test_accuracy"]),
                                  layout=ParamLayout.from_json(f.attrs["layout"]), snapshots=int(shape[0]),
                                  zca_digest=str(f.attrs["zca_digest"]),
                                  row_checksums=json.loads(f.attrs["row_checksums"]))
    except CondenseError:
        raise
    except PermissionError as err:
        raise unreadable(path, err, "Expert file") from None
    except (OSError, KeyError, ValueError, TypeError):
        raise CondenseError(f"Expert file {path} is corrupt or truncated; delete it and rerun "
                            "`condense experts` to retrain it.") from None
    if len(shape) != 2 or shape[1] != header.layout.size or len(header.row_checksums) != shape[0] \
            or shape[0] != header.config.epochs + 1:
        raise CondenseError(f"Expert file {path} has params of shape {tuple(shape)}, inconsistent with its "
                            "layout and epochs; delete it and retrain.")
    return header


def read_rows(header: ExpertHeader, start: int, stop: int) -> torch.Tensor:
    """Snapshots ``start..stop-1`` as a float32 tensor, each row checked against its checksum."""
    path = header.path
    try:
        with h5py.File(path, "r") as f:
            rows = f["params"][start:stop]
    except (OSError, KeyError, ValueError):
        raise CondenseError(f"Expert file {path} is corrupt or truncated; delete it and retrain.") from None
    for i, row in enumerate(rows):
        if _row_digest(row) != header.row_checksums[start + i]:
            raise CondenseError(f"Expert file {path} fails its checksum at epoch {start + i}; "
                                "delete it and retrain.")
    return torch.from_numpy(np.array(rows, dtype=np.float32))


def load_expert(path: str) -> tuple[ExpertHeader, torch.Tensor]:
    """Header and all snapshots (E+1, P) of one expert, validated."""
    header = read_header(path)
    return header, read_rows(header, 0, header.snapshots)


def write_manifest(folder: str, cfg: ExpertConfig, zca: Optional[tuple[torch.Tensor, torch.Tensor]]) -> None:
    def fill(f: h5py.File) -> None:
        f.attrs["kind"] = "condense-buffer"
        f.attrs["format_version"] = EXPERT_FORMAT
        f.attrs["config"] = cfg.key()
        f.attrs["zca_digest"] = zca_digest(zca)
        if zca is not None:
            f.create_dataset("zca_matrix", data=zca[0].numpy())
            f.create_dataset("zca_mean", data=zca[1].numpy())

    write_hdf5(os.path.join(folder, MANIFEST), fill)


def read_manifest(folder: str) -> tuple[ExpertConfig, Optional[tuple[torch.Tensor, torch.Tensor]]]:
    """The buffer's shared config and ZCA transform, checked against its digest."""
    path = os.path.join(folder, MANIFEST)
    try:
        with h5py.File(path, "r") as f:
            config = ExpertConfig(**json.loads(f.attrs["config"]))
            digest = str(f.attrs["zca_digest"])
            zca = (torch.from_numpy(f["zca_matrix"][()]), torch.from_numpy(f["zca_mean"][()])) if "zca_matrix" in f else None
    except (OSError, KeyError, ValueError, TypeError):
        raise CondenseError(f"{path} is corrupt or truncated; rerun `condense experts` on {folder}.") from None
    if zca_digest(zca) != digest:
        raise CondenseError(f"{path} fails its ZCA checksum; rerun `condense experts` on {folder}.")
    return config, zca


def zca_digest(zca: Optional[tuple[torch.Tensor, torch.Tensor]]) -> str:
    if zca is None:
        return ""
    h = hashlib.sha256()
    for t in zca:
        h.update(t.numpy().astype(np.float32).tobytes())
    return h.hexdigest()[:16]


