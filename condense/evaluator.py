"""The evaluator: train fresh networks on a SynthSet under a named protocol, report test accuracy.

Protocols are data (``eval/protocols/*.json``, see ``condense.protocol``); ``standard`` is the
DC/DM one (METHODS.md §0). The seeds of one architecture train together as one vectorised model
(``condense.eval_train``) on CUDA, unless ``sequential`` is asked or the architecture has
BatchNorm; on CPU they train one by one (vmap's grouped convolutions measured ~3x slower there).
We report the final model's accuracy; the best accuracy over the protocol's test checkpoints is
recorded too, labelled as such, because MTT-style papers use it.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from .augment import DSA, DSAConfig
from .data import ImageDataset, load_dataset
from .device import resolve_device
from .errors import CondenseError
from .eval_train import Labels, soft_labels, train_group, train_seeds, vmap_blocker
from .models import create_model, list_models
from .protocol import Protocol, from_dict, get_protocol, list_protocols  # noqa: F401  (re-exported API)
from .store import SynthSet


class _Protocols(dict):
    """``PROTOCOLS[name]`` kept for old callers; reads eval/protocols lazily."""

    def __missing__(self, name: str) -> Protocol:
        return get_protocol(name)

    def __contains__(self, name: object) -> bool:
        return name in list_protocols()

    def __iter__(self):
        return iter(list_protocols())


PROTOCOLS = _Protocols()


@torch.no_grad()
def test_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train(was_training)
    return correct / len(x)


def train_and_test(model: torch.nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                   test_y: torch.Tensor, protocol: Protocol, lr: float, dsa: Optional[DSA],
                   generator: torch.Generator) -> dict[str, Any]:
    """Train one ``model`` on (train_x, train_y) under ``protocol`` (hard labels); final/best accuracy and curve.

    ``generator`` is reseeded from its own initial seed, so batch order and augmentation match the
    vectorised trainer for the same seed.
    """
    out = train_group([model], [generator.initial_seed()], train_x, Labels(train_y), test_x, test_y, protocol, lr,
                      dsa, vectorised=False)[0]
    return {"final": out["final"], "best": out["best"], "curve": out["curve"]}


def eval_dataset_for(synth: SynthSet, dataset: Union[None, str, ImageDataset] = None,
                     data_root: Optional[str] = None, device: Optional[torch.device] = None) -> ImageDataset:
    """The real dataset whose test split scores ``synth``; checks classes and image shape match."""
    if isinstance(dataset, ImageDataset):
        data = dataset.to(device) if device is not None else dataset
    else:
        name = dataset or synth.dataset
        root = data_root if data_root is not None else synth.config.get("run", {}).get("data_root")
        data = load_dataset(name, root=root, device=device)
    if data.num_classes != synth.num_classes:
        raise CondenseError(f"The set has {synth.num_classes} classes but dataset {data.name} has {data.num_classes}.")
    if tuple(data.image_shape) != tuple(synth.image_shape):
        raise CondenseError(f"The set's images are {tuple(synth.image_shape)} but dataset {data.name} has "
                            f"{tuple(data.image_shape)}.")
    if synth.zca_matrix is not None:  # the set lives in ZCA space (MTT --zca): score in that space too
        from .zca import zca_dataset

        data = zca_dataset(data, synth.zca_matrix.to(data.test_x.device), synth.zca_mean.to(data.test_x.device))
    return data


def _summary(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float) * 100
    return {"mean": float(arr.mean()), "std": float(arr.std())}


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


GRID_MODELS = ("ConvNet", "MLP", "LeNet", "AlexNet", "VGG11", "ResNet18", "ResNet18BN_AP")


def run_seeds(seed: int, runs: int) -> list[int]:
    """The torch seeds of runs 0..runs-1 (one per network); same for every set and architecture."""
    return [seed * 1000 + r for r in range(runs)]


def labels_for(synth: SynthSet, proto: Protocol, data: ImageDataset, dev: torch.device, set_name: str = "",
               log: Optional[Callable[[str], None]] = None) -> tuple[Labels, dict[str, Any]]:
    """The training targets the protocol asks for, plus what to record about them."""
    hard = synth.hard_labels.to(dev)
    if proto.labels == "soft":
        if not synth.soft_labels:
            raise CondenseError(f"Protocol '{proto.name}' trains on stored soft labels but the set "
                                f"{set_name or synth.method} has hard labels; use 'standard' or 'kd'.")
        lab = soft_labels(synth.labels.to(dev).float(), hard)
        return lab, {"labels": "soft (probabilities, T = 1)" if lab.soft_probs is not None else "soft (logits)"}
    if proto.labels == "teacher":
        from .teacher import get_teacher

        teacher, info = get_teacher(proto.teacher, data, log=log)
        return Labels(hard, teacher=teacher), {"labels": "teacher", "teacher": info}
    return Labels(hard), {"labels": "hard" if not synth.soft_labels else "hard (argmax of the stored soft labels)"}


def evaluate(synth: SynthSet, *, models: Union[str, Sequence[str]] = ("ConvNet",), runs: Optional[int] = None,
             protocol: Union[str, Protocol] = "standard", epochs: Optional[int] = None,
             dataset: Union[None, str, ImageDataset] = None, data_root: Optional[str] = None,
             device: str = "auto", seed: int = 0, set_name: str = "", sequential: Optional[bool] = None,
             model_args: Optional[dict[str, Any]] = None, jobs: Optional[Sequence[tuple[str, int]]] = None,
             on_run: Optional[Callable[[str, int, dict[str, Any]], None]] = None,
             log: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
    """Train ``runs`` fresh networks per architecture on ``synth`` and score them on the real test set.

    Returns ``{"set", "protocol" (full content + hash), "results": {model: {"mean", "std", "runs",
    "best_mean", ...}}}`` with accuracies in percent; "best_*" is the max over test checkpoints
    (labelled, not the headline). ``jobs`` restricts the work to some (model, run index) pairs
    (torchrun sharding); results then hold only those runs, under "jobs".
    """
    proto = protocol if isinstance(protocol, Protocol) else get_protocol(protocol, epochs=epochs)
    if isinstance(protocol, Protocol) and epochs is not None:
        proto = from_dict({**proto.to_dict(), "epochs": epochs, "teacher": proto.teacher}, f"Protocol '{proto.name}'")
    runs = proto.runs if runs is None else runs
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise CondenseError(f"Runs must be a positive number, got {runs}.")
    models = resolve_models(models)
    dev = resolve_device(device)
    why_sequential = "asked"
    if sequential is None:  # vmap turns convs into grouped convs: measured ~3x slower on CPU, so GPU only
        sequential, why_sequential = dev.type != "cuda", "CPU default"
    data = eval_dataset_for(synth, dataset, data_root, dev)
    labels, label_info = labels_for(synth, proto, data, dev, set_name, log)
    train_x = synth.images.detach().to(dev)
    lr = float(synth.lr) if (synth.lr is not None and proto.use_learned_lr) else proto.lr
    dsa = DSA(DSAConfig(strategy=data.dsa_strategy)) if proto.augment == "dsa" else None
    c, h, w = data.image_shape
    seeds = run_seeds(seed, runs)
    wanted = None if jobs is None else {(m, r) for m, r in jobs}
    results: dict[str, Any] = {}
    job_results: list[dict[str, Any]] = []
    for model_name in models:
        idx = [r for r in range(runs) if wanted is None or (model_name, r) in wanted]
        if not idx:
            continue

        def build(name=model_name):
            return create_model(name, c, data.num_classes, (h, w), **(model_args or {}))

        blocker = vmap_blocker(build())
        outcomes = train_seeds(build, [seeds[r] for r in idx], train_x, labels, data.test_x, data.test_y, proto,
                               lr, dsa, vectorised=not sequential,
                               on_run=(lambda i, o, name=model_name: on_run(name, idx[i], o)) if on_run else None)
        for r, o in zip(idx, outcomes):
            job_results.append({"model": model_name, "run": r, **_percent(o)})
        results[model_name] = summarise(outcomes)
        results[model_name]["trainer"] = ("vectorised" if outcomes[0]["vectorised"] else
                                          f"sequential ({why_sequential if sequential else 'one run' if len(idx) == 1 else blocker})")
    report = {"set": set_name, "dataset": data.name, "method": synth.method, "ipc": synth.ipc,
              "images": int(synth.images.shape[0]), "lr": lr, "seed": seed, "seeds": seeds,
              "model_args": model_args or {}, **label_info,
              "protocol": {**proto.to_dict(), "hash": proto.digest()}, "results": results}
    if jobs is not None:
        report["jobs"] = job_results
    return report


def _percent(o: dict[str, Any]) -> dict[str, Any]:
    return {"seed": o["seed"], "final": 100 * o["final"], "best": 100 * o["best"],
            "curve": [(e, 100 * a) for e, a in o["curve"]], "loss_curve": o["loss_curve"], "seconds": o["seconds"]}


def summarise(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-architecture summary of per-seed outcomes (fractions in, percent out)."""
    final, best = _summary([o["final"] for o in outcomes]), _summary([o["best"] for o in outcomes])
    return {**final, "runs": [100 * o["final"] for o in outcomes],
            "best_mean": best["mean"], "best_std": best["std"], "best_runs": [100 * o["best"] for o in outcomes],
            "curves": [[(e, 100 * a) for e, a in o["curve"]] for o in outcomes],
            "loss_curves": [o["loss_curve"] for o in outcomes],
            "seconds": [o["seconds"] for o in outcomes], "seeds": [o["seed"] for o in outcomes]}
