"""Which teachers label a set under a soft-label protocol, and the training targets they give.

- ``soft`` (static, INFER ``val_static``): the set's stored soft labels; a set without them (hard labels, or
  a relabel reference) gets the teachers' average logits on its un-augmented decoded images, computed once.
- ``relabel`` (dynamic, SRe2L/FKD relabelling, INFER+Dyn): the teachers relabel every augmented, mixed batch.
- ``teacher`` (``kd``): the protocol's cached teacher, or the given teachers instead.

The teachers are ``--teacher`` (a folder: every teacher of the set's data in it, or for a set that names its
teachers, those members found there by checksum; a file; comma-separated files), else the teachers a relabel
set names, found by checksum in the default teacher folder. A set that names its teachers refuses any other
(checksum); every teacher is checked against the set's data (fingerprint, classes, image size) first.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import torch

from ..errors import CondenseError
from ..store import SynthSet
from ..teachers import (Ensemble, Teacher, check_reference, default_teachers_dir, find_reference, load_teachers,
                        reference_of, static_logits)
from ..train import Labels


def resolve_teachers(synth: SynthSet, spec: Optional[str], device: torch.device, where: str,
                     fingerprint: str = "") -> Optional[list[Teacher]]:
    """The teachers for ``synth`` (see the module docstring), or None when none is given or named.
    ``fingerprint`` stands in for a set that records none (format version 1)."""
    ref = synth.relabel_network if synth.label_kind == "relabel" else None
    if ref is not None and (not spec or os.path.isdir(spec)):
        found = find_reference(ref, spec or None)
        if found is None and not spec:
            raise CondenseError(f"{where} is relabelled at train time by {ref.get('architecture')} (checksum "
                                f"{str(ref.get('checksum'))[:12]}), which is not in {default_teachers_dir()}; give "
                                f"it with --teacher.")
        spec = found or spec
    if not spec:
        return None
    teachers = load_teachers(spec, dataset=synth.dataset, fingerprint=synth.dataset_fingerprint or fingerprint,
                             num_classes=synth.num_classes, image_shape=synth.image_shape, device=device)
    if ref is not None:
        check_reference(ref, teachers, where)
    return teachers


def _describe(teachers: list[Teacher]) -> dict[str, Any]:
    ref = reference_of(teachers)
    return {**ref, "test_accuracy": [t.info.metrics.get("test_accuracy") for t in teachers]}


def soft_targets(synth: SynthSet, images: torch.Tensor, hard: torch.Tensor, targets: torch.Tensor, labels: str,
                 teachers: Optional[list[Teacher]], where: str) -> tuple[Labels, dict[str, Any]]:
    """Training targets for protocol labels ``soft`` or ``relabel`` (``teacher`` with given teachers)."""
    dev = hard.device
    if labels == "soft" and synth.soft_labels:
        stored = targets.to(dev).float()
        if synth.label_kind == "probabilities":  # already a target: a temperature on top would flatten it
            return Labels(hard, soft_probs=stored), {"labels": "soft (probabilities, T = 1)"}
        return Labels(hard, soft_logits=stored), {"labels": "soft (logits)"}
    if teachers is None:
        if labels == "soft":
            raise CondenseError(f"The protocol trains on soft labels but the set {where} has hard labels; give "
                                f"--teacher to label it with a teacher's logits, or use 'standard'.")
        raise CondenseError(f"The protocol relabels every batch with a teacher, but the set {where} names none; "
                            f"give --teacher.")
    ensemble = Ensemble([t.net.to(dev) for t in teachers])
    info = {"teacher": _describe(teachers)}
    if labels == "soft":
        logits = static_logits(ensemble, images.detach().to(dev))
        kind = f"soft (static logits of {info['teacher']['architecture']})"
        return Labels(hard, soft_logits=logits), {"labels": kind, **info}
    return Labels(hard, teacher=ensemble), {"labels": f"relabel ({info['teacher']['architecture']}, every batch)",
                                            **info}
