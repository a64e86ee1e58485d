"""Typed evaluation results: one architecture's runs, one set's report, a grid of sets.

Accuracies are in percent. ``to_json``/``from_json`` keep the JSON layout of ``condense eval
--json`` (a single report, or ``{"protocol", "models", "sets", "reference"}`` for a grid), so result
files written by earlier versions still load. Summary statistics are derived from the runs, never
stored apart from them: the headline is the mean ± std (population std) of the final accuracies, and
``still_rising`` (the curves still climbing at the end of training) is recomputed from the checkpoint curves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import CondenseError
from ..io import read_json


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return (float(arr.mean()), float(arr.std())) if len(arr) else (float("nan"), float("nan"))


RISING_FRACTION = 0.75  # the late gain runs from the checkpoint at or before 75% of the epochs to the last one
RISING_FLOOR = 1.0     # points: a smaller mean gain is not worth a longer protocol, however consistent
RISING_MARK = "↑"
RISING_NOTE = (f"{RISING_MARK} still rising: accuracy on the checkpoint curves (selection split; the test split in "
               f"results of earlier versions) gained more than max({RISING_FLOOR:g} point, 2 standard errors) per seed "
               f"from the last checkpoint at or before {RISING_FRACTION:.0%} of the epochs to the end of training, so "
               "the protocol may be too short for this set and architecture.")


def still_rising(curves: Sequence[Sequence[tuple[int, float]]], fraction: float = RISING_FRACTION,
                 floor: float = RISING_FLOOR) -> Optional[dict[str, Any]]:
    """Were the networks still improving when training stopped? Per seed, d = accuracy at the last checkpoint
    minus accuracy at the last checkpoint at or before ``fraction`` of the epochs (the last checkpoint's epoch,
    which is the final one); rising when mean(d) > max(``floor``, 2·std(d)/sqrt(n)) (twice the standard error,
    std with n − 1 degrees of freedom; one seed has none and meets only the floor). Accuracies in percent. None when some curve
    has no checkpoint at or before ``fraction`` of its epochs (a single checkpoint, or no curves at all). Returns
    "rising", the mean "gain" (points), its standard error "gain_sem" and "from_epoch" (the earliest start over
    the seeds: with few checkpoints the span is longer than the last quarter)."""
    gains, starts = [], []
    for curve in curves:
        early = [(e, a) for e, a in curve if e <= fraction * curve[-1][0]] if curve else []
        if not early:
            return None
        starts.append(early[-1][0])
        gains.append(curve[-1][1] - early[-1][1])
    if not gains:
        return None
    d = np.asarray(gains, dtype=float)
    sem = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return {"rising": bool(d.mean() > max(floor, 2 * sem)), "gain": float(d.mean()), "gain_sem": sem,
            "from_epoch": int(min(starts))}


@dataclass
class ModelResult:
    """One architecture's runs on one set."""

    runs: list[float]                                  # final test accuracy per run (the headline)
    best_runs: list[float] = field(default_factory=list)  # results of earlier versions only: max over test checkpoints
    curves: list[list[tuple[int, float]]] = field(default_factory=list)  # selection-split accuracy at checkpoints
    loss_curves: list[list[tuple[int, float]]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    trainer: str = ""

    # the headline (final accuracy) and the best-checkpoint figure, each as mean ± population std over runs
    mean = property(lambda self: _mean_std(self.runs)[0])
    std = property(lambda self: _mean_std(self.runs)[1])
    best_mean = property(lambda self: _mean_std(self.best_runs)[0])
    best_std = property(lambda self: _mean_std(self.best_runs)[1])
    # still_rising of the checkpoint curves: {"rising", "gain", "gain_sem"}, or None when they cannot tell
    trend = property(lambda self: still_rising(self.curves))
    rising = property(lambda self: bool(self.trend and self.trend["rising"]))

    @classmethod
    def from_runs(cls, outcomes: Sequence[dict[str, Any]], trainer: str = "") -> "ModelResult":
        """From ``train.fit`` outcomes (fractions, plus "seed") to percent."""
        return cls(runs=[100 * o["final"] for o in outcomes],
                   curves=[[(e, 100 * a) for e, a in o["curve"]] for o in outcomes],
                   loss_curves=[o["loss_curve"] for o in outcomes], seconds=[o["seconds"] for o in outcomes],
                   seeds=[o["seed"] for o in outcomes], trainer=trainer)

    def to_json(self) -> dict[str, Any]:
        best = {"best_mean": self.best_mean, "best_std": self.best_std, "best_runs": self.best_runs} \
            if self.best_runs else {}
        late = self.trend  # derived from the curves like mean and std from the runs; written for readers
        return {"mean": self.mean, "std": self.std, "runs": self.runs, **best,
                "still_rising": None if late is None else late["rising"],
                "late_gain": None if late is None else late["gain"],
                "late_gain_from_epoch": None if late is None else late["from_epoch"], "curves": self.curves,
                "loss_curves": self.loss_curves, "seconds": self.seconds, "seeds": self.seeds, "trainer": self.trainer}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ModelResult":
        return cls(runs=list(d["runs"]), best_runs=list(d.get("best_runs", [])),
                   curves=[[tuple(p) for p in c] for c in d.get("curves", [])],
                   loss_curves=[[tuple(p) for p in c] for c in d.get("loss_curves", [])],
                   seconds=list(d.get("seconds", [])), seeds=list(d.get("seeds", [])), trainer=d.get("trainer", ""))


@dataclass
class EvalReport:
    """One set evaluated under one protocol: per architecture, the runs of every seed."""

    set: str
    dataset: str
    method: str
    ipc: int
    images: int
    lr: float
    seed: int
    seeds: list[int]
    protocol: dict[str, Any]            # the protocol's full content plus its "hash"
    results: dict[str, ModelResult]
    labels: str = "hard"
    teacher: Optional[dict[str, Any]] = None
    model_args: dict[str, Any] = field(default_factory=dict)
    jobs: Optional[list[dict[str, Any]]] = None  # per-(model, run) outcomes of one torchrun rank
    world: Optional[int] = None
    validation: Optional[dict[str, Any]] = None  # the validation split any selection used (None: nothing selected)
    split: str = "test"                # the real split that scored the runs: test, or validation (for selection)
    selection: Optional[dict[str, Any]] = None  # the split the checkpoint curves were scored on
    skipped: Optional[dict[str, str]] = None    # architectures of --models all that do not accept the images, and why
    ranking: Optional[dict[str, dict[str, Any]]] = None  # per architecture: IOR, HLR, LRS (metrics.py)
    lr_selected: Optional[dict[str, dict[str, Any]]] = None  # per architecture: the lr grid, its selection scores
    argmax: Optional[dict[str, dict[str, Any]]] = None  # soft-label protocols: per architecture, the same recipe with
                                                        # argmax labels only ("mean", "std", "runs")
    storage: Optional[dict[str, int]] = None  # the IOR subset: images per class, its bytes and the set's as trained
    reference: bool = False            # a reference row (full data or random subset), not a set under study

    @property
    def name(self) -> str:
        return self.set or f"{self.method} ipc{self.ipc}"

    def to_json(self) -> dict[str, Any]:
        out = {"set": self.set, "dataset": self.dataset, "method": self.method, "ipc": self.ipc, "images": self.images,
               "lr": self.lr, "seed": self.seed, "seeds": self.seeds, "model_args": self.model_args,
               "labels": self.labels, "protocol": self.protocol,
               "results": {m: r.to_json() for m, r in self.results.items()}}
        for key in ("teacher", "jobs", "world", "validation", "selection", "skipped", "ranking", "lr_selected",
                    "argmax", "storage"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.split != "test":
            out["split"] = self.split
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], reference: bool = False) -> "EvalReport":
        return cls(set=d.get("set", ""), dataset=d["dataset"], method=d["method"], ipc=int(d["ipc"]),
                   images=int(d.get("images", 0)), lr=float(d.get("lr", float("nan"))), seed=int(d.get("seed", 0)),
                   seeds=list(d.get("seeds", [])), protocol=dict(d["protocol"]),
                   results={m: ModelResult.from_json(r) for m, r in d["results"].items()},
                   labels=d.get("labels", "hard"), teacher=d.get("teacher"), model_args=d.get("model_args") or {},
                   jobs=d.get("jobs"), world=d.get("world"), validation=d.get("validation"), split=d.get("split", "test"), selection=d.get("selection"), skipped=d.get("skipped"),
                   ranking=d.get("ranking"), lr_selected=d.get("lr_selected"), argmax=d.get("argmax"),
                   storage=d.get("storage"), reference=reference)


@dataclass
class GridReport:
    """Several sets (and optionally a reference row) under one protocol and the same seeds."""

    protocol: dict[str, Any]
    models: list[str]
    sets: list[EvalReport]
    reference: Optional[EvalReport] = None

    @property
    def rows(self) -> list[EvalReport]:
        return self.sets + ([self.reference] if self.reference else [])

    def to_json(self) -> dict[str, Any]:
        """A single set with no reference is written as its own report (the first evaluator's format)."""
        if len(self.sets) == 1 and self.reference is None:
            return self.sets[0].to_json()
        out: dict[str, Any] = {"protocol": self.protocol, "models": self.models,
                               "sets": [r.to_json() for r in self.sets]}
        if self.reference is not None:
            out["reference"] = self.reference.to_json()
        return out

    @classmethod
    def from_json(cls, d: Any, where: str = "results") -> "GridReport":
        try:
            if "sets" not in d:
                single = EvalReport.from_json(d)
                return cls(protocol=single.protocol, models=list(single.results), sets=[single])
            ref = d.get("reference")
            return cls(protocol=d["protocol"], models=list(d["models"]),
                       sets=[EvalReport.from_json(r) for r in d["sets"]],
                       reference=EvalReport.from_json(ref, reference=True) if ref else None)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CondenseError(f"{where} is not a `condense eval --json` result.") from None


def load_reports(paths: Sequence[str]) -> list[EvalReport]:
    """Every per-set report in the result files, reference rows included."""
    reports = []
    for path in paths:
        blob = read_json(path, "Results file")
        reports += GridReport.from_json(blob, where=f"Results file {path}").rows
    return reports
