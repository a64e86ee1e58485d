"""The synthesizer interface, its registry, the shared run context, and every capability check.

Every method is a class with the same small surface: it is built from a typed config dataclass,
``init`` makes the starting SynthSet, ``step`` runs one outer iteration and returns losses, and
``state_dict``/``load_state_dict`` carry what resume needs. The driver owns the loop, files,
progress and guards; methods never write files. What a method can do is declared on its class
(``supports_flip``, ``shards_classes``, the min-distance config mixin) and checked in one place,
``check_capabilities``, before any data is loaded.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

import torch

from ..data import ImageDataset, RealSampler
from ..errors import CondenseError
from ..fields import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, UNIT, Range, check_fields
from ..models import create_model
from ..store import SynthSet
from .defence import MinDistanceConfig
from .presets import named_preset, preset_for


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
        c, h, w = self.dataset.image_shape
        return create_model(name or self.run.model, c, self.dataset.num_classes, (h, w),
                            **{**self.run.model_args, **overrides}).to(self.device)


@dataclass
class MethodConfig:
    """Fields every method config has; subclasses add their own hyper-parameters."""

    iterations: int = 0


class Synthesizer:
    """Base class: subclasses set ``name``, ``config_cls`` and implement ``init``/``step``."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type] = object
    iterative: ClassVar[bool] = True        # False for coresets: init is the whole job
    supports_flip: ClassVar[bool] = False   # the FYI flip plug-in
    shards_classes: ClassVar[bool] = False  # under torchrun each rank may optimise its own classes
    scheduled: ClassVar[bool] = False       # the lr schedule spans `iterations`: a resume may not change them

    def __init__(self, cfg: Any, ctx: RunContext):
        self.cfg = cfg
        self.ctx = ctx
        self.synth: Optional[SynthSet] = None

    @classmethod
    def supports_min_distance(cls) -> bool:
        return issubclass(cls.config_cls, MinDistanceConfig)

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

    def finish(self) -> None:
        """Called once by the driver after the last iteration, before the set is saved (also when a resumed
        run had no iteration left): final touches such as labelling the set with a teacher; no-op by default."""

    def new_synthset(self, images: torch.Tensor, labels: torch.Tensor, **extra) -> SynthSet:
        ds, run = self.ctx.dataset, self.ctx.run
        return SynthSet(images=images, labels=labels, dataset=ds.name, num_classes=ds.num_classes,
                        class_names=list(ds.class_names), mean=tuple(ds.mean), std=tuple(ds.std),
                        method=self.name, config=resolved_config(self), seed=run.seed,
                        dataset_fingerprint=ds.fingerprint(), **extra)


def resolved_config(method: Synthesizer) -> dict[str, Any]:
    config = {"method": method.name, "run": dataclasses.asdict(method.ctx.run),
              "method_config": dataclasses.asdict(method.cfg)}
    if method.ctx.dataset.validation:  # the training images held out for selection
        config["validation"] = method.ctx.dataset.validation
    return config


# ---- registry --------------------------------------------------------------------------------
_METHODS: dict[str, type[Synthesizer]] = {}


def register_method(cls: type[Synthesizer]) -> type[Synthesizer]:
    _METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> type[Synthesizer]:
    if name not in _METHODS:
        raise CondenseError(f"Unknown method '{name}'; choose one of: {', '.join(list_methods())}.")
    return _METHODS[name]


def check_capabilities(cls: type[Synthesizer], options: dict[str, Any], world: int) -> None:
    """Refuse, in one sentence, a request the method cannot honour."""
    def able(test: Callable[[type[Synthesizer]], bool]) -> str:
        return ", ".join(m for m in list_methods() if test(_METHODS[m]))

    if options.get("flip") and not cls.supports_flip:
        raise CondenseError(f"--flip is not supported by method '{cls.name}'; it works with: "
                            f"{able(lambda m: m.supports_flip)}.")
    if options.get("min_distance") is not None and not cls.supports_min_distance():
        raise CondenseError(f"--min-distance is supported by {able(lambda m: m.supports_min_distance())}, "
                            f"not by '{cls.name}'.")
    if world > 1 and cls.iterative and not cls.shards_classes:  # one-shot selections just run on every rank
        raise CondenseError(f"Method '{cls.name}' cannot be sharded across torchrun ranks; run it in one process "
                            f"({able(lambda m: m.shards_classes)} shard classes).")


# Options a stored config may carry from an earlier version, at the value that meant "off".
RETIRED_OPTIONS = {"min_distance": 0.0, "min_distance_weight": 50.0}  # dc/dsa configs before the mixin


def drop_retired(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without retired options the method no longer has, when they hold their "off" value."""
    known = {f.name for f in dataclasses.fields(get_method(method).config_cls)}
    return {k: v for k, v in options.items() if k in known or RETIRED_OPTIONS.get(k, math.nan) != v}


# The range of every method option that has one, by field name (types come from the config dataclasses);
# iterations are checked by prepare(), as their floor depends on whether the method iterates.
RANGES = {
    **dict.fromkeys(("lr_img", "lr_net", "lr_lr", "lr_teacher", "pool_lr", "feature_lr", "power", "loss_scale"),
                    POSITIVE),
    **dict.fromkeys(("momentum", "student_momentum", "pool_momentum"), FRACTION),
    **dict.fromkeys(("batch_real", "batch_train", "bn_real", "outer_loop", "inner_loop", "factor", "syn_steps",
                     "expert_epochs", "max_start_epoch", "pool_initial", "pool_interval", "pool_steps", "pool_batch",
                     "feature_batch", "kmeans_iters"), AT_LEAST_1),
    **dict.fromkeys(("batch_syn", "pool", "pool_train_nets", "feature_epochs", "min_distance",
                     "min_distance_weight", "ce_weight", "task_balance", "pool_weight_decay"), NON_NEGATIVE),
    # the decoupled family (sre2l, rded, infer)
    **dict.fromkeys(("num_teachers", "mipc", "crops", "score_batch"), AT_LEAST_1),
    **dict.fromkeys(("r_bn", "first_bn_multiplier", "jitter"), NON_NEGATIVE),
    **dict.fromkeys(("beta1", "beta2"), FRACTION), "min_scale": Range(0, 1, open_low=True),
    # the kernel family (krr_st, kip, rkip)
    **dict.fromkeys(("lr_final", "ridge", "noise_std"), POSITIVE),
    **dict.fromkeys(("images", "weight_decay", "target_batch", "w_std", "b_std"), NON_NEGATIVE),
    **dict.fromkeys(("pool_age", "depth"), AT_LEAST_1),
    # gradient-embedding selection (graphcut, dq)
    **dict.fromkeys(("embed_batch", "num_bins"), AT_LEAST_1), **dict.fromkeys(("embed_epochs", "patch"), NON_NEGATIVE),
    "embed_lr": POSITIVE, "lam": NON_NEGATIVE, "epsilon": Range(0, 1, open_low=True, open_high=True),
    "ratio": UNIT, "mask_ratio": FRACTION,
}


def build_config(method: str, dataset: str, ipc: int, overrides: dict[str, Any], preset: Optional[str] = None) -> Any:
    """Method config = dataclass defaults <- preset table row for (dataset, ipc) <- named ``preset`` <- overrides.

    Every value is checked against its field's type and ``RANGES`` before the config is built."""
    cls = get_method(method).config_cls
    values = {**preset_for(method, dataset, ipc), **(named_preset(method, preset) if preset else {}),
              **{k: v for k, v in overrides.items() if v is not None}}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CondenseError(f"Method '{method}' has no option '{unknown[0]}'; its options are: "
                            f"{', '.join(sorted(known))}.")
    check_fields(cls, values, RANGES, f"Method '{method}'")
    return cls(**values)


OnStep = Callable[[int, dict[str, float]], None]
