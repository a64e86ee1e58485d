"""The synthesizer interface, its registry, and the shared run context.

Every method is a class with the same small surface (DESIGN.md): it is built from a typed
config dataclass, ``init`` makes the starting SynthSet, ``step`` runs one outer iteration and
returns losses, and ``state_dict``/``load_state_dict`` carry what resume needs. The driver owns
the loop, files, progress and guards; methods never write files.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

import torch

from ..data import ImageDataset, RealSampler
from ..errors import CondenseError
from ..store import SynthSet


@dataclass
class RunConfig:
    """What every method shares: which data, how big a set, which network, which seed."""

    dataset: str = "mnist5k"
    data_root: Optional[str] = None
    ipc: int = 10
    model: str = "ConvNet"
    model_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    max_per_class: Optional[int] = None


@dataclass
class RunContext:
    """Resolved run objects handed to a method: data on the device, sampler, device."""

    run: RunConfig
    dataset: ImageDataset
    sampler: RealSampler
    device: torch.device

    def new_model(self, name: Optional[str] = None, **overrides) -> torch.nn.Module:
        from ..models import create_model

        args = {**self.run.model_args, **overrides}
        c, h, w = self.dataset.image_shape
        return create_model(name or self.run.model, c, self.dataset.num_classes, (h, w), **args).to(self.device)


@dataclass
class MethodConfig:
    """Fields every method config has; subclasses add their own hyper-parameters."""

    iterations: int = 0


def iteration_seed(seed: int, iteration: int) -> int:
    """Independent, reproducible seed per iteration, so a resumed run replays the same draws."""
    return (seed * 1_000_003 + iteration * 7_919 + 12_345) % (2**62)


def make_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Synthesizer:
    """Base class: subclasses set ``name``, ``config_cls`` and implement ``init``/``step``."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type] = object
    iterative: ClassVar[bool] = True  # False for coresets: init is the whole job
    supports_flip: ClassVar[bool] = False
    shards_classes: ClassVar[bool] = False  # under torchrun each rank may optimise its own classes
    supports_min_distance: ClassVar[bool] = False  # the step honours the min-distance defence (defence.py)

    def __init__(self, cfg: Any, ctx: RunContext):
        self.cfg = cfg
        self.ctx = ctx
        self.synth: Optional[SynthSet] = None

    def init(self) -> SynthSet:
        raise NotImplementedError

    def step(self, it: int) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def sync(self) -> None:
        """Bring every rank's share of the set (and optimiser state) to all ranks; no-op by default."""

    # helpers shared by methods -------------------------------------------------------------
    def new_synthset(self, images: torch.Tensor, labels: torch.Tensor, **extra) -> SynthSet:
        ds, run = self.ctx.dataset, self.ctx.run
        return SynthSet(images=images, labels=labels, dataset=ds.name, num_classes=ds.num_classes,
                        class_names=list(ds.class_names), mean=tuple(ds.mean), std=tuple(ds.std),
                        method=self.name, config=resolved_config(self), seed=run.seed, **extra)


def resolved_config(method: Synthesizer) -> dict[str, Any]:
    return {"method": method.name, "run": dataclasses.asdict(method.ctx.run),
            "method_config": dataclasses.asdict(method.cfg)}


# ---- registry --------------------------------------------------------------------------------
_METHODS: dict[str, type[Synthesizer]] = {}


def register_method(cls: type[Synthesizer]) -> type[Synthesizer]:
    _METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    return sorted(_METHODS)


def methods_with(flag: str) -> list[str]:
    """Registered methods whose class sets the boolean ``flag`` (e.g. ``supports_min_distance``)."""
    return sorted(name for name, cls in _METHODS.items() if getattr(cls, flag))


def get_method(name: str) -> type[Synthesizer]:
    if name not in _METHODS:
        raise CondenseError(f"Unknown method '{name}'; choose one of: {', '.join(list_methods())}.")
    return _METHODS[name]


def build_config(method: str, dataset: str, ipc: int, overrides: dict[str, Any]) -> Any:
    """Method config = dataclass defaults <- preset table row for (dataset, ipc) <- user overrides."""
    from .presets import preset_for

    cls = get_method(method).config_cls
    values = {**preset_for(method, dataset, ipc), **{k: v for k, v in overrides.items() if v is not None}}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CondenseError(f"Method '{method}' has no option '{unknown[0]}'; its options are: "
                            f"{', '.join(sorted(known))}.")
    return cls(**values)


OnStep = Callable[[int, dict[str, float]], None]
