"""Cross-architecture grids: several sets, one protocol, the same seeds; a reference row.

Under torchrun the (architecture × seed) jobs of each set are sharded across ranks and gathered,
so every rank computes a share and rank 0 holds the report a single process would write.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from .. import dist
from ..data import ValidationSpec
from ..errors import CondenseError
from ..seeding import seed_for
from ..store import SynthSet
from ..synth import distill
from .evaluator import evaluate, resolve_models, resolve_protocol
from .metrics import ranking
from .references import full_accuracy
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


def random_like(like: SynthSet, dataset: Optional[str], data_root: Optional[str], device: str, seed: int,
                split: str = "test") -> SynthSet:
    """A random real subset with ``like``'s stored images per class (its storage, for hard labels); scored on the
    validation split, it leaves out the images ``like`` was distilled without."""
    run = like.config.get("run", {})
    held = like.config.get("validation") if split == "validation" else None
    return distill("random", dataset or like.dataset, like.ipc, device=device, seed=seed,
                   data_root=data_root if data_root is not None else run.get("data_root"),
                   max_per_class=run.get("max_per_class") if held else None,
                   validation=ValidationSpec(held["fraction"], held["seed"]) if held else None)


def reference_set(kind: str, like: SynthSet, dataset: Optional[str], data_root: Optional[str], device: str,
                  seed: int, split: str = "test") -> SynthSet:
    """The reference row's training set: the full real training split, or a random real subset of equal IPC;
    scored on the validation split, both leave out the images ``like`` was distilled without."""
    if kind == "random":
        return random_like(like, dataset, data_root, device, seed, split)
    run = like.config.get("run", {})
    root = data_root if data_root is not None else run.get("data_root")
    held = like.config.get("validation") if split == "validation" else None
    data = real_data_for(like, dataset, data_root, device="cpu", split=split)  # in the set's space (ZCA included)
    config = {"run": {"data_root": root, "max_per_class": run.get("max_per_class")}, **({"validation": held} if held else {})}
    return SynthSet(images=data.train_x.float(), labels=data.train_y.long(), dataset=data.name,
                    num_classes=data.num_classes, class_names=list(data.class_names), mean=data.mean, std=data.std,
                    method="full", config=config, zca_matrix=like.zca_matrix, zca_mean=like.zca_mean)


def ranking_of(synth: SynthSet, report: EvalReport, proto: Protocol, seed: int, references: Optional[str],
               kwargs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per architecture, DD-Ranking's metrics of ``report``: run r against run r of a fresh random subset."""
    names, runs = list(report.results), len(report.seeds)
    mine = dist.shard([(m, r) for r in range(runs) for m in names])
    done = []
    for r in range(runs):
        jobs = [(m, rr) for m, rr in mine if rr == r]
        if jobs:
            rnd = random_like(synth, kwargs.get("dataset"), kwargs.get("data_root"), kwargs["device"],
                              seed_for("ior_random", seed, r), kwargs.get("split", "test"))
            part = evaluate(rnd, models=names, runs=runs, protocol=proto, seed=seed, jobs=jobs,
                            **{k: v for k, v in kwargs.items() if k != "progress"})
            done += part.jobs
    done = [j for part in dist.gather(done) for j in part]
    data = real_data_for(synth, kwargs.get("dataset"), kwargs.get("data_root"), "cpu")
    out = {}
    for m, res in report.results.items():
        random_runs = [j["final"] for j in sorted((j for j in done if j["model"] == m), key=lambda j: j["run"])]
        full = full_accuracy(data, m, kwargs.get("model_args"), references) if report.split == "test" else None
        out[m] = ranking(res.runs, random_runs, full)
    return out


def run_grid(paths: Sequence[str], *, models: Any = "ConvNet", protocol: str | Protocol = "standard",
             runs: Optional[int] = None, epochs: Optional[int] = None, seed: int = 0,
             reference: Optional[str] = None, log: Optional[Callable[[str], None]] = None, ior: bool = True,
             references: Optional[str] = None, **kwargs: Any) -> GridReport:
    """Evaluate every set (and the reference) under one protocol and the same seeds.

    With ``ior`` every hard-label set also gets DD-Ranking's metrics (``metrics.py``): run r of a fresh
    random real subset of the set's storage, trained exactly like run r of the set, gives IOR; a stored
    full-data reference (``references.py``, folder ``references``) gives HLR and LRS. Joins the torchrun
    process group when launched by torchrun (and leaves it afterwards).
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
                log(f"Evaluating {path} ({', '.join(names)}; {runs} seeds; protocol {proto.name})")
            report = evaluate_sharded(synth, models=models, names=names, runs=runs, protocol=proto, seed=seed,
                                      set_name=path, log=log, **kwargs)
            if ior and proto.labels == "hard":
                if log:
                    log(f"IOR: {runs} fresh random subsets of {synth.ipc} images per class, the same runs")
                report.ranking = ranking_of(synth, report, proto, seed, references, kwargs)
            reports.append(report)
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
