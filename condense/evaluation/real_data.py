"""The real dataset that goes with a set: for scoring it (evaluation, references) or for auditing it.

A set names its data (``dataset``) and records its fingerprint; the data is found by name in this machine's data
root (``--data-root``, else the root the set was made with when it exists here, else ``$CONDENSE_DATA``; see
``condense.data.refs``), and its fingerprint must match before a set is scored on it as its own data.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import torch

from dataclasses import replace

from ..data import (LEGACY_FINGERPRINTS, ImageDataset, ValidationSpec, data_root as env_root, distilled_fingerprint,
                    load_dataset, other_layout, resolve_reference, zca_dataset)
from ..errors import CondenseError
from ..store import SynthSet


SPLITS = ("test", "validation")


def dataset_of(synth: SynthSet, data_root: Optional[str] = None) -> tuple[str, Optional[str]]:
    """The name to load for the set's own data and the data root to load it from: ``data_root`` when given, else
    the root recorded when the set was made if it exists here, else ``$CONDENSE_DATA`` (None: the loader's
    default). An image-folder path that is not on this machine is found by its folder's name in those roots."""
    recorded = synth.config.get("run", {}).get("data_root") if isinstance(synth.config.get("run"), dict) else None
    if data_root is None and isinstance(recorded, str) and os.path.isdir(os.path.expanduser(recorded)):
        data_root = recorded
    return resolve_reference(synth.dataset, [data_root, env_root()]), data_root


def expected_fingerprint(synth: SynthSet) -> str:
    """The fingerprint of the set's data: the recorded one, or for the first zoo sets (format 1, which recorded
    none) the one their data folder is known to have; "" when unknown."""
    if synth.dataset_fingerprint:
        return synth.dataset_fingerprint
    path = synth.dataset.split("@")[0].partition("imagefolder:")[2].rstrip("/")
    return LEGACY_FINGERPRINTS.get(os.path.basename(path), "") if path else ""


def seen_fingerprint(synth: SynthSet, data: ImageDataset, held: bool) -> str:
    """``data``'s fingerprint as the set's distillation saw it (capped, validation carved out). ``held``: ``data``
    already has the validation split carved out."""
    run = synth.config.get("run", {}) if isinstance(synth.config.get("run"), dict) else {}
    return data.fingerprint() if held else distilled_fingerprint(data, run.get("max_per_class"),
                                                                 synth.config.get("validation"))


def check_fingerprint(synth: SynthSet, data: ImageDataset, held: bool, own: bool) -> None:
    """Refuse, in one sentence, to treat ``data`` as the set's own data when its fingerprint (as the set's
    distillation saw it: capped, validation carved out) differs from the recorded one. ``held``: ``data``
    already has the validation split carved out."""
    expected = expected_fingerprint(synth)
    if not expected:
        return
    got = seen_fingerprint(synth, data, held)
    if got != expected:
        other = "" if own else ", or name other data on purpose with --dataset"
        raise CondenseError(f"The data found for '{synth.dataset}' ({data.name}, fingerprint {got}) is not the data "
                            f"the set was made from (fingerprint {expected}); point --data-root (or "
                            f"$CONDENSE_DATA) at that data{other}.")


def own_data(synth: SynthSet, name: str, root: Optional[str], held: bool, own: bool, **load) -> ImageDataset:
    """Load the set's own data and check its fingerprint. A registry name whose root holds both torchvision's
    files (read first) and an image tree of that name (e.g. the original CIFAR-10 batches and the JPEG recoding
    the zoo was built from) is read from the tree when the files are not the set's data."""
    data = load_dataset(name, root=root, **load)
    try:
        check_fingerprint(synth, data, held=held, own=own)
    except CondenseError:
        if not other_layout(name, root):
            raise
        tree = load_dataset(name, root=root, layout="folder", **load)
        files_seen, tree_seen, expected = (seen_fingerprint(synth, data, held), seen_fingerprint(synth, tree, held),
                                           expected_fingerprint(synth))
        if tree_seen != expected:
            raise CondenseError(f"Neither torchvision's files for '{name}' (fingerprint {files_seen}) nor the image "
                                f"tree {name.split('@')[0]}/ (fingerprint {tree_seen}) in the data root is the data "
                                f"the set was made from (fingerprint {expected}); point --data-root (or "
                                "$CONDENSE_DATA) at that data.") from None
        data = tree
    return data


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
        name, root = dataset_of(synth, data_root)
        data = own_data(synth, name, root, True, own, max_per_class=run.get("max_per_class"), device=device,
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
        mine = not dataset or dataset == synth.dataset
        name, root = dataset_of(synth, data_root) if mine else (dataset, data_root if data_root is not None
                                                                 else run.get("data_root"))
        load = {"max_per_class": run.get("max_per_class") if own else None, "device": device}
        data = own_data(synth, name, root, False, own, **load) if mine else load_dataset(name, root=root, **load)
    if data.num_classes != synth.num_classes:
        raise CondenseError(f"The set has {synth.num_classes} classes but dataset {data.name} has {data.num_classes}.")
    if tuple(data.image_shape) != tuple(synth.image_shape):
        raise CondenseError(f"The set's images are {tuple(synth.image_shape)} but dataset {data.name} has "
                            f"{tuple(data.image_shape)}.")
    if synth.zca_matrix is not None and not own:
        data = zca_dataset(data, synth.zca_matrix.to(data.test_x.device), synth.zca_mean.to(data.test_x.device))
    return data
