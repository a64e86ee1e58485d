"""Expert trajectories for trajectory matching (MTT/AST, METHODS.md §4-5).

Each expert is a fresh network trained on the real training set with non-siamese DSA; its flat
parameter vector is saved at init and after every epoch. One HDF5 file per expert
(``expert_00007.h5``: a (E+1, P) float32 ``params`` array, a checksum per row so a slice can be
verified without reading the whole file, and its config, seed and test accuracy as attributes).
A buffer folder also holds ``buffer.h5`` (the shared config and, with ``--zca``, the whitening).

Files are written atomically and a run skips experts already on disk, so an interrupted
``condense experts`` resumes. Under ``torchrun`` rank r trains experts r, r+K, r+2K, ... (gloo).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from .augment import DSA, DSAConfig
from .data import ImageDataset, load_dataset
from .errors import CondenseError
from .store import atomic_write

EXPERT_FORMAT = 1
MANIFEST = "buffer.h5"

# Training styles as data. MTT: plain SGD. AST (base lr 0.003 per METHODS.md §5): momentum, weight decay, ×0.6 once after mid-training
# (optimiser recreated, as in the official buffer.py), loss scaled 0.5..0.95 over the first 10 epochs,
# input-gradient penalty with weight 2.
STYLES: dict[str, dict[str, Any]] = {
    "mtt": {"lr": 0.01, "momentum": 0.0, "weight_decay": 0.0, "lr_decay": 1.0, "loss_ramp": False,
            "grad_penalty": 0.0},
    "ast": {"lr": 0.003, "momentum": 0.9, "weight_decay": 1e-3, "lr_decay": 0.6, "loss_ramp": True,
            "grad_penalty": 2.0},
}
LOSS_RAMP = tuple(0.5 + 0.05 * i for i in range(10))  # AST "clipping loss": epoch e < 10 scales CE by this


@dataclass
class ExpertConfig:
    dataset: str = "mnist5k"
    data_root: Optional[str] = None
    max_per_class: Optional[int] = None
    model: str = "ConvNet"
    model_args: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    style: str = "mtt"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    loss_ramp: bool = False
    grad_penalty: float = 0.0
    batch_size: int = 256
    dsa: bool = True
    zca: bool = False
    seed: int = 0

    @classmethod
    def for_style(cls, style: str, **overrides: Any) -> "ExpertConfig":
        if style not in STYLES:
            raise CondenseError(f"Unknown expert style '{style}'; choose one of: {', '.join(STYLES)}.")
        values = {**STYLES[style], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(style=style, **values)

    def key(self) -> str:
        """Everything that makes two experts comparable (one buffer = one key)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def expert_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index * 104_729 + 77) % (2**62)


# ---- flat parameter vectors -------------------------------------------------------------------
@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a model's parameters, in ``named_parameters`` order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, model: torch.nn.Module) -> "ParamLayout":
        named = list(model.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named))

    @property
    def numels(self) -> list[int]:
        return [int(np.prod(s)) if s else 1 for s in self.shapes]

    @property
    def size(self) -> int:
        return sum(self.numels)

    def flatten(self, model: torch.nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(self.numels), self.shapes)}

    def to_json(self) -> str:
        return json.dumps({"names": list(self.names), "shapes": [list(s) for s in self.shapes]})

    @classmethod
    def from_json(cls, text: str) -> "ParamLayout":
        d = json.loads(text)
        return cls(tuple(d["names"]), tuple(tuple(s) for s in d["shapes"]))


# ---- training one expert ----------------------------------------------------------------------
def _input_gradient_penalty(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """AST: mean over pixels of (‖∂Σlogits/∂x‖_channels − 1)², on the un-augmented batch."""
    x = x.detach().requires_grad_(True)
    g = torch.autograd.grad(model(x).sum(), x, create_graph=True)[0]
    return ((g.norm(dim=1) - 1) ** 2).mean()


def train_expert(cfg: ExpertConfig, data: ImageDataset, index: int, device: torch.device,
                 on_epoch: Optional[Callable[[int, float], None]] = None) -> tuple[torch.Tensor, ParamLayout, float]:
    """Train expert ``index``; returns (snapshots (epochs+1, P) on CPU, layout, final test accuracy)."""
    from .evaluator import test_accuracy
    from .models import create_model

    seed = expert_seed(cfg.seed, index)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    c, h, w = data.image_shape
    model = create_model(cfg.model, c, data.num_classes, (h, w), **cfg.model_args).to(device)
    layout = ParamLayout.of(model)
    dsa = DSA(DSAConfig(strategy=data.dsa_strategy)) if cfg.dsa else None
    lr = cfg.lr

    def optimizer():
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    opt = optimizer()
    snaps = [layout.flatten(model).cpu()]
    n = len(data.train_x)
    model.train()
    for epoch in range(cfg.epochs):
        scale = LOSS_RAMP[epoch] if cfg.loss_ramp and epoch < len(LOSS_RAMP) else 1.0
        total = 0.0
        order = torch.randperm(n, generator=gen).to(data.train_x.device)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            x, y = data.train_x[idx], data.train_y[idx]
            xa = dsa(x, gen) if dsa is not None else x
            loss = scale * F.cross_entropy(model(xa), y)
            if cfg.grad_penalty > 0:
                loss = loss + cfg.grad_penalty * _input_gradient_penalty(model, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        snaps.append(layout.flatten(model).cpu())
        if on_epoch:
            on_epoch(epoch + 1, total / n)
        if cfg.lr_decay != 1.0 and epoch == cfg.epochs // 2 + 1:  # official schedule, fresh optimiser
            lr *= cfg.lr_decay
            opt = optimizer()
    acc = test_accuracy(model, data.test_x, data.test_y)
    return torch.stack(snaps), layout, acc


# ---- files -------------------------------------------------------------------------------------
def expert_path(folder: str, index: int) -> str:
    return os.path.join(folder, f"expert_{index:05d}.h5")


def _row_digest(row: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(row, dtype=np.float32).tobytes()).hexdigest()[:16]


def write_expert(path: str, params: torch.Tensor, layout: ParamLayout, cfg: ExpertConfig, index: int,
                 test_accuracy: float, zca_digest: str = "") -> None:
    arr = params.detach().cpu().numpy().astype(np.float32)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("params", data=arr)
            f.attrs["format_version"] = EXPERT_FORMAT
            f.attrs["kind"] = "condense-expert"
            f.attrs["config"] = cfg.key()
            f.attrs["index"] = int(index)
            f.attrs["seed"] = int(expert_seed(cfg.seed, index))
            f.attrs["test_accuracy"] = float(test_accuracy)
            f.attrs["layout"] = layout.to_json()
            f.attrs["row_checksums"] = json.dumps([_row_digest(r) for r in arr])
            f.attrs["zca_digest"] = zca_digest

    atomic_write(path, write)


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


def _write_manifest(folder: str, cfg: ExpertConfig, zca: Optional[tuple[torch.Tensor, torch.Tensor]]) -> str:
    digest = _zca_digest(zca)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["kind"] = "condense-buffer"
            f.attrs["format_version"] = EXPERT_FORMAT
            f.attrs["config"] = cfg.key()
            f.attrs["zca_digest"] = digest
            if zca is not None:
                f.create_dataset("zca_matrix", data=zca[0].numpy())
                f.create_dataset("zca_mean", data=zca[1].numpy())

    atomic_write(os.path.join(folder, MANIFEST), write)
    return digest


def _zca_digest(zca: Optional[tuple[torch.Tensor, torch.Tensor]]) -> str:
    if zca is None:
        return ""
    h = hashlib.sha256()
    for t in zca:
        h.update(t.numpy().astype(np.float32).tobytes())
    return h.hexdigest()[:16]


# ---- a buffer folder ----------------------------------------------------------------------------
class ExpertBuffer:
    """A validated folder of experts sharing one config (and one ZCA transform, when used)."""

    def __init__(self, folder: str):
        if not folder or not os.path.isdir(folder):
            raise CondenseError(f"Expert directory {folder or '(none given)'} does not exist; "
                                "train experts with `condense experts --out DIR` first.")
        manifest = os.path.join(folder, MANIFEST)
        files = sorted(p for p in os.listdir(folder) if p.startswith("expert_") and p.endswith(".h5"))
        if not files or not os.path.isfile(manifest):
            raise CondenseError(f"Expert directory {folder} holds no experts; "
                                "train them with `condense experts --out DIR` first.")
        try:
            with h5py.File(manifest, "r") as f:
                self.config = ExpertConfig(**json.loads(f.attrs["config"]))
                self.zca_digest = str(f.attrs["zca_digest"])
                self.zca = ((torch.from_numpy(f["zca_matrix"][()]), torch.from_numpy(f["zca_mean"][()]))
                            if "zca_matrix" in f else None)
        except (OSError, KeyError, ValueError, TypeError):
            raise CondenseError(f"{manifest} is corrupt or truncated; rerun `condense experts` on {folder}.") from None
        if _zca_digest(self.zca) != self.zca_digest:
            raise CondenseError(f"{manifest} fails its ZCA checksum; rerun `condense experts` on {folder}.")
        self.folder = folder
        self.headers = [read_header(os.path.join(folder, p)) for p in files]
        for h in self.headers:
            if h.config.key() != self.config.key() or h.zca_digest != self.zca_digest:
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


# ---- training a buffer (resumable, shardable) ---------------------------------------------------
def prepare_data(cfg: ExpertConfig, device: torch.device) -> tuple[ImageDataset, Optional[tuple]]:
    data = load_dataset(cfg.dataset, root=cfg.data_root, max_per_class=cfg.max_per_class, device=device)
    if not cfg.zca:
        return data, None
    from .zca import fit_zca, zca_dataset

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


def train_buffer(cfg: ExpertConfig, folder: str, num_experts: int, device: torch.device, rank: int = 0,
                 world: int = 1, barrier: Callable[[], None] = lambda: None,
                 log: Callable[[str], None] = print) -> list[int]:
    """Train the experts of ``folder`` that are missing and belong to this rank; returns their indices."""
    if num_experts < 1 or cfg.epochs < 1:
        raise CondenseError("Experts and epochs must be positive numbers.")
    os.makedirs(folder, exist_ok=True)
    previous = _existing_config(folder)
    if previous is not None and previous != cfg.key():
        raise CondenseError(f"{folder} already holds experts trained with other settings; "
                            "use another --out folder or the same options.")
    data, zca = prepare_data(cfg, device)
    if rank == 0:  # ZCA is deterministic; one rank writes the manifest, the others wait for it
        digest = _write_manifest(folder, cfg, zca)
    barrier()
    digest = _zca_digest(zca)
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
        write_expert(path, params, layout, cfg, index, acc, digest)
        done.append(index)
        log(f"rank {rank}: expert {index} done in {time.perf_counter() - t0:.1f}s, test accuracy {100 * acc:.2f}%")
    barrier()
    return done


def run_from_env(cfg: ExpertConfig, folder: str, num_experts: int, device: torch.device,
                 log: Callable[[str], None] = print) -> list[int]:
    """Single process, or one rank of a ``torchrun`` job (RANK/WORLD_SIZE set): gloo for the barriers."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return train_buffer(cfg, folder, num_experts, device, log=log)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo")
    # Share the cores between ranks instead of oversubscribing them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    try:
        return train_buffer(cfg, folder, num_experts, device, rank=rank, world=world, barrier=dist.barrier,
                            log=lambda m: log(m))
    finally:
        dist.destroy_process_group()
