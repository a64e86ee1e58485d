"""RDED: realistic and diverse dataset distillation (Sun, Shi, Zhu, Lin; CVPR 2024; official LINs-lab/RDED,
``synthesize/main.py`` and ``synthesize/utils.py``).

Per class, ``mipc`` random real images are candidates; each gets ``crops`` square RandomResizedCrops
(area scale ``min_scale``–1, ratio 1) of side H/f, zero-padded back to H × W and scored by the teacher
("observer"): realism = −CE on the class. Each candidate keeps its best crop, the class keeps its IPC·f²
best, and every f × f of them (patch k·IPC + i into image i, cell k, row-major, nearest resize) are
stitched into one stored image. The official CIFAR scripts use f = 1, so each stored image is one crop, the
best of 5, of the best IPC of 300 candidates; stored images then train as they are (identity decoder).
Labels: ``relabel`` (default; the official validation relabels every CutMix batch with the teacher) or
static ``logits``. Teachers: any architecture; with ``num_teachers`` > 1 the observer is their average logits
(the official uses one). The official figures pick the best of several test-set evaluations; condense's
evaluator never selects on the test split. Its ``relabel`` protocol is INFER's recipe (mixup 0.8, T = 30,
400 epochs, batch 64, DSA), not RDED's validation (CutMix Beta(1, 1), T = 20, 300 epochs, batch by IPC,
AdamW lr decaying only to 0.5×; condense has no CutMix), so its numbers are not RDED's published ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import CondenseError
from ..seeding import generator
from ..teachers import Ensemble
from .base import register_method
from .decoupled import DecoupledSynthesizer, TeacherConfig


@dataclass
class RDEDConfig(TeacherConfig):
    iterations: int = 0
    labels: str = "relabel"
    mipc: int = 300          # candidate real images per class
    crops: int = 5           # RandomResizedCrops per candidate; its lowest-CE one competes
    factor: int = 1          # f: each stored image stitches f × f crops
    min_scale: float = 0.08  # smallest crop area as a fraction of the image
    score_batch: int = 256


def resized_crops(x: torch.Tensor, crops: int, size: tuple[int, int], min_scale: float,
                  gen: torch.Generator) -> torch.Tensor:
    """``crops`` square RandomResizedCrops (ratio 1, area ∈ [min_scale, 1]) of every image, resized to ``size``
    (bilinear, antialiased, as torchvision's on tensors): (crops, N, C, *size)."""
    n, _, h, w = x.shape
    area = min_scale + (1 - min_scale) * torch.rand(crops, n, generator=gen)
    sides = (area * h * w).sqrt().round().clamp(1, min(h, w)).long()
    tops = (torch.rand(crops, n, generator=gen) * (h - sides + 1)).long()
    lefts = (torch.rand(crops, n, generator=gen) * (w - sides + 1)).long()
    out = []
    for j in range(crops):
        out.append(torch.cat([F.interpolate(x[i:i + 1, :, t:t + s, l:l + s], size=size, mode="bilinear",
                                            align_corners=False, antialias=True)
                              for i, (t, l, s) in enumerate(zip(tops[j].tolist(), lefts[j].tolist(),
                                                                sides[j].tolist()))]))
    return torch.stack(out)


def stitch(patches: torch.Tensor, images: int, f: int, size: tuple[int, int]) -> torch.Tensor:
    """Patch k·images + i goes to image i, cell k (row-major), each cell resized (nearest) to its share."""
    _, c = patches.shape[:2]
    h, w = size
    rows = [h // f + (1 if r < h % f else 0) for r in range(f)]
    cols = [w // f + (1 if q < w % f else 0) for q in range(f)]
    out = patches.new_zeros(images, c, h, w)
    k, top = 0, 0
    for r in rows:
        left = 0
        for q in cols:
            out[:, :, top:top + r, left:left + q] = F.interpolate(patches[k * images:(k + 1) * images], size=(r, q))
            left, k = left + q, k + 1
        top += r
    return out


@register_method
class RDED(DecoupledSynthesizer):
    name = "rded"
    config_cls = RDEDConfig
    iterative = False

    def scores(self, observer: torch.nn.Module, crops: torch.Tensor, label: int) -> torch.Tensor:
        """CE of the observer on each crop, zero-padded (centred) to the full image: (crops, N)."""
        h, w = self.ctx.dataset.image_shape[1:]
        flat = crops.flatten(0, 1)
        dh, dw = h - flat.shape[-2], w - flat.shape[-1]
        flat = F.pad(flat, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        with torch.no_grad():
            logits = torch.cat([observer(p) for p in flat.split(self.cfg.score_batch)])
        target = torch.full((len(flat),), label, dtype=torch.long, device=flat.device)
        return F.cross_entropy(logits, target, reduction="none").view(crops.shape[:2])

    def init(self):
        ctx, cfg = self.ctx, self.cfg
        observer = Ensemble([t.net for t in self.load_teachers()])
        k, ipc, f = ctx.dataset.num_classes, ctx.run.ipc, cfg.factor
        h, w = ctx.dataset.image_shape[1:]
        if f > min(h, w):
            raise CondenseError(f"RDED factor {f} leaves no pixel per cell in {h}×{w} images.")
        size = (h // f, w // f)
        gen = generator("iteration", ctx.run.seed, -1)
        images = []
        for c in range(k):
            rows = ctx.sampler.sample_indices(c, cfg.mipc, gen)
            if len(rows) < ipc * f * f:
                raise CondenseError(f"RDED keeps IPC·f² = {ipc * f * f} crops per class but class {c} offers only "
                                    f"{len(rows)} candidates (mipc {cfg.mipc}); lower the IPC or factor.")
            crops = resized_crops(ctx.sampler.x[rows.to(ctx.sampler.x.device)], cfg.crops, size, cfg.min_scale, gen)
            ce = self.scores(observer, crops, c)                   # (crops, N)
            best, which = ce.min(0)                                # each candidate's most realistic crop
            keep = best.argsort()[:ipc * f * f]
            patches = crops[which[keep], keep]
            images.append(stitch(patches, ipc, f, (h, w)))
        labels = torch.arange(k, device=ctx.device).repeat_interleave(ipc)
        self.synth = self.new_synthset(torch.cat(images).to(ctx.device), labels)  # crops: no source rows
        return self.synth
