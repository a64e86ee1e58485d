"""The evaluator: train fresh networks on a SynthSet under a named protocol and score them on real test data.

Protocols are data (``eval/protocols/*.json``); ``standard`` is the DC/DM ``evaluate_synset`` recipe
(Zhao et al. 2021, official VICO-UoE/DatasetCondensation ``utils.py``). The seeds of one
architecture train together as one vectorised model on CUDA, unless ``sequential`` is asked or the
architecture has BatchNorm; on CPU they train one by one (vmap's grouped convolutions measured
slower there, see eval/README.md). The headline is the final model's test accuracy; the test split is
read once per network, at the end. The protocol's checkpoints score a selection split instead (the
validation split held out of distillation, else a fixed training sample; 30 images per class for the
curves, 100 for a selection): nothing is chosen on test.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..augment import dsa_for
from ..data import ImageDataset
from ..device import resolve_device
from ..errors import CondenseError, ImageSizeError
from ..models import create_model, list_models
from ..seeding import seed_for
from ..store import SynthSet
from ..train import Labels, fit, test_accuracy, vmap_blocker
from .protocol import Protocol, from_dict, get_protocol
from .real_data import real_data_for
from .results import EvalReport, ModelResult
from .soft_labels import resolve_teachers, soft_targets
from .teachers import get_teacher

GRID_MODELS = ("ConvNet", "MLP", "LeNet", "AlexNet", "VGG11", "ResNet18", "ResNet18BN_AP")


def resolve_models(models: Union[str, Sequence[str]]) -> list[str]:
    """``"all"`` (the cross-architecture grid), a comma list, or a list of registry names."""
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if list(models) == ["all"]:
        return list(GRID_MODELS)
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise CondenseError(f"Unknown model '{unknown[0]}'; choose one of: all, {', '.join(list_models())}.")
    if not models:
        raise CondenseError("No model to evaluate; give --models all or a comma-separated list.")
    return list(models)


def resolve_protocol(protocol: Union[str, Protocol], epochs: Optional[int] = None) -> Protocol:
    if not isinstance(protocol, Protocol):
        return get_protocol(protocol, epochs=epochs)
    if epochs is None:
        return protocol
    return from_dict({**protocol.to_dict(), "epochs": epochs, "teacher": protocol.teacher}, f"Protocol '{protocol.name}'")


def labels_for(synth: SynthSet, targets: torch.Tensor, proto: Protocol, data: ImageDataset, dev: torch.device,
               set_name: str = "", log: Optional[Callable[[str], None]] = None, *,
               images: Optional[torch.Tensor] = None, teachers: Optional[list] = None) -> tuple[Labels, dict[str, Any]]:
    """The training targets the protocol asks for from the set's decoded ``images`` and ``targets``, plus what to
    record; ``teachers`` (``soft_labels.resolve_teachers``) label a set without soft labels, relabel every batch
    under ``relabel``, and replace the cached teacher of ``kd``."""
    if synth.label_kind == "regression":
        raise CondenseError(f"The set {set_name or synth.method} holds regression targets, not class labels; "
                            "a classification protocol cannot train on it.")
    hard = (targets.argmax(1) if targets.dim() == 2 else targets).to(dev)
    if proto.labels == "relabel" or (proto.labels in ("soft", "teacher") and teachers is not None):
        return soft_targets(synth, synth.decode()[0] if images is None else images, hard, targets,
                            "soft" if proto.labels == "soft" else "relabel", teachers, set_name or synth.method)
    if proto.labels == "soft":
        if not synth.soft_labels:
            raise CondenseError(f"Protocol '{proto.name}' trains on stored soft labels but the set "
                                f"{set_name or synth.method} has hard labels; use 'standard' or 'kd'.")
        stored = targets.to(dev).float()
        if synth.label_kind == "probabilities":  # already a target: a temperature on top would flatten it
            return Labels(hard, soft_probs=stored), {"labels": "soft (probabilities, T = 1)"}
        return Labels(hard, soft_logits=stored), {"labels": "soft (logits)"}
    if proto.labels == "teacher":
        teacher, info = get_teacher(proto.teacher, data, log=log)
        return Labels(hard, teacher=teacher), {"labels": "teacher", "teacher": info}
    return Labels(hard), {"labels": "hard" if not synth.soft_labels else "hard (argmax of the stored soft labels)"}


SELECTION_PER_CLASS = 100  # a selection (the lr grid) reads at most this many real images per class, never test
CURVE_PER_CLASS = 30  # each checkpoint of a curve reads this many of those: on CIFAR-10, ten passes over 100 per
# class took 15 s beside ~105 s of training for an IPC 10 set under standard (2 cores); over 30, about 4.5 s


def _per_class_sample(y: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """Sorted rows of a fixed sample of at most ``per_class`` images of every class (seed 0); a smaller
    ``per_class`` gives a subset of a larger one's sample."""
    g = torch.Generator().manual_seed(0)
    y = y.cpu()
    return torch.cat([idx[torch.randperm(len(idx), generator=g)[:per_class]]
                      for idx in (torch.nonzero(y == c).squeeze(1) for c in range(num_classes))]).sort().values


def selection_split(data: ImageDataset, per_class: int = SELECTION_PER_CLASS
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The images selections (and, ``CURVE_PER_CLASS`` of them, the checkpoint curves) are scored on: the
    validation split held out of distillation when there is one, else a fixed sample of the training split,
    which the set may have seen; either capped at ``per_class`` images per class, as every checkpoint is a
    pass over it (a CIFAR-10 validation split of 10% would be 5,000 images per pass)."""
    if data.val_x is not None:
        rows = _per_class_sample(data.val_y, data.num_classes, per_class)
        if len(rows) == len(data.val_y):
            return data.val_x, data.val_y, {"split": "validation, held out of distillation", "images": len(rows)}
        rows = rows.to(data.val_x.device)
        return data.val_x[rows], data.val_y[rows], {
            "split": f"validation, held out of distillation (a fixed sample of {per_class} per class)",
            "images": len(rows)}
    rows = _per_class_sample(data.train_y, data.num_classes, per_class).to(data.train_x.device)
    return data.train_x[rows], data.train_y[rows], {
        "split": f"a fixed sample of the real training split ({per_class} per class; distillation saw it)",
        "images": len(rows)}


def train_seeds(build: Callable[[], torch.nn.Module], seeds: Sequence[int], x: torch.Tensor, labels: Labels,
                select: tuple[torch.Tensor, torch.Tensor], proto: Protocol, lr: float, dsa, vectorised: bool = True,
                on_epoch: Optional[Callable[[int, int], None]] = None,
                on_checkpoint: Optional[Callable[[int, int, float], None]] = None
                ) -> list[tuple[torch.nn.Module, dict[str, Any]]]:
    """One network per seed (``torch.manual_seed(seed)`` before building it), trained under ``proto``: all together
    when ``vectorised`` and the architecture allows it, else one by one. Checkpoint curves are scored on
    ``select``; returns (trained network, outcome) per seed. ``on_epoch(seed index, epoch)`` follows progress,
    ``on_checkpoint(seed index, epoch, accuracy on select as a fraction)`` each checkpoint."""
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(build().to(x.device))
    recipe = proto.recipe(lr)
    together = vectorised and len(seeds) > 1 and vmap_blocker(models[0]) is None
    groups = [list(range(len(seeds)))] if together else [[i] for i in range(len(seeds))]
    out = []
    for group in groups:
        done = fit([models[i] for i in group], [torch.Generator().manual_seed(seeds[i]) for i in group], x, labels,
                   recipe, dsa=dsa, test=select, vectorised=together,
                   on_epoch=(lambda e, _loss, g=group: [on_epoch(i, e) for i in g]) if on_epoch else None,
                   on_checkpoint=(lambda e, accs, g=group: [on_checkpoint(i, e, a) for i, a in zip(g, accs)])
                   if on_checkpoint else None)
        out += [(models[i], {**o, "seed": seeds[i]}) for i, o in zip(group, done)]
    return out


def evaluate(synth: SynthSet, *, models: Union[str, Sequence[str]] = ("ConvNet",), runs: Optional[int] = None,
             protocol: Union[str, Protocol] = "standard", epochs: Optional[int] = None,
             dataset: Union[None, str, ImageDataset] = None, data_root: Optional[str] = None,
             device: str = "auto", seed: int = 0, set_name: str = "", sequential: Optional[bool] = None,
             model_args: Optional[dict[str, Any]] = None, jobs: Optional[Sequence[tuple[str, int]]] = None,
             split: str = "test", progress: bool = False, lr_grid: Optional[Sequence[float]] = None,
             log: Optional[Callable[[str], None]] = None, teacher: Optional[str] = None) -> EvalReport:
    """Train ``runs`` fresh networks per architecture on ``synth`` and score them on the real test set.

    The test split is read once per network, after its training; the checkpoint curves use
    ``CURVE_PER_CLASS`` images per class of the selection split (``selection_split``). Run r of every
    architecture and every set uses the seed ``seed_for("eval_run", seed, r)``. ``jobs`` restricts the work to some (model, run index) pairs
    (torchrun sharding); the report then holds only those runs, also listed under ``jobs``.
    ``split="validation"`` scores on the validation split the set was distilled without, for selections.
    ``progress`` shows a bar per run with its epoch and its latest checkpoint's accuracy on the curves' share of
    the selection split ("val acc" for a held-out validation split, else "train-sample acc"). ``lr_grid`` picks
    each architecture's learning rate first: one run per candidate (stream ``lr_grid``), its final network scored on the whole selection split,
    never on test.
    ``teacher`` (a teacher folder, file or comma-separated files) labels the set under soft-label protocols
    (``soft_labels.py``); a set that names its teachers is checked against them.
    """
    proto = resolve_protocol(protocol, epochs)
    runs = proto.runs if runs is None else runs
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise CondenseError(f"Runs must be a positive number, got {runs}.")
    grid = isinstance(models, str) and models.strip() == "all"  # every architecture that accepts the images
    models = resolve_models(models)
    dev = resolve_device(device)
    why_sequential = "asked"
    if sequential is None:  # vmap turns convs into grouped convs: measured slower on CPU, so GPU only
        sequential, why_sequential = dev.type != "cuda", "CPU default"
    data = real_data_for(synth, dataset, data_root, dev, split=split)
    select_x, select_y, selection = selection_split(data)
    curve_x, curve_y, curve_info = selection_split(data, CURVE_PER_CLASS)
    selection = {**selection, "curve_images": curve_info["images"]}
    images, targets = synth.decode()
    teachers = resolve_teachers(synth, teacher, dev, set_name or synth.method, data.fingerprint()) \
        if proto.labels in ("soft", "relabel") or (teacher and proto.labels == "teacher") else None
    labels, label_info = labels_for(synth, targets, proto, data, dev, set_name, log, images=images, teachers=teachers)
    train_x = images.detach().to(dev)
    lr = float(synth.lr) if (synth.lr is not None and proto.use_learned_lr) else proto.lr
    if lr_grid is not None and (not lr_grid or not all(isinstance(v, (int, float)) and 0 < v < float("inf")
                                                       for v in lr_grid)):
        raise CondenseError(f"The learning-rate grid must hold positive finite numbers, got {list(lr_grid)}.")
    chosen: dict[str, dict[str, Any]] = {}
    dsa = dsa_for(data.hflip_safe) if proto.augment == "dsa" else None
    c, h, w = data.image_shape
    seeds = [seed_for("eval_run", seed, r) for r in range(runs)]
    wanted = None if jobs is None else {(m, r) for m, r in jobs}
    results: dict[str, ModelResult] = {}
    job_results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for model_name in list(models):
        try:
            create_model(model_name, c, data.num_classes, (h, w), **(model_args or {}))
        except ImageSizeError as err:
            if not grid:
                raise
            skipped[model_name] = str(err)
            models.remove(model_name)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn(f"{_bar_label(selection)} {{task.fields[acc]}}"), TimeElapsedColumn(),
                  TimeRemainingColumn(), disable=not progress, transient=True) as bar:
        for model_name in models:
            idx = [r for r in range(runs) if wanted is None or (model_name, r) in wanted]
            if not idx:
                continue

            def build(name=model_name):
                return create_model(name, c, data.num_classes, (h, w), **(model_args or {}))

            tasks = [bar.add_task(f"{set_name or synth.method} {model_name} run {r + 1}/{runs}", total=proto.epochs,
                                  acc="–") for r in idx]
            blocker = vmap_blocker(build())
            model_lr = lr
            if lr_grid:  # one run per candidate, its final network scored on the whole selection split
                scores = [test_accuracy(train_seeds(build, [seed_for("lr_grid", seed, i)], train_x, labels,
                                                    (curve_x, curve_y), proto, cand, dsa)[0][0], select_x, select_y)
                          for i, cand in enumerate(lr_grid)]
                model_lr = float(lr_grid[max(range(len(scores)), key=scores.__getitem__)])
                chosen[model_name] = {"grid": list(lr_grid), "selection_accuracy": [100 * a for a in scores],
                                      "chosen": model_lr}
            trained = train_seeds(build, [seeds[r] for r in idx], train_x, labels, (curve_x, curve_y), proto,
                                  model_lr, dsa, vectorised=not sequential,
                                  on_epoch=lambda i, e: bar.update(tasks[i], completed=e) if progress else None,
                                  on_checkpoint=lambda i, _e, a: bar.update(tasks[i], acc=f"{100 * a:.1f}%")
                                  if progress else None)
            outcomes = [{**o, "final": test_accuracy(net, data.test_x, data.test_y)} for net, o in trained]
            trainer = ("vectorised" if outcomes[0]["vectorised"] else
                       f"sequential ({why_sequential if sequential else 'one run' if len(idx) == 1 else blocker})")
            results[model_name] = ModelResult.from_runs(outcomes, trainer)
            job_results += [{"model": model_name, "run": r, **_percent(o)} for r, o in zip(idx, outcomes)]
    return EvalReport(set=set_name, dataset=data.name, method=synth.method, ipc=synth.ipc,
                      images=int(synth.images.shape[0]), lr=lr, seed=seed, seeds=seeds, model_args=model_args or {},
                      labels=label_info["labels"], teacher=label_info.get("teacher"),
                      protocol={**proto.to_dict(), "hash": proto.digest()}, results=results,
                      jobs=job_results if jobs is not None else None, validation=data.validation, split=split,
                      selection=selection, skipped=skipped or None, lr_selected=chosen or None)


def _bar_label(selection: dict[str, Any]) -> str:
    """What the progress bars' accuracy is scored on, in two words: never "val" for a training sample."""
    return "val acc" if selection["split"].startswith("validation") else "train-sample acc"


def _percent(o: dict[str, Any]) -> dict[str, Any]:
    return {"seed": o["seed"], "final": 100 * o["final"], "curve": [(e, 100 * a) for e, a in o["curve"]],
            "loss_curve": o["loss_curve"], "seconds": o["seconds"]}
