"""Synthesizers behind one interface, and the `distill` entry point."""
from __future__ import annotations

from typing import Any, Optional, Union

from .. import dist
from ..data import ImageDataset, RealSampler, ValidationSpec, load_dataset
from ..device import resolve_device
from ..errors import CondenseError
from ..fields import AT_LEAST_1, NON_NEGATIVE, SEED, check_fields, check_value
from ..io import check_output
from ..store import SynthSet
from . import coresets, datadam, dm, gradient_matching, mtt, random_subset  # noqa: F401  (register the methods)
from . import infer, rded, sre2l  # noqa: F401  (the decoupled family)
from . import kip, krr_st  # noqa: F401  (the kernel family)
from . import dq, graphcut  # noqa: F401  (gradient-embedding selection: graphcut, dataset quantization)
from .base import (MethodConfig, RunConfig, RunContext, Synthesizer, build_config, check_capabilities, drop_retired,
                   get_method, list_methods, register_method)
from .driver import DriverOptions, check_start, checkpoint_path, run

__all__ = ["distill", "prepare", "list_methods", "get_method", "register_method", "Synthesizer",
           "MethodConfig", "RunConfig", "RunContext", "DriverOptions", "checkpoint_path"]


RUN_RANGES = {"seed": SEED, "max_per_class": AT_LEAST_1}


def prepare(method: str = "dm", dataset: Union[str, ImageDataset] = "mnist5k", ipc: int = 10, *,
            data_root: Optional[str] = None, model: str = "ConvNet", model_args: Optional[dict[str, Any]] = None,
            seed: int = 0, device: str = "auto", max_per_class: Optional[int] = None, preset: Optional[str] = None,
            validation: Optional[ValidationSpec] = None, **method_options: Any) -> Synthesizer:
    """Validate the request, load the data and build the method, ready for the driver.

    ``dataset`` is a registry name or an already loaded ImageDataset (benchmarks, notebooks, audits).
    ``preset`` names a bundle of options (e.g. ``ast`` for mtt); explicit options win over it.
    ``validation`` holds a validation split out of the training data the method sees (for selecting
    settings on it; recorded in the set's config).
    """
    cls = get_method(method)
    name = dataset.name if isinstance(dataset, ImageDataset) else dataset
    method_options = drop_retired(method, method_options)
    check_capabilities(cls, method_options, dist.world())
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise CondenseError(f"IPC must be a positive number of images per class, got {ipc!r}.")
    check_fields(RunConfig, {"data_root": data_root, "model": model, "model_args": model_args or {}, "seed": seed,
                             "max_per_class": max_per_class}, RUN_RANGES, "Distillation")
    cfg = build_config(method, name, ipc, method_options, preset)
    if cfg.iterations < (1 if cls.iterative else 0):
        raise CondenseError(f"Iterations must be a {'positive' if cls.iterative else 'non-negative'} number, "
                            f"got {cfg.iterations}.")
    dev = resolve_device(device)
    if isinstance(dataset, ImageDataset):
        data = dataset.to(dev)
    else:
        data = load_dataset(dataset, root=data_root, max_per_class=max_per_class, device=dev, validation=validation)
    smallest = min(data.class_counts())
    if ipc > smallest:
        raise CondenseError(f"IPC {ipc} is larger than the smallest class of {name} ({smallest} training images).")
    run_cfg = RunConfig(dataset=name, data_root=data_root, ipc=ipc, model=model, model_args=dict(model_args or {}),
                        seed=seed, max_per_class=max_per_class)
    ctx = RunContext(run=run_cfg, dataset=data, sampler=RealSampler(data, dev), device=dev)
    ctx.new_model()  # fail now, with one sentence, on an unknown model or a bad input size
    return cls(cfg, ctx)


def distill(method: str = "dm", dataset: Union[str, ImageDataset] = "mnist5k", ipc: int = 10, *,
            out: Optional[str] = None, resume: bool = False, restart: bool = False, quiet: bool = True,
            checkpoint_every: int = 25, on_step=None, device: str = "auto", **options: Any) -> SynthSet:
    """Distil ``dataset`` into ``ipc`` images per class with ``method``; returns the SynthSet.

    ``options`` are run options (data_root, model, model_args, seed, max_per_class, preset) and method
    hyper-parameters (e.g. iterations, lr_img, batch_real, init, flip). With ``out`` the set is saved
    there and checkpoints go beside it, so ``resume=True`` continues a killed run; an unfinished run's
    checkpoint is never silently reset: without ``resume`` it is refused unless ``restart=True`` discards it.
    Under torchrun, dm and datadam shard classes across the ranks and rank 0 writes the file. Output
    paths and the checkpoint are checked before any data is loaded.
    """
    check_value("checkpoint_every", checkpoint_every, int, NON_NEGATIVE)
    if out:
        check_output(out)
        check_output(checkpoint_path(out))
    check_start(out, resume, restart)
    with dist.session():
        synthesizer = prepare(method, dataset, ipc, device=dist.device_name(device), **options)
        return run(synthesizer, synthesizer.cfg.iterations,
                   DriverOptions(out=out, checkpoint_every=checkpoint_every, resume=resume, restart=restart,
                                 quiet=quiet, on_step=on_step))
