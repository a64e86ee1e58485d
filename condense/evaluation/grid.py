"""Cross-architecture grids: several sets, one protocol, the same seeds; a reference row.

Under torchrun the (architecture × seed) jobs of each set are sharded across ranks and gathered,
so every rank computes a share and rank 0 holds the report a single process would write.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from .. import dist
from ..data import ValidationSpec
from ..errors import CondenseError
from ..store import SynthSet
from ..synth import distill
from .evaluator import evaluate, resolve_models, resolve_protocol
from .protocol import Protocol
from .real_data import real_data_for
from .results import EvalReport, GridReport, ModelResult

REFERENCES = ("full", "random")


def evaluate_sharded(synth: SynthSet, *, models: Any, names: Sequence[str], runs: int, **kwargs: Any) -> EvalReport:
    """``evaluate`` with its jobs split across torchrun ranks; the merged report on every rank. ``models`` as
    the user gave them ("all" skips architectures that do not fit the images), ``names`` resolved."""
    if dist.world() == 1:
        return evaluate(synth, models=models, runs=runs, **kwargs)
    jobs = [(m, r) for m in names for r in range(runs)]
    part = evaluate(synth, models=models, runs=runs, jobs=dist.shard(jobs), **kwargs)
    merged = merge_jobs(dist.gather(part), names)
    merged.world = dist.world()
    return merged


def merge_jobs(parts: Sequence[EvalReport], models: Sequence[str]) -> EvalReport:
    """One report from per-rank partial reports (each with ``jobs``), runs in (model, run) order."""
    jobs = sorted((j for p in parts for j in p.jobs), key=lambda j: (list(models).index(j["model"]), j["run"]))
    results = {}
    for m in models:
        mine = [j for j in jobs if j["model"] == m]
        if not mine:  # skipped: the architecture does not accept the images
            continue
        trainers = {p.results[m].trainer for p in parts if m in p.results}
        results[m] = ModelResult(runs=[j["final"] for j in mine],
                                 curves=[j["curve"] for j in mine], loss_curves=[j["loss_curve"] for j in mine],
                                 seconds=[j["seconds"] for j in mine], seeds=[j["seed"] for j in mine],
                                 trainer=" / ".join(sorted(trainers)))
    first = parts[0]
    return EvalReport(**{**first.__dict__, "results": results, "jobs": jobs})


def reference_set(kind: str, like: SynthSet, dataset: Optional[str], data_root: Optional[str], device: str,
                  seed: int, split: str = "test") -> SynthSet:
    """The reference row's training set: the full real training split, or a random real subset of equal IPC;
    scored on the validation split, both leave out the images ``like`` was distilled without."""
    run = like.config.get("run", {})
    root = data_root if data_root is not None else run.get("data_root")
    held = like.config.get("validation") if split == "validation" else None
    if kind == "random":
        return distill("random", dataset or like.dataset, like.ipc, data_root=root, device=device, seed=seed,
                       max_per_class=run.get("max_per_class") if held else None,
                       validation=ValidationSpec(held["fraction"], held["seed"]) if held else None)
    data = real_data_for(like, dataset, data_root, device="cpu", split=split)  # in the set's space (ZCA included)
    config = {"run": {"data_root": root, "max_per_class": run.get("max_per_class")}, **({"validation": held} if held else {})}
    return SynthSet(images=data.train_x.float(), labels=data.train_y.long(), dataset=data.name,
                    num_classes=data.num_classes, class_names=list(data.class_names), mean=data.mean, std=data.std,
                    method="full", config=config, zca_matrix=like.zca_matrix, zca_mean=like.zca_mean)


def run_grid(paths: Sequence[str], *, models: Any = "ConvNet", protocol: str | Protocol = "standard",
             runs: Optional[int] = None, epochs: Optional[int] = None, seed: int = 0,
             reference: Optional[str] = None, log: Optional[Callable[[str], None]] = None,
             **kwargs: Any) -> GridReport:
    """Evaluate every set (and the reference) under one protocol and the same seeds.

    Joins the torchrun process group when launched by torchrun (and leaves it afterwards).
    """
    if reference and reference not in REFERENCES:
        raise CondenseError(f"Unknown reference '{reference}'; choose one of: {', '.join(REFERENCES)}.")
    names = resolve_models(models)
    proto = resolve_protocol(protocol, epochs)
    runs = proto.runs if runs is None else runs
    sets = [(p, SynthSet.load(p)) for p in paths]
    for path, synth in sets:  # every bad input fails before any training (and before any progress line)
        if proto.labels == "soft" and not synth.soft_labels:
            raise CondenseError(f"Protocol '{proto.name}' trains on stored soft labels but the set {path} has hard "
                                f"labels; use 'standard' or 'kd'.")
        real_data_for(synth, kwargs.get("dataset"), kwargs.get("data_root"), "cpu", split=kwargs.get("split", "test"))
    with dist.session():
        kwargs["device"] = dist.device_name(kwargs.get("device", "auto"))
        reports = []
        for path, synth in sets:
            if log:
                log(f"Evaluating {path} ({', '.join(models)}; {runs} seeds; protocol {proto.name})")
            reports.append(evaluate_sharded(synth, models=models, names=names, runs=runs, protocol=proto, seed=seed,
                                            set_name=path, log=log, **kwargs))
        grid = GridReport(protocol=reports[0].protocol, models=list(reports[0].results), sets=reports)
        if reference:
            ref = reference_set(reference, sets[0][1], kwargs.get("dataset"), kwargs.get("data_root"),
                                kwargs["device"], seed, kwargs.get("split", "test"))
            if log:
                log(f"Reference row: {reference} ({ref.images.shape[0]} real images)")
            grid.reference = evaluate_sharded(ref, models=models, names=names, runs=runs, protocol=proto, seed=seed,
                                              set_name=f"reference: {reference}", log=log, **kwargs)
            grid.reference.reference = True
    return grid
