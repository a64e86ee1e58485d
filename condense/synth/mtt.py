"""MTT (Cazenavette et al., CVPR 2022; official mtt-distillation ``distill.py``) with the AST options
(Shen et al. 2023; official AST-Alignment-with-Smooth-Expert).

Each iteration samples an expert and a start epoch t ∈ [0, max_start_epoch−1], runs ``syn_steps``
student SGD steps from θ*_t on DSA-augmented minibatches of the synthetic set, and matches
θ*_{t+M}: ‖θ_N − θ*_{t+M}‖² / ‖θ_t − θ*_{t+M}‖². The images and the student step size α are
learned (SGD momentum 0.5, separate lrs); α is stored as the SynthSet ``lr`` and the evaluator
trains with it. The gradient comes from the full unroll or from the constant-memory recompute
(``grad_mode``, see trajectory.py).

AST options, each a flag (``--preset ast`` turns them all on): representative k-means init,
balanced inner loss, student momentum, intermediate matching, conv-weight perturbation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import functional_call

from ..augment import dsa_for
from ..data import RealSampler, zca_dataset
from ..errors import CondenseError
from ..experts import ExpertBuffer
from ..models import ParamLayout, has_batchnorm
from ..neighbours import kmeans_nearest
from ..seeding import generator
from .base import MethodConfig, Synthesizer, register_method
from .init import initial_images
from .matching import chunked
from .trajectory import GRAD_MODES, StudentStep, Trajectory, recompute_grads, unrolled_loss

INITS = ("real", "noise", "kmeans")


@dataclass
class MTTConfig(MethodConfig):
    iterations: int = 200            # CPU-sized; the papers run 5000
    experts: str = ""                # buffer folder written by `condense experts`
    syn_steps: int = 20              # N student steps per iteration
    expert_epochs: int = 2           # M: target is θ*_{t+M}
    max_start_epoch: int = 10        # T+: t ~ U{0..T+−1}
    lr_img: float = 1000.0
    lr_lr: float = 1e-5
    lr_teacher: float = 0.01         # α0
    momentum: float = 0.5            # outer SGD momentum for images and α
    batch_syn: int = 0               # student minibatch; 0 = the whole synthetic set
    init: str = "real"               # real | noise | kmeans (AST representative init)
    dsa: bool = True
    flip: bool = False               # FYI: student minibatches [x; hflip(x)], batch_syn halved
    grad_mode: str = "recompute"     # unrolled | recompute (same gradient; see scripts/bench.py trajectory)
    # AST options
    balance_loss: bool = False
    student_momentum: float = 0.0
    middle_loss: bool = False
    weight_perturb: bool = False


def balance_scale(t: int, max_start_epoch: int) -> float:
    """AST balanced inner loss: ×log5(t−h+8) for late starts, ÷log5(h−t+8) for early ones (h = T+//2)."""
    h = max_start_epoch // 2
    return math.log(t - h + 8, 5) if t >= h else 1.0 / math.log(h - t + 8, 5)


def perturb_conv_weights(flat: torch.Tensor, layout: ParamLayout, generator: torch.Generator) -> torch.Tensor:
    """AST: every 4-D weight W becomes W + (d/‖d‖_F) ⊙ W with d ~ N(0, I); other parameters unchanged."""
    parts = []
    for piece, shape in zip(flat.split(layout.numels), layout.shapes):
        if len(shape) == 4:
            d = torch.randn(piece.shape, generator=generator).to(piece)
            piece = piece + d / d.norm() * piece
        parts.append(piece)
    return torch.cat(parts)


def _describe(model: str, model_args: dict, dataset: str) -> str:
    return f"{model}{' ' + str(dict(sorted(model_args.items()))) if model_args else ''} on {dataset}"


@register_method
class MTT(Synthesizer):
    name = "mtt"
    config_cls = MTTConfig
    supports_flip = True

    # ---- set-up -------------------------------------------------------------------------------
    def _check(self) -> ExpertBuffer:
        cfg, run = self.cfg, self.ctx.run
        if cfg.grad_mode not in GRAD_MODES:
            raise CondenseError(f"Unknown grad_mode '{cfg.grad_mode}'; choose one of: {', '.join(GRAD_MODES)}.")
        if cfg.init not in INITS:
            raise CondenseError(f"Unknown init '{cfg.init}' for mtt; choose one of: {', '.join(INITS)}.")
        if min(cfg.syn_steps, cfg.expert_epochs, cfg.max_start_epoch) < 1 or cfg.batch_syn < 0:
            raise CondenseError("syn_steps, expert_epochs and max_start_epoch must be positive, batch_syn >= 0.")
        if not 0 <= cfg.student_momentum < 1:
            raise CondenseError(f"student_momentum must be in [0, 1), got {cfg.student_momentum}.")
        buf = ExpertBuffer(cfg.experts)
        ec = buf.config
        if (ec.dataset, ec.model, ec.model_args) != (run.dataset, run.model, run.model_args):
            raise CondenseError(f"The experts in {cfg.experts} were trained for "
                                f"{_describe(ec.model, ec.model_args, ec.dataset)}, but this run asks for "
                                f"{_describe(run.model, run.model_args, run.dataset)}.")
        last = cfg.max_start_epoch - 1 + cfg.expert_epochs  # the latest target snapshot t+M
        if last > buf.epochs:
            raise CondenseError(f"max_start_epoch {cfg.max_start_epoch} + expert_epochs {cfg.expert_epochs} reaches "
                                f"epoch {last}, beyond the {buf.epochs} epochs of the experts in {cfg.experts}.")
        return buf

    def init(self):
        ctx, cfg = self.ctx, self.cfg
        self.buffer = buf = self._check()
        self.net = ctx.new_model()
        if has_batchnorm(self.net):
            raise CondenseError(f"mtt needs a model without batch norm (its running statistics are not "
                                f"parameters); '{ctx.run.model}' has batch norm.")
        self.layout = ParamLayout.of(self.net)
        if self.layout != buf.layout:
            raise CondenseError(f"The experts in {cfg.experts} have other parameter shapes than {ctx.run.model}.")
        self.data, zca = ctx.dataset, buf.zca
        if zca is not None:  # real images (init, k-means) must live in the experts' ZCA space too
            self.data = zca_dataset(ctx.dataset, zca[0].to(ctx.device), zca[1].to(ctx.device))
        sampler = RealSampler(self.data, ctx.device)
        gen = generator("iteration", ctx.run.seed, -1)
        if cfg.init == "kmeans":
            images, labels = self._representative_init(gen)
        else:
            images, labels, _ = initial_images(sampler, self.data.num_classes, ctx.run.ipc, cfg.init, gen, ctx.device)
        images.requires_grad_(True)
        alpha = torch.tensor(cfg.lr_teacher, device=ctx.device).requires_grad_(True)
        self.opt_img = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
        self.opt_lr = torch.optim.SGD([alpha], lr=cfg.lr_lr, momentum=cfg.momentum)
        self.dsa = dsa_for(self.data.hflip_safe, flip_first=cfg.flip) if cfg.dsa else None
        extra = {"zca_matrix": zca[0].clone(), "zca_mean": zca[1].clone()} if zca is not None else {}
        self.synth = self.new_synthset(images, labels, lr=alpha, **extra)
        return self.synth

    def student_forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.net, self.layout.unflatten(theta), (x,))

    def _representative_init(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """AST: k-means (K = IPC) on a trained expert's logits per class; the distinct real image nearest each
        centroid (the coresets' k-means rule)."""
        ipc, data = self.ctx.run.ipc, self.data
        expert = int(torch.randint(len(self.buffer), (1,), generator=gen))
        theta = self.buffer.rows(expert, self.buffer.epochs, self.buffer.epochs + 1)[0].to(self.ctx.device)
        images, labels = [], []
        for c in range(data.num_classes):
            xc = data.train_x[data.train_y == c]
            logits = chunked(lambda x: self.student_forward(theta, x), xc)
            images.append(xc[kmeans_nearest(logits, ipc, seed=int(torch.randint(2**31 - 1, (1,), generator=gen)))])
            labels.append(torch.full((ipc,), c, dtype=torch.long, device=self.ctx.device))
        return torch.cat(images).detach().clone(), torch.cat(labels)

    # ---- one iteration --------------------------------------------------------------------------
    def trajectory(self, it: int) -> Trajectory:
        """Draw this iteration's expert, start epoch, minibatches and augmentations (all from the seed)."""
        cfg, ctx = self.cfg, self.ctx
        gen = generator("iteration", ctx.run.seed, it)
        expert = int(torch.randint(len(self.buffer), (1,), generator=gen))
        t = int(torch.randint(cfg.max_start_epoch, (1,), generator=gen))
        m, n = cfg.expert_epochs, cfg.syn_steps
        rows = self.buffer.rows(expert, t, t + m + 1).to(ctx.device)
        start = rows[0]
        if cfg.weight_perturb:
            start = perturb_conv_weights(start, self.layout, gen)
        targets = {n: (rows[m], 1.0)}
        if cfg.middle_loss:  # AST: match θ*_{t+i} after i·⌊N/M⌋ steps, weight 1
            for i in range(1, m):
                k = i * (n // m)
                if 0 < k < n:
                    targets[k] = (rows[i], 1.0)
        images = self.synth.images
        size = len(images)
        batch = cfg.batch_syn or size
        if cfg.flip:  # FYI: half the rows plus their flips keep the effective batch unchanged
            batch = max(batch // 2, 1)
        rows_per_step = 2 if cfg.flip else 1
        steps, queue = [], []
        for _ in range(n):
            if not queue:  # reshuffle when the synthetic set is exhausted (official indices_chunks)
                queue = list(torch.randperm(size, generator=gen).split(batch))
            index = queue.pop(0).to(ctx.device)
            aug = (self.dsa.sample(rows_per_step * len(index), tuple(images.shape[1:]), gen)
                   if self.dsa is not None else None)
            steps.append(StudentStep(index=index, augment=aug))
        self._last_start = t
        return Trajectory(forward=self.student_forward, labels=self.synth.labels, start=start, targets=targets,
                          steps=steps, dsa=self.dsa, momentum=cfg.student_momentum, flip=cfg.flip,
                          ce_scale=balance_scale(t, cfg.max_start_epoch) if cfg.balance_loss else 1.0)

    def step(self, it):
        tr = self.trajectory(it)
        images, alpha = self.synth.images, self.synth.lr
        self.opt_img.zero_grad(set_to_none=True)
        self.opt_lr.zero_grad(set_to_none=True)
        if self.cfg.grad_mode == "unrolled":
            loss_t = unrolled_loss(tr, images, alpha)
            loss_t.backward()
            loss = loss_t.item()
        else:
            loss, images.grad, alpha.grad = recompute_grads(tr, images, alpha)
        self.opt_img.step()
        self.opt_lr.step()
        return {"loss": loss, "alpha": float(alpha.detach()), "start_epoch": float(self._last_start)}

    def state_dict(self):
        return {"opt_img": self.opt_img.state_dict(), "opt_lr": self.opt_lr.state_dict()}

    def load_state_dict(self, state):
        self.opt_img.load_state_dict(state["opt_img"])
        self.opt_lr.load_state_dict(state["opt_lr"])
