"""Evaluation protocols as data: one JSON file per named recipe in ``eval/protocols/``.

A protocol is everything that decides a score besides the set and the seeds: epochs, optimiser,
lr schedule, batch, augmentation, and which labels train the student (the set's hard labels, its
stored soft labels, or a teacher's relabelling of every batch). Results record the full content
and its hash, so two numbers are comparable exactly when their hashes match.

Lookup order for a name: ``eval/protocols/NAME.json`` in a source checkout, then the copy shipped
inside the installed package (``condense/protocols/``, mapped from ``eval/protocols`` by setup.py).
A path ending in ``.json`` loads that file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import CondenseError
from ..fields import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, SEED, check_fields
from ..text import plural
from ..train import OPTIMIZERS, SCHEDULES, TARGETS, TrainRecipe

AUGMENTS = ("dsa", "none")
# "relabel": the teachers given by --teacher, or named by the set, relabel every batch (fit's "teacher" targets)
LABELS = TARGETS + ("relabel",)


@dataclass(frozen=True)
class TeacherSpec:
    """The network that relabels batches under ``labels = "teacher"``; trained on the full real split."""

    model: str = "ConvNet"
    model_args: dict = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.01
    augment: str = "dsa"
    seed: int = 0


@dataclass(frozen=True)
class Protocol:
    name: str = "standard"
    description: str = ""
    epochs: int = 300
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9          # SGD momentum (AdamW ignores it)
    weight_decay: float = 5e-4
    schedule: str = "step"         # step: lr x decay_factor once after epochs // 2 (official); cosine; constant
    decay_factor: float = 0.1
    augment: str = "dsa"           # non-siamese DSA on every training batch, or none
    use_learned_lr: bool = True    # use the set's learned `lr` (MTT) when present
    labels: str = "hard"           # hard | soft (stored, or a given teacher's static logits) | teacher (the cached
                                   # teacher relabels every batch) | relabel (the given or named teacher does)
    temperature: float = 1.0       # KD temperature for soft / teacher labels
    mixup: float = 0.0             # Beta(a, a) mixup of images and targets; 0 = off (soft / teacher only)
    teacher: Optional[TeacherSpec] = None
    runs: int = 5                  # default number of seeds
    checkpoints: int = 10          # selection-split evaluations spread over training (the curves); never the test split

    def recipe(self, lr: float) -> TrainRecipe:
        """The training recipe at learning rate ``lr`` (the protocol's, or a set's learned one)."""
        return TrainRecipe(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer, lr=lr,
                           momentum=self.momentum, weight_decay=self.weight_decay, schedule=self.schedule,
                           decay_factor=self.decay_factor, temperature=self.temperature,
                           labels="teacher" if self.labels == "relabel" else self.labels,
                           mixup=self.mixup, checkpoints=self.checkpoints)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Hash of everything that changes a score (name and description excluded: renaming is free)."""
        content = {k: v for k, v in self.to_dict().items() if k not in ("name", "description")}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


# Ranges by field name, for protocols and their teachers (types come from the dataclasses).
RANGES = {**dict.fromkeys(("epochs", "batch_size", "runs", "checkpoints"), AT_LEAST_1),
          **dict.fromkeys(("lr", "decay_factor", "temperature"), POSITIVE),
          **dict.fromkeys(("weight_decay", "mixup"), NON_NEGATIVE), "momentum": FRACTION, "seed": SEED}
_FIELDS = {f.name for f in dataclasses.fields(Protocol)}
_TEACHER_FIELDS = {f.name for f in dataclasses.fields(TeacherSpec)}


def protocol_dirs() -> list[Path]:
    package = Path(__file__).resolve().parent.parent
    return [package.parent / "eval" / "protocols", package / "protocols"]


def list_protocols() -> list[str]:
    names = set()
    for d in protocol_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.json"))
    return sorted(names)


def _find(name: str) -> Path:
    if name.endswith(".json"):
        if not os.path.isfile(name):
            raise CondenseError(f"Protocol file {name} does not exist.")
        return Path(name)
    for d in protocol_dirs():
        if (d / f"{name}.json").is_file():
            return d / f"{name}.json"
    choices = ", ".join(list_protocols()) or "none found (is eval/protocols/ shipped?)"
    raise CondenseError(f"Unknown protocol '{name}'; choose one of: {choices}, or give a .json file.")


def from_dict(raw: dict[str, Any], where: str = "protocol") -> Protocol:
    """Build and validate a Protocol; any problem is one CondenseError sentence."""
    if not isinstance(raw, dict):
        raise CondenseError(f"{where} must be a JSON object.")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise CondenseError(f"{where} has unknown field '{unknown[0]}'; fields are: {', '.join(sorted(_FIELDS))}.")
    raw = dict(raw)
    if raw.get("teacher") is not None and not isinstance(raw["teacher"], TeacherSpec):
        t = raw["teacher"]
        bad = sorted(set(t) - _TEACHER_FIELDS) if isinstance(t, dict) else ["(not an object)"]
        if bad:
            raise CondenseError(f"{where} has a bad teacher field '{bad[0]}'; fields are: "
                                f"{', '.join(sorted(_TEACHER_FIELDS))}.")
        check_fields(TeacherSpec, t, RANGES, f"{where}, teacher")
        raw["teacher"] = TeacherSpec(**t)
    try:
        proto = Protocol(**raw)
    except TypeError as err:
        raise CondenseError(f"{where} is invalid: {err}.") from None
    check(proto, where)
    return proto


def check(p: Protocol, where: str = "protocol") -> None:
    check_fields(Protocol, {f: getattr(p, f) for f in _FIELDS - {"teacher"}}, RANGES, where)
    for value, allowed, what in ((p.optimizer, OPTIMIZERS, "optimizer"), (p.schedule, SCHEDULES, "schedule"),
                                 (p.augment, AUGMENTS, "augment"), (p.labels, LABELS, "labels")):
        if value not in allowed:
            raise CondenseError(f"{where} has {what} '{value}'; choose one of: {', '.join(allowed)}.")
    if p.labels == "teacher" and p.teacher is None:
        raise CondenseError(f"{where} relabels with a teacher but has no 'teacher' entry.")


def load_protocol(path: str | Path) -> Protocol:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:  # ValueError: JSON or UTF-8 decoding
        raise CondenseError(f"Protocol file {path} is not readable JSON ({err.__class__.__name__}).") from None
    return from_dict(raw, where=f"Protocol file {path}")


def get_protocol(name: str, **overrides: Any) -> Protocol:
    """A named (or .json) protocol with ``overrides`` (None values ignored) applied and re-checked."""
    return derive(load_protocol(_find(name)), **overrides)


def describe(p: Protocol) -> str:
    """The recipe in words, generated from the settings (what an overridden protocol is described by)."""
    optimiser = f"SGD momentum {p.momentum:g}" if p.optimizer == "sgd" else "AdamW"
    schedule = {"step": f"lr x{p.decay_factor:g} once after epoch {p.epochs // 2}", "cosine": "cosine schedule",
                "constant": "constant lr"}[p.schedule]
    labels = {"hard": "hard labels", "soft": f"the set's soft labels (T = {p.temperature:g})",
              "teacher": f"a {p.teacher.model if p.teacher else ''} teacher relabelling every batch (T = {p.temperature:g})",
              "relabel": f"the given teacher relabelling every batch (T = {p.temperature:g})"}
    return (f"{optimiser}, wd {p.weight_decay:g}, lr {p.lr:g}{' or the set' + chr(39) + 's learned lr' if p.use_learned_lr else ''}"
            f", batch {p.batch_size}, {schedule}, {'non-siamese DSA' if p.augment == 'dsa' else 'no augmentation'}"
            f"{f', mixup {p.mixup:g}' if p.mixup else ''}, {labels[p.labels]}, {plural(p.epochs, 'epoch')}, {plural(p.runs, 'run')}.")


def derive(base: Protocol, **overrides: Any) -> Protocol:
    """``base`` with ``overrides`` (None values ignored): a changed recipe gets a derived name such as
    ``standard+epochs=2`` and a description generated from its settings, so it is never shown as ``base``."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    merged = from_dict({**base.to_dict(), **overrides, "teacher": overrides.get("teacher", base.teacher)},
                       where=f"Protocol '{base.name}'")
    changed = {k: getattr(merged, k) for k in overrides if getattr(merged, k) != getattr(base, k)}
    if not changed:
        return base
    name = base.name + "+" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in sorted(changed.items()) if k != "teacher")
    if "teacher" in changed:
        name += f"{',' if name[-1] != '+' else ''}teacher={merged.teacher.model}"
    return dataclasses.replace(merged, name=name, description=f"{base.name} changed: {describe(merged)}")
