"""The audit interface: a registry of checks, the context they share, and the result they return.

A check is a function ``run(ctx, config) -> CheckResult`` registered under a name together with
its typed config dataclass; importing ``condense.audit`` imports every check module, which fills
the registry (as timm fills its model registry). Checks write their PNG/CSV files into ``ctx.out_dir`` (a staging folder:
the runner moves it into place only when every check succeeded) and return tables as Markdown.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..data import ImageDataset
from ..errors import CondenseError
from ..fields import AT_LEAST_1, NON_NEGATIVE, POSITIVE, UNIT, Range, check_fields
from ..seeding import generator, seed_for
from ..store import SynthSet


@dataclass
class AuditContext:
    synth: SynthSet              # the audited set (images in the normalised space of ``data``)
    data: ImageDataset           # the set's own real dataset: train split = the private data
    device: torch.device
    out_dir: str                 # staging folder for this check's files
    seed: int = 0
    set_path: str = ""
    log: Callable[[str], None] = lambda message: None

    def path(self, name: str) -> str:
        return os.path.join(self.out_dir, name)

    def seed_for(self, draw: int) -> int:
        """The seed of one of this audit's draws (stream "audit"; ``draw`` names it, e.g. 17 the canaries)."""
        return seed_for("audit", self.seed, draw)

    def generator(self, draw: int = 0) -> torch.Generator:
        return generator("audit", self.seed, draw)


@dataclass
class CheckResult:
    name: str
    verdict: str                                     # one line for the terminal summary
    markdown: str                                    # the check's section of index.md (tables, settings)
    figures: list[tuple[str, str]] = field(default_factory=list)   # (caption, file name in out_dir)
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)          # JSON-able numbers for audit.json
    flagged: bool = False                            # True when the verdict is a warning


@dataclass(frozen=True)
class CheckSpec:
    name: str
    run: Callable[[AuditContext, Any], CheckResult]
    config_cls: type
    help: str


CHECKS: dict[str, CheckSpec] = {}


def register_check(name: str, config_cls: type, help: str):
    """Decorator: ``@register_check("memorization", MemorizationConfig, "...")`` on ``run(ctx, cfg)``."""
    def wrap(fn):
        CHECKS[name] = CheckSpec(name, fn, config_cls, help)
        return fn
    return wrap


def get_check(name: str) -> CheckSpec:
    if name not in CHECKS:
        raise CondenseError(f"Unknown audit check '{name}'; choose from: {', '.join(sorted(CHECKS))}.")
    return CHECKS[name]


# The range of every check option that has one, by field name (types come from the config dataclasses);
# rules that tie options together stay in each config's validate().
RANGES = {
    **dict.fromkeys(("feature_batch", "worst_pairs", "population", "epochs", "full_epochs", "iterations",
                     "target_width", "target_depth", "target_steps", "attack_iterations", "ssim_shortlist",
                     "grid_pairs"), AT_LEAST_1),
    **dict.fromkeys(("ssim_window", "feature_epochs", "real_size", "target_lr", "attack_lr"), NON_NEGATIVE),
    **dict.fromkeys(("near_copy_ratio", "near_copy_ssim", "review_ssim", "rmia_a", "ssim_low", "ssim_high"), UNIT),
    **dict.fromkeys(("feature_lr", "rmia_gamma", "candidates_factor"), POSITIVE),
    "k": Range(2),  # shadows and canaries (also >= 2) are refused by MIAConfig.validate, naming the CLI flags
    "near_copy_percentile": Range(0, 100),
}


def build_config(spec: CheckSpec, options: dict[str, Any]) -> Any:
    """The check's config from the options that name its fields (others belong to other checks), each
    checked against its field's type and ``RANGES`` first."""
    names = {f.name for f in dataclasses.fields(spec.config_cls)}
    check_fields(spec.config_cls, options, RANGES, f"Audit check '{spec.name}'")
    cfg = spec.config_cls(**{k: v for k, v in options.items() if k in names})
    validate = getattr(cfg, "validate", None)
    if validate:
        validate()
    return cfg


def unknown_options(specs: list[CheckSpec], options: dict[str, Any]) -> list[str]:
    known = {f.name for s in specs for f in dataclasses.fields(s.config_cls)}
    return sorted(k for k in options if k not in known)

