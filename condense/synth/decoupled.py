"""The decoupled family's shared half (SRe2L, RDED, INFER): teachers trained once on the real data, then
images synthesised or selected against them, then labels from them.

``DecoupledSynthesizer`` loads and checks the run's teachers (``condense.teachers``; a method that reads
BatchNorm statistics refuses teachers without them), records their checksums in the set's config (so a
resumed run must use the same teachers), and, in ``finish``, labels the final set: ``labels = "logits"``
stores the teacher ensemble's average logits on the un-augmented decoded images (INFER's static labels),
``labels = "relabel"`` keeps hard labels and names the teachers by checksum so the evaluator relabels every
batch with them (SRe2L/RDED/INFER+Dyn's dynamic labels).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..errors import CondenseError
from ..teachers import Ensemble, Teacher, load_teachers, reference_of, static_logits
from .base import MethodConfig, Synthesizer

LABELS = ("logits", "relabel")


@dataclass
class TeacherConfig(MethodConfig):
    teacher: str = ""       # a teacher folder, a network file or comma-separated files ("" = the default folder)
    num_teachers: int = 1   # teachers taken from a folder (its teachers for this data, by file name)
    labels: str = "logits"  # logits: static soft labels stored; relabel: the evaluator relabels every batch


class DecoupledSynthesizer(Synthesizer):
    needs_batchnorm: ClassVar[bool] = False  # matches the teachers' BatchNorm statistics

    def load_teachers(self) -> list[Teacher]:
        ctx, cfg = self.ctx, self.cfg
        if cfg.labels not in LABELS:
            raise CondenseError(f"Unknown labels '{cfg.labels}' for {self.name}; choose one of: {', '.join(LABELS)}.")
        ds = ctx.dataset
        self.teachers = load_teachers(cfg.teacher, dataset=ds.name, fingerprint=ds.fingerprint(),
                                      num_classes=ds.num_classes, image_shape=ds.image_shape, device=ctx.device,
                                      count=cfg.num_teachers, need_batchnorm=self.name if self.needs_batchnorm else "")
        return self.teachers

    def new_synthset(self, images: torch.Tensor, labels: torch.Tensor, **extra):
        synth = super().new_synthset(images, labels, **extra)
        synth.config["teachers"] = reference_of(self.teachers)  # part of the resume key: same teachers only
        return synth

    def finish(self) -> None:
        """Label the final set from the teachers (see the module docstring)."""
        synth = self.synth
        if self.cfg.labels == "relabel":
            synth.label_kind, synth.relabel_network = "relabel", reference_of(self.teachers)
            return
        images, _ = synth.decode()
        logits = static_logits(Ensemble([t.net for t in self.teachers]), images.detach())
        n = synth.images.shape[0]
        synth.labels, synth.label_kind = logits[:n].clone(), "logits"
        if len(logits) > n:  # labels of the images a decoder adds (INFER's compensated images)
            synth.decoder_arrays["labels"] = logits[n:].clone()
