"""A buffer: a folder of experts sharing one config (and one ZCA transform), trained resumably.

A run trains only the experts missing from the folder, so an interrupted ``condense experts``
resumes; under torchrun rank r trains experts r, r+K, r+2K, ... and rank 0 writes the manifest.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Optional

import h5py
import torch

from .. import dist
from ..data import ImageDataset, fit_zca, load_dataset, zca_dataset
from ..errors import CondenseError
from ..fields import AT_LEAST_1, check_value
from ..io import check_output
from ..models import ParamLayout, create_model
from .config import ExpertConfig
from .files import MANIFEST, expert_path, read_header, read_manifest, read_rows, write_expert, write_manifest, zca_digest
from .training import train_expert


class ExpertBuffer:
    """A validated folder of experts sharing one config (and one ZCA transform, when used)."""

    def __init__(self, folder: str):
        if not folder or not os.path.isdir(folder):
            raise CondenseError(f"Expert directory {folder or '(none given)'} does not exist; "
                                "train experts with `condense experts --out DIR` first.")
        files = sorted(p for p in os.listdir(folder) if p.startswith("expert_") and p.endswith(".h5"))
        if not files or not os.path.isfile(os.path.join(folder, MANIFEST)):
            raise CondenseError(f"Expert directory {folder} holds no experts; "
                                "train them with `condense experts --out DIR` first.")
        self.config, self.zca = read_manifest(folder)
        self.folder = folder
        self.headers = [read_header(os.path.join(folder, p)) for p in files]
        for h in self.headers:
            if h.config.key() != self.config.key() or h.zca_digest != zca_digest(self.zca):
                raise CondenseError(f"Expert file {h.path} was trained with different settings than the rest of "
                                    f"{folder}; keep one configuration per folder.")

    def __len__(self) -> int:
        return len(self.headers)

    @property
    def epochs(self) -> int:
        return self.config.epochs

    @property
    def layout(self) -> ParamLayout:
        return self.headers[0].layout

    def rows(self, expert: int, start: int, stop: int) -> torch.Tensor:
        return read_rows(self.headers[expert], start, stop)


def prepare_data(cfg: ExpertConfig, device: torch.device) -> tuple[ImageDataset, Optional[tuple]]:
    data = load_dataset(cfg.dataset, root=cfg.data_root, max_per_class=cfg.max_per_class, device=device)
    if not cfg.zca:
        return data, None
    matrix, mean = fit_zca(data.denormalize(data.train_x))
    return zca_dataset(data, matrix.to(device), mean.to(device)), (matrix, mean)


def _existing_config(folder: str) -> Optional[str]:
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs["config"])
    except (OSError, KeyError):
        return None  # a broken manifest is rewritten


def train_buffer(cfg: ExpertConfig, folder: str, num_experts: int, device: torch.device,
                 log: Callable[[str], None] = print) -> list[int]:
    """Train the experts of ``folder`` that are missing and belong to this rank; returns their indices.

    Joins the torchrun process group when launched by torchrun (gloo barriers on CPU). A folder whose
    manifest names other settings but that holds no expert yet (a run that failed early) is taken over.
    """
    check_value("The number of experts", num_experts, int, AT_LEAST_1)
    check_output(folder, folder=True)
    previous = _existing_config(folder)
    trained = os.path.isdir(folder) and any(p.startswith("expert_") and p.endswith(".h5") for p in os.listdir(folder))
    if previous is not None and previous != cfg.key() and trained:
        raise CondenseError(f"{folder} already holds experts trained with other settings; "
                            "use another --out folder or the same options.")
    with dist.session():
        rank, world = dist.rank(), dist.world()
        data, zca = prepare_data(cfg, device)
        with torch.device("meta"):  # fail now, before the manifest, on a model the data cannot feed
            c, h, w = data.image_shape
            create_model(cfg.model, c, data.num_classes, (h, w), **cfg.model_args)
        if rank == 0:  # ZCA is deterministic; one rank writes the manifest, the others wait for it
            write_manifest(folder, cfg, zca)
        dist.barrier()
        done = []
        for index in range(rank, num_experts, world):
            path = expert_path(folder, index)
            if os.path.isfile(path):
                try:
                    read_header(path)
                    continue  # already trained (resume)
                except CondenseError:
                    log(f"rank {rank}: expert {index} is unreadable; retraining it")
            t0 = time.perf_counter()
            params, layout, acc = train_expert(cfg, data, index, device)
            write_expert(path, params, layout, cfg, index, acc, zca_digest(zca))
            done.append(index)
            log(f"rank {rank}: expert {index} done in {time.perf_counter() - t0:.1f}s, test accuracy {100 * acc:.2f}%")
        dist.barrier()
    return done
