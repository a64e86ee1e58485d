"""INFER: universal feature compensators (Zhang, Du, Liu, Zhou; ICLR 2025; official zhangxin-xd/UFC,
``ufc_generation/ufc_cifar.py``, ``ufc_validation/val_static.py`` and ``val_dyn.py``).

With M teachers and K classes the budget per class is n = int(IPC / (M/K + 1)) natural images: n base
batches X_k, each one random real image per class, stored as they are. For every base batch k and teacher m
one perturbation u[k, m] (1, C, H, W), zero at the start and shared by the whole batch, is learned against
teacher m: CE(teacher_m(roll(X_k + u)), classes) + r_bn · its BatchNorm statistics (``recover.py``), Adam
lr 0.25 betas (0.5, 0.9), cosine to 0, a random roll of up to 4 pixels. The set stores the naturals and the
n·M compensators (the ``compensators`` decoder, so ``storage_bytes`` counts them) and decodes into the
naturals plus clip(X_k + u[k, m]): n·(M + 1) training images per class for about IPC stored images. u is
never clipped while it learns: the official per-step clip writes into the tensor X_k + u, not into u, so it
only bounds the saved images (JPEG there, float32 here).

Labels: ``infer`` stores static soft labels, the teacher ensemble's average logits on every un-augmented
decoded image (``val_static``); ``infer_dyn`` (INFER+Dyn, ``val_dyn``) names the ensemble so the evaluator
relabels every augmented, mixed batch with it. Teachers: architectures with BatchNorm only (M = 2
ConvNetBN seeds by default; the paper's CIFAR runs use 4 architectures).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import CondenseError
from ..seeding import generator
from .base import register_method
from .decoupled import DecoupledSynthesizer
from .recover import BNStatistics, RecoverConfig, cosine_lr, recovery_loss, roll_groups


@dataclass
class INFERConfig(RecoverConfig):
    iterations: int = 1000
    num_teachers: int = 2
    r_bn: float = 1.0       # official CIFAR script


def base_images(ipc: int, teachers: int, classes: int) -> int:
    """INFER's budget: natural images per class, int(IPC / (M/K + 1)), so that n·K + n·M ≤ IPC·K."""
    return int(ipc / (teachers / classes + 1))


@register_method
class INFER(DecoupledSynthesizer):
    name = "infer"
    config_cls = INFERConfig
    scheduled = True
    needs_batchnorm = True

    def init(self):
        ctx, cfg = self.ctx, self.cfg
        teachers = self.load_teachers()
        k, m = ctx.dataset.num_classes, len(teachers)
        n = base_images(ctx.run.ipc, m, k)
        if n < 1:
            raise CondenseError(f"IPC {ctx.run.ipc} leaves no natural image per class with {m} teachers and {k} "
                                f"classes (INFER keeps int(IPC / (M/K + 1)) per class); raise the IPC.")
        gen = generator("iteration", ctx.run.seed, -1)
        per_class = torch.stack([ctx.sampler.sample_indices(c, n, gen) for c in range(k)])  # (K, n)
        rows = per_class.t().reshape(-1)  # base batch k is rows k·K .. k·K + K − 1, one image per class
        images = ctx.sampler.x[rows.to(ctx.sampler.x.device)].detach().clone().to(ctx.device)
        labels = torch.arange(k, device=ctx.device).repeat(n)
        u = torch.zeros(n, m, *images.shape[1:], device=ctx.device, requires_grad=True)
        self.optimizer = torch.optim.Adam([u], lr=cfg.lr_img, betas=(cfg.beta1, cfg.beta2), eps=1e-8)
        self.bn = [BNStatistics(t.net, cfg.first_bn_multiplier) for t in teachers]
        self.synth = self.new_synthset(images, labels, source_indices=rows.cpu(), decoder={"kind": "compensators"},
                                       decoder_arrays={"compensators": u})
        return self.synth

    def step(self, it):
        cfg, synth = self.cfg, self.synth
        u = synth.decoder_arrays["compensators"]
        n, k = u.shape[0], self.ctx.dataset.num_classes
        gen = generator("iteration", synth.seed, it)
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_lr(cfg.lr_img, it, cfg.iterations)
        total, ces, bns = 0.0, [], []
        for j, bn in enumerate(self.bn):  # compensator (k, j) is learned against teacher j only
            x = roll_groups(synth.images + u[:, j].repeat_interleave(k, 0), n, cfg.jitter, gen)
            loss, ce, stats = recovery_loss(bn, x, synth.labels, n, cfg.r_bn)
            total, ces, bns = total + loss, ces + [ce.detach()], bns + [stats.detach()]
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        count = n * len(self.bn)
        return {"loss": total.item() / count, "ce": float(sum(c.sum() for c in ces)) / count,
                "bn": float(sum(b.sum() for b in bns)) / count}

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict(),
                "compensators": self.synth.decoder_arrays["compensators"].detach().cpu().clone()}

    def load_state_dict(self, state):
        u = self.synth.decoder_arrays["compensators"]
        if tuple(state["compensators"].shape) != tuple(u.shape):
            raise ValueError("the checkpoint's compensators do not fit this run")
        with torch.no_grad():
            u.copy_(state["compensators"].to(u.device))
        self.optimizer.load_state_dict(state["optimizer"])


@dataclass
class INFERDynConfig(INFERConfig):
    labels: str = "relabel"


@register_method
class INFERDyn(INFER):
    """INFER+Dyn: the same images and compensators; the evaluator relabels every batch with the ensemble."""

    name = "infer_dyn"
    config_cls = INFERDynConfig
