"""Cross-architecture grids: several sets, one protocol, the same seeds; a reference row; tables.

Under torchrun the (architecture x seed) jobs of each set are sharded across ranks and gathered,
so every rank computes a share and rank 0 holds the same report a single process would write.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from . import dist
from .errors import CondenseError
from .evaluator import eval_dataset_for, evaluate, resolve_models
from .protocol import Protocol, get_protocol
from .store import SynthSet

REFERENCES = ("full", "random")


def evaluate_sharded(synth: SynthSet, *, models: Sequence[str], runs: int, **kwargs: Any) -> dict[str, Any]:
    """``evaluate`` with its jobs split across torchrun ranks; the merged report on every rank."""
    if dist.world() == 1:
        return evaluate(synth, models=models, runs=runs, **kwargs)
    jobs = [(m, r) for m in models for r in range(runs)]
    part = evaluate(synth, models=models, runs=runs, jobs=dist.shard(jobs), **kwargs)
    merged = merge_jobs([p for p in dist.gather(part)], models)
    merged["world"] = dist.world()
    return merged


def merge_jobs(parts: Sequence[dict[str, Any]], models: Sequence[str]) -> dict[str, Any]:
    """One report from per-rank partial reports (each with "jobs"), runs in (model, run) order."""
    jobs = sorted((j for p in parts for j in p["jobs"]), key=lambda j: (list(models).index(j["model"]), j["run"]))
    report = {k: v for k, v in parts[0].items() if k not in ("results", "jobs")}
    results: dict[str, Any] = {}
    for m in models:
        mine = [j for j in jobs if j["model"] == m]
        finals, bests = np.array([j["final"] for j in mine]), np.array([j["best"] for j in mine])
        trainers = {p["results"][m]["trainer"] for p in parts if m in p["results"]}
        results[m] = {"mean": float(finals.mean()), "std": float(finals.std()), "runs": finals.tolist(),
                      "best_mean": float(bests.mean()), "best_std": float(bests.std()), "best_runs": bests.tolist(),
                      "curves": [j["curve"] for j in mine], "loss_curves": [j["loss_curve"] for j in mine],
                      "seconds": [j["seconds"] for j in mine], "seeds": [j["seed"] for j in mine],
                      "trainer": " / ".join(sorted(trainers))}
    report["results"] = results
    report["jobs"] = jobs
    return report


def reference_set(kind: str, like: SynthSet, dataset: Optional[str], data_root: Optional[str], device: str,
                  seed: int) -> SynthSet:
    """The reference row's training set: the full real training split, or a random real subset of equal IPC."""
    if kind not in REFERENCES:
        raise CondenseError(f"Unknown reference '{kind}'; choose one of: {', '.join(REFERENCES)}.")
    from .synth import distill

    name = dataset or like.dataset
    root = data_root if data_root is not None else like.config.get("run", {}).get("data_root")
    if kind == "random":
        return distill("random", name, like.ipc, data_root=root, device=device, seed=seed)
    from .data import load_dataset

    data = load_dataset(name, root=root, device="cpu")
    return SynthSet(images=data.train_x.float(), labels=data.train_y.long(), dataset=data.name,
                    num_classes=data.num_classes, class_names=list(data.class_names), mean=data.mean, std=data.std,
                    method="full", config={"run": {"data_root": root}})


def run_grid(paths: Sequence[str], *, models: Any = "ConvNet", protocol: str | Protocol = "standard",
             runs: Optional[int] = None, epochs: Optional[int] = None, seed: int = 0,
             reference: Optional[str] = None, log: Optional[Callable[[str], None]] = None,
             **kwargs: Any) -> dict[str, Any]:
    """Evaluate every set (and the reference) under one protocol and the same seeds."""
    if reference and reference not in REFERENCES:
        raise CondenseError(f"Unknown reference '{reference}'; choose one of: {', '.join(REFERENCES)}.")
    models = resolve_models(models)
    proto = protocol if isinstance(protocol, Protocol) else get_protocol(protocol, epochs=epochs)
    runs = proto.runs if runs is None else runs
    sets = [(p, SynthSet.load(p)) for p in paths]
    for path, synth in sets:  # every bad input fails before any training (and before any progress line)
        if proto.labels == "soft" and not synth.soft_labels:
            raise CondenseError(f"Protocol '{proto.name}' trains on stored soft labels but the set {path} has hard "
                                f"labels; use 'standard' or 'kd'.")
        eval_dataset_for(synth, kwargs.get("dataset"), kwargs.get("data_root"), torch.device("cpu"))
    reports = []
    for path, synth in sets:
        if log:
            log(f"Evaluating {path} ({', '.join(models)}; {runs} seeds; protocol {proto.name})")
        reports.append(evaluate_sharded(synth, models=models, runs=runs, protocol=proto, seed=seed,
                                        set_name=path, log=log, **kwargs))
    payload: dict[str, Any] = {"protocol": reports[0]["protocol"], "models": models, "sets": reports}
    if reference:
        ref = reference_set(reference, sets[0][1], kwargs.get("dataset"), kwargs.get("data_root"),
                            kwargs.get("device", "auto"), seed)
        if log:
            log(f"Reference row: {reference} ({ref.images.shape[0]} real images)")
        payload["reference"] = evaluate_sharded(ref, models=models, runs=runs, protocol=proto, seed=seed,
                                                set_name=f"reference: {reference}", log=log, **kwargs)
    return payload


def rows(payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = [(os.path.basename(r["set"]) or r["method"], r) for r in payload["sets"]]
    if payload.get("reference"):
        out.append((payload["reference"]["set"], payload["reference"]))
    return out


def title(payload: dict[str, Any]) -> str:
    p = payload["protocol"]
    first = next(iter(payload["sets"][0]["results"].values()))
    return (f"Test accuracy (%), protocol '{p['name']}' [{p['hash']}] ({p['epochs']} epochs), "
            f"mean ± std over {len(first['runs'])} seeds")


def rich_table(payload: dict[str, Any]):
    from rich.table import Table

    models = payload["models"]
    best = len(models) == 1  # a single architecture has room for the best-checkpoint column
    from rich.markup import escape

    table = Table(title=escape(title(payload)))  # the [hash] is not rich markup
    table.add_column("set")
    for m in models:
        table.add_column(m, justify="right")
        if best:
            table.add_column(f"{m} best-ckpt", justify="right", style="dim")
    for name, rep in rows(payload):
        cells = []
        for m in models:
            r = rep["results"][m]
            cells.append(f"{r['mean']:.2f} ± {r['std']:.2f}")
            if best:
                cells.append(f"{r['best_mean']:.2f} ± {r['best_std']:.2f}")
        table.add_row(name, *cells, style="italic" if name.startswith("reference") else None)
    return table


def markdown(payload: dict[str, Any]) -> str:
    models = payload["models"]
    p = payload["protocol"]
    lines = [f"## {title(payload)}", "",
             "| set | method | IPC | " + " | ".join(models) + " |",
             "|---|---|---:|" + "---:|" * len(models)]
    for name, rep in rows(payload):
        cells = [f"{rep['results'][m]['mean']:.2f} ± {rep['results'][m]['std']:.2f}" for m in models]
        lines.append(f"| {name} | {rep['method']} | {rep['ipc']} | " + " | ".join(cells) + " |")
    first = payload["sets"][0]
    trainers = ", ".join(f"{m}: {first['results'][m]['trainer']}" for m in models)
    lines += ["", f"- protocol `{p['name']}` hash `{p['hash']}`: {p['description']}",
              f"- seeds: {first['seeds']}; dataset: {first['dataset']}; labels: {first['labels']}",
              f"- trainer: {trainers}",
              "- best-checkpoint means (max over test checkpoints, not the headline): " +
              "; ".join(f"{name} " + ", ".join(f"{m} {rep['results'][m]['best_mean']:.2f}" for m in models)
                        for name, rep in rows(payload)), ""]
    return "\n".join(lines)
