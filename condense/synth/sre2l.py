"""SRe2L recover and relabel (Yin, Xing, Shen; NeurIPS 2023; official VILA-Lab/SRe2L, ``recover_cifar.py``,
``relabel_cifar.py``).

Squeeze is ``condense teachers``. Recover: IPC × K images start as Gaussian noise in the normalised space
and are optimised against the frozen teacher (CE + r_bn · its BatchNorm statistics, see ``recover.py``),
one independent batch of K images (one per class) per IPC index as in the official runs, with a random roll
of up to ``jitter`` pixels (no flip, no crop: the CIFAR recipe), Adam lr 0.25 betas (0.5, 0.9), cosine to 0,
pixels clamped to [0, 1] after each step (the official saves the last iterate as JPEG; here it stays float).
Relabel: ``labels = "logits"`` (the default, static: a deviation) stores the teacher's logits on the final
images; ``labels = "relabel"`` names the teacher so the evaluator relabels every augmented batch (the official
online KD; evaluate with the ``relabel`` protocol). With ``num_teachers`` M > 1 the images are recovered
against the first teacher (the official uses one) and labelled by the ensemble of all M (so every method of a
comparison can share one labeller). Teachers: any architecture with BatchNorm (ConvNetBN, ResNet18BN, ...);
others are refused.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..seeding import generator
from .base import register_method
from .decoupled import DecoupledSynthesizer
from .init import initial_images
from .recover import BNStatistics, RecoverConfig, cosine_lr, pixel_bounds, recovery_loss, roll_groups


@dataclass
class SRe2LConfig(RecoverConfig):
    iterations: int = 1000
    init: str = "noise"     # noise (official) | real


@register_method
class SRe2L(DecoupledSynthesizer):
    name = "sre2l"
    config_cls = SRe2LConfig
    scheduled = True
    needs_batchnorm = True

    def init(self):
        ctx, cfg = self.ctx, self.cfg
        teacher = self.load_teachers()[0].net
        k, ipc = ctx.dataset.num_classes, ctx.run.ipc
        images, labels, rows = initial_images(ctx.sampler, k, ipc, cfg.init, generator("iteration", ctx.run.seed, -1),
                                              ctx.device)
        images.requires_grad_(True)
        # class-major storage; the optimisation sees IPC batches of one image per class (batch-major)
        self.order = torch.arange(k * ipc, device=ctx.device).view(k, ipc).t().reshape(-1)
        self.optimizer = torch.optim.Adam([images], lr=cfg.lr_img, betas=(cfg.beta1, cfg.beta2), eps=1e-8)
        self.bn = BNStatistics(teacher, cfg.first_bn_multiplier)
        self.low, self.high = pixel_bounds(ctx.dataset, ctx.device)
        self.synth = self.new_synthset(images, labels)  # learned pixels: no source rows
        return self.synth

    def step(self, it):
        cfg, synth = self.cfg, self.synth
        ipc = self.ctx.run.ipc
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_lr(cfg.lr_img, it, cfg.iterations)
        x = roll_groups(synth.images[self.order], ipc, cfg.jitter, generator("iteration", synth.seed, it))
        loss, ce, bn = recovery_loss(self.bn, x, synth.labels[self.order], ipc, cfg.r_bn)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            synth.images.copy_(torch.maximum(torch.minimum(synth.images, self.high), self.low))
        return {"loss": loss.item() / ipc, "ce": ce.mean().item(), "bn": bn.mean().item()}

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
