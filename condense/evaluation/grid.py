"""Cross-architecture grids: several sets, one protocol, the same seeds; a reference row.

Under torchrun the (architecture × seed) jobs of each set are sharded across ranks and gathered,
so every rank computes a share and rank 0 holds the report a single process would write.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Optional, Sequence

import torch

from .. import dist
from ..data import ValidationSpec, other_layout
from ..errors import CondenseError
from ..seeding import seed_for
from ..store import SynthSet
from ..synth import distill
from ..teachers import find_reference
from .evaluator import evaluate, resolve_models, resolve_protocol
from .metrics import ranking
from .references import full_accuracy
from .protocol import Protocol, derive
from .real_data import dataset_of, own_data, real_data_for
from .results import EvalReport, GridReport, ModelResult
from .soft_labels import resolve_teachers
from .tables import plural

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


def storage_match(like: SynthSet, soft: bool, cap: Optional[int] = None) -> dict[str, int]:
    """The class-balanced random real subset that stores no more bytes than ``like`` as it is trained: its images,
    decoder arrays (compensators) and labels (``soft``: K float32 per training image, stored or a teacher's
    static logits; else one int64 per training image, stored logits being unused) against real images with the same kind of label each (K float32, or
    one int64); a decoder's network (DQ's masked autoencoder) counts too. ``cap``: the smallest class, which a
    subset cannot exceed. Returns the subset's images per class ("ipc") and both byte counts."""
    sizes, k = like.storage_bytes(), like.num_classes
    image = 4 * math.prod(like.image_shape)
    label = 4 * k if soft else 8
    if like.soft_labels == soft:  # the labels it trains on are the ones it stores
        labels = sizes["labels"]
    else:  # soft: a teacher's static logits; relabel/hard: stored logits unused, argmax labels instead
        labels = like.decode()[1].shape[0] * label
    budget = sizes["images"] + sizes["decoder"] + sizes["decoder_network"] + labels  # DQ's MAE weights count too
    ipc = max(1, min(budget // (k * (image + label)), cap or budget))
    return {"ipc": int(ipc), "set_bytes": int(budget), "random_bytes": int(ipc * k * (image + label))}


def random_like(like: SynthSet, dataset: Optional[str], data_root: Optional[str], device: str, seed: int,
                split: str = "test", ipc: Optional[int] = None) -> SynthSet:
    """A random real subset with ``ipc`` images per class (default ``like``'s stored images per class); scored on
    the validation split, it leaves out the images ``like`` was distilled without."""
    run = like.config.get("run", {})
    held = like.config.get("validation") if split == "validation" else None
    name, root = (dataset, data_root if data_root is not None else run.get("data_root")) if dataset \
        else dataset_of(like, data_root)  # the set's own data, found on this machine
    if not dataset and other_layout(name, root):  # a root with two layouts of the name: the one the set came from
        name = own_data(like, name, root, held=False, own=False)
    return distill("random", name, ipc or like.ipc, device=device, seed=seed, data_root=root,
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
               kwargs: dict[str, Any], ipc: Optional[int] = None,
               hard_runs: Optional[dict[str, list[float]]] = None) -> dict[str, dict[str, Any]]:
    """Per architecture, DD-Ranking's metrics of ``report``: run r against run r of a fresh random subset of ``ipc``
    images per class, trained under the same protocol with the same labeller (``kwargs["teacher"]``);
    ``hard_runs`` (the set with argmax labels, under a soft-label protocol) give HLR."""
    names, runs = list(report.results), len(report.seeds)
    mine = dist.shard([(m, r) for r in range(runs) for m in names])
    done = []
    for r in range(runs):
        jobs = [(m, rr) for m, rr in mine if rr == r]
        if jobs:
            rnd = random_like(synth, kwargs.get("dataset"), kwargs.get("data_root"), kwargs["device"],
                              seed_for("ior_random", seed, r), kwargs.get("split", "test"), ipc)
            part = evaluate(rnd, models=names, runs=runs, protocol=proto, seed=seed, jobs=jobs,
                            **{k: v for k, v in kwargs.items() if k != "progress"})
            done += part.jobs
    done = [j for part in dist.gather(done) for j in part]
    data = real_data_for(synth, kwargs.get("dataset"), kwargs.get("data_root"), "cpu")
    out = {}
    for m, res in report.results.items():
        random_runs = [j["final"] for j in sorted((j for j in done if j["model"] == m), key=lambda j: j["run"])]
        full = full_accuracy(data, m, kwargs.get("model_args"), references) if report.split == "test" else None
        out[m] = ranking(res.runs, random_runs, full, hard_runs=(hard_runs or {}).get(m))
    return out


def labeller_of(synth: SynthSet, teachers: Optional[list], teacher: Optional[str]) -> Optional[str]:
    """The teacher files that give a random subset (or a reference row) the same soft labels as ``synth``. A static
    soft-label set: the teachers that made its labels (recorded in its config), found by checksum in the
    --teacher folder or the default one, unless --teacher names files; otherwise the set's resolved teachers
    (given, or named by a relabel set); None when there are none."""
    made_by = synth.config.get("teachers")
    if synth.soft_labels and isinstance(made_by, dict) and not (teacher and not os.path.isdir(teacher)):
        found = find_reference(made_by, teacher or None)
        if found:
            return found
    return ",".join(t.info.path for t in teachers) if teachers else None


def run_grid(paths: Sequence[str], *, models: Any = "ConvNet", protocol: str | Protocol = "standard",
             runs: Optional[int] = None, epochs: Optional[int] = None, seed: int = 0,
             reference: Optional[str] = None, log: Optional[Callable[[str], None]] = None, ior: bool = True,
             references: Optional[str] = None, teacher: Optional[str] = None, **kwargs: Any) -> GridReport:
    """Evaluate every set (and the reference) under one protocol and the same seeds.

    With ``ior`` every set also gets DD-Ranking's metrics (``metrics.py``): run r of a fresh random real subset
    of the set's storage (``storage_match``), trained exactly like run r of the set, gives IOR; a stored
    full-data reference (``references.py``, folder ``references``) gives HLR and LRS. Under a soft-label
    protocol (``soft``, ``relabel``, ``kd``) the report splits what the labels give from what the images give:
    the set with its soft labels, the same recipe with argmax labels only (``argmax``), and the random subset
    labelled by the same teachers (``teacher``, or the ones the set names). Joins the torchrun process group
    when launched by torchrun (and leaves it afterwards).
    """
    if reference and reference not in REFERENCES:
        raise CondenseError(f"Unknown reference '{reference}'; choose one of: {', '.join(REFERENCES)}.")
    names = resolve_models(models)
    proto = resolve_protocol(protocol, epochs)
    runs = proto.runs if runs is None else runs
    soft = proto.labels != "hard"
    if teacher and not soft:
        raise CondenseError(f"--teacher labels sets under the soft-label protocols (soft, relabel, kd); protocol "
                            f"'{proto.name}' trains on hard labels.")
    sets = [(p, SynthSet.load(p)) for p in paths]
    labellers = {}
    for path, synth in sets:  # every bad input fails before any training (and before any progress line)
        if synth.label_kind == "regression":
            raise CondenseError(f"The set {path} holds regression targets (a {synth.method} set), not class labels; "
                                f"evaluate it with --transfer TARGET (pre-training, then fine-tuning on TARGET).")
        if proto.labels == "soft" and not synth.soft_labels and not teacher and synth.label_kind != "relabel":
            raise CondenseError(f"Protocol '{proto.name}' trains on soft labels but the set {path} has hard labels; "
                                f"give --teacher to label it with a teacher's logits, or use 'standard'.")
        data = real_data_for(synth, kwargs.get("dataset"), kwargs.get("data_root"), "cpu",
                             split=kwargs.get("split", "test"))
        teachers = resolve_teachers(synth, teacher, torch.device("cpu"), path, data.fingerprint()) \
            if proto.labels in ("soft", "relabel") or (teacher and proto.labels == "teacher") else None
        if proto.labels == "relabel" and teachers is None:
            raise CondenseError(f"Protocol '{proto.name}' relabels every batch with a teacher, but the set {path} "
                                f"names none; give --teacher.")
        labellers[path] = labeller_of(synth, teachers, teacher) if proto.labels in ("soft", "relabel") else teacher
    if reference and proto.labels in ("soft", "relabel") and labellers[sets[0][0]] is None:
        raise CondenseError(f"The reference row needs the teachers that label {sets[0][0]}; give --teacher.")
    with dist.session():
        kwargs["device"] = dist.device_name(kwargs.get("device", "auto"))
        reports = []
        for path, synth in sets:
            if log:
                log(f"Evaluating {path} ({', '.join(names)}; {'one seed' if runs == 1 else f'{runs} seeds'}; "
                    f"protocol {proto.name})")
            report = evaluate_sharded(synth, models=models, names=names, runs=runs, protocol=proto, seed=seed,
                                      set_name=path, log=log, teacher=labellers[path], **kwargs)
            hard_runs = None
            if soft:  # what the images give with argmax labels, same recipe and seeds
                if log:
                    log(f"Label split: {path} with argmax labels under the same recipe")
                argmax = evaluate_sharded(synth, models=models, names=names, runs=runs,
                                          protocol=derive(proto, labels="hard"), seed=seed, set_name=path, log=log,
                                          **kwargs)
                report.argmax = {m: {"mean": r.mean, "std": r.std, "runs": r.runs} for m, r in argmax.results.items()}
                hard_runs = {m: r.runs for m, r in argmax.results.items()}
            if ior and soft and labellers[path] is None and proto.labels != "teacher":
                if log:
                    log(f"IOR skipped for {path}: no teacher to give a random subset the same soft labels "
                        f"(give --teacher).")
            elif ior:
                smallest = min(real_data_for(synth, kwargs.get("dataset"), kwargs.get("data_root"), "cpu",
                                             split=kwargs.get("split", "test")).class_counts())
                match = storage_match(synth, proto.labels == "soft", cap=smallest)
                report.storage = {**match, "stored_total": synth.storage_bytes()["total"]}
                if log:
                    log(f"IOR: {plural(runs, 'fresh random subset')} of {match['ipc']} images per class "
                        f"({match['random_bytes']:,} bytes against the set's {match['set_bytes']:,}), "
                        f"{'the same labeller, ' if soft else ''}the same runs")
                report.ranking = ranking_of(synth, report, proto, seed, references,
                                            {**kwargs, "teacher": labellers[path]}, match["ipc"], hard_runs)
            reports.append(report)
        grid = GridReport(protocol=reports[0].protocol, models=list(reports[0].results), sets=reports)
        if reference:
            ref = reference_set(reference, sets[0][1], kwargs.get("dataset"), kwargs.get("data_root"),
                                kwargs["device"], seed, kwargs.get("split", "test"))
            if log:
                log(f"Reference row: {reference} ({ref.images.shape[0]} real images)")
            grid.reference = evaluate_sharded(ref, models=models, names=names, runs=runs, protocol=proto, seed=seed,
                                              set_name=f"reference: {reference}", log=log,
                                              teacher=labellers[sets[0][0]], **kwargs)
            grid.reference.reference = True
    return grid
