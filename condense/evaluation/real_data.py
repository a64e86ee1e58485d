"""The real dataset that goes with a set: for scoring it (evaluation, references) or for auditing it."""
from __future__ import annotations

from typing import Optional, Union

import torch

from dataclasses import replace

from ..data import ImageDataset, ValidationSpec, load_dataset, zca_dataset
from ..errors import CondenseError
from ..store import SynthSet


SPLITS = ("test", "validation")


def real_data_for(synth: SynthSet, dataset: Union[None, str, ImageDataset] = None, data_root: Optional[str] = None,
                  device: Optional[torch.device] = None, *, own: bool = False, split: str = "test") -> ImageDataset:
    """The set's real dataset, checked against the set's classes and image shape.

    Evaluation (``own=False``) may score a set on another dataset of the same shape (``dataset``), and
    moves the data into the set's space when the set lives in ZCA space. Audits (``own=True``) compare a
    set with its own training data only, capped per class as it was when the set was distilled.
    The data root defaults to the one the set was distilled from. ``split="validation"`` scores on the
    validation split the set was distilled without (its ``test_x``/``test_y`` are that split), for
    selecting settings without looking at the test set.
    """
    run = synth.config.get("run", {})
    if split not in SPLITS:
        raise CondenseError(f"Unknown split '{split}'; choose one of: {', '.join(SPLITS)}.")
    if split == "validation":
        held = synth.config.get("validation")
        if not held:
            raise CondenseError("The set was distilled from the whole training split, so scoring it on a validation "
                                "split would score it on images it has seen; distil it with a validation split.")
        data = load_dataset(synth.dataset, root=data_root if data_root is not None else run.get("data_root"),
                            max_per_class=run.get("max_per_class"), device=device,
                            validation=ValidationSpec(held["fraction"], held["seed"]))
        if data.validation != held:
            raise CondenseError(f"The validation split of {data.name} no longer matches the one the set was "
                                "distilled without (the data changed).")
        data = replace(data, test_x=data.val_x, test_y=data.val_y)
    elif isinstance(dataset, ImageDataset):
        data = dataset.to(device) if device is not None else dataset
    else:
        if own and dataset and dataset != synth.dataset:
            raise CondenseError(f"The set was distilled from '{synth.dataset}', not '{dataset}'; an audit compares a "
                                "set with its own training data.")
        data = load_dataset(dataset or synth.dataset, root=data_root if data_root is not None else run.get("data_root"),
                            max_per_class=run.get("max_per_class") if own else None, device=device)
    if data.num_classes != synth.num_classes:
        raise CondenseError(f"The set has {synth.num_classes} classes but dataset {data.name} has {data.num_classes}.")
    if tuple(data.image_shape) != tuple(synth.image_shape):
        raise CondenseError(f"The set's images are {tuple(synth.image_shape)} but dataset {data.name} has "
                            f"{tuple(data.image_shape)}.")
    if synth.zca_matrix is not None and not own:
        data = zca_dataset(data, synth.zca_matrix.to(data.test_x.device), synth.zca_mean.to(data.test_x.device))
    return data
