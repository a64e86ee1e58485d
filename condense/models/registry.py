"""Model registry and factory (timm style): a name maps to a builder plus preset keyword arguments.

Variants are data: the same builder is registered under several names with different presets,
e.g. ``register_model("ConvNetBN", norm="batch")(ConvNet)``.
"""
from __future__ import annotations

import inspect
import operator
from typing import Any, Callable

import torch.nn as nn

from ..errors import CondenseError

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]] = {}
_POSITIONAL = ("channels", "num_classes", "image_size")  # always supplied by create_model


def register_model(name: str, **preset: Any):
    """Decorator registering a class or factory under ``name`` with ``preset`` kwargs; stackable.

    The builder is called as ``builder(channels=, num_classes=, image_size=, **preset, **overrides)``.
    Registering an existing name replaces it (last registration wins, as on module reload).
    """

    def wrap(builder: Callable[..., nn.Module]):
        bad = sorted(set(preset) - _options(builder)) if not _takes_var_kwargs(builder) else []
        if bad:
            raise CondenseError(f"Preset for model '{name}' sets '{bad[0]}', which its builder does not accept.")
        _REGISTRY[name] = (builder, dict(preset))
        return builder

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, channels: int, num_classes: int, image_size: tuple[int, int],
                 **overrides: Any) -> nn.Module:
    """Build model ``name`` for ``channels``×H×W inputs and ``num_classes`` outputs.

    ``overrides`` (e.g. ``width=32``) take precedence over the registered preset.
    """
    if name not in _REGISTRY:
        raise CondenseError(f"Unknown model '{name}'; choose one of: {', '.join(list_models())}.")
    builder, preset = _REGISTRY[name]
    if not _takes_var_kwargs(builder):
        options = _options(builder)
        bad = sorted(set(overrides) - options)
        if bad:
            listed = ", ".join(sorted(options)) or "none"
            raise CondenseError(f"Model '{name}' has no option '{bad[0]}'; its options are: {listed}.")
    channels, num_classes, image_size = _check_shape_args(channels, num_classes, image_size)
    return builder(channels=channels, num_classes=num_classes, image_size=image_size, **{**preset, **overrides})


def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    """Every BatchNorm submodule: running statistics that are not parameters (no vmap over stacked copies,
    no flat-parameter unroll, statistics that gradient matching fixes from real data)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def has_batchnorm(model: nn.Module) -> bool:
    return bool(batchnorm_layers(model))


def _options(builder: Callable) -> set[str]:
    params = inspect.signature(builder).parameters
    return {n for n, p in params.items()
            if n not in _POSITIONAL and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _takes_var_kwargs(builder: Callable) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(builder).parameters.values())


def _pos_int(v: Any) -> int | None:
    """``v`` as a plain int if it is a positive integer (numpy / 0-d tensor ints too), else None."""
    if isinstance(v, bool):
        return None
    try:
        i = operator.index(v)
    except TypeError:
        return None
    return i if i > 0 else None


def _check_shape_args(channels: Any, num_classes: Any, image_size: Any) -> tuple[int, int, tuple[int, int]]:
    c, k = _pos_int(channels), _pos_int(num_classes)
    if c is None:
        raise CondenseError(f"Model channels must be a positive integer, got {channels!r}.")
    if k is None:
        raise CondenseError(f"Model num_classes must be a positive integer, got {num_classes!r}.")
    try:
        size = tuple(_pos_int(s) for s in image_size)
    except TypeError:
        size = ()
    if len(size) != 2 or None in size:
        raise CondenseError(f"Model image_size must be a pair of positive integers (H, W), got {image_size!r}.")
    return c, k, size
