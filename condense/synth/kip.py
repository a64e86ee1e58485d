"""KIP and RKIP: kernel inducing points under the analytic NTK of a wide ReLU MLP (Nguyen, Chen, Lee, ICLR 2021;
Loo, Hasani, Lechner, Amini, Rus, ICLR 2024, official yolky/understanding_reconstruction ``distill_dataset.py``).

Support images X_s (IPC per class) and their regression targets Y_s (one-hot − 1/K to start; learned unless
``learn_labels`` is off) are optimised with Adam (lr 1e-3) against real images X_t with targets Y_t, under the
closed-form NTK Θ of ``depth`` hidden ReLU layers (``kernels.relu_kernels``; Loo et al.: 2 × 2048, W_std 1,
no bias), with λ = 1e-5 · tr(K)/n (``kernels.RKIP_RIDGE``):

- ``kip``:  ½ · mean((Y_t − Θ_ts (Θ_ss + λI)⁻¹ Y_s)²), the kernel regression loss.
- ``rkip``: ½ ‖f_s − f_t‖²_H = ½ Σ_k (α_sᵀ Θ_ss α_s − 2 α_tᵀ Θ_ts α_s + α_tᵀ Θ_tt α_t), α = (Θ + λI)⁻¹ Y: the RKHS
  distance between the kernel machines fitted to the support set and to the real data, which is the
  reconstruction attack's loss written in kernel form (the official code is binary with one output, where
  the sum over outputs is one term).

X_t is the whole training split by default, as in Loo et al. (``target_batch`` draws a random batch per
iteration instead); then α_t and the constant term are computed once, when the run starts. Initialisation:
real images (KIP's default), or ``init=noise``: noise_std · N(0, 1) in the normalised space (Loo et al.'s
0.2). Loo et al.'s script keeps Y_s fixed unless ``--learn_labels`` is given (its README runs omit it); learning
Y_s frees α_s = (Θ_ss + λI)⁻¹ Y_s as the attack frees its dual coefficients; ``learn_labels=false`` is theirs.
``--min-distance`` adds Loo et al.'s defence (penalty 50·mean((d − min(d, d_i))²) plus the projection; their
distances are squared L2 between images clipped to the training range, here L2 in [0, 1] pixels).
Learned targets are stored as ``logits`` labels (N×K; their argmax is the class); fixed ones as hard labels.
Every draw of iteration i comes from ``generator("iteration", seed, i)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import CondenseError
from ..kernels import ReluNet, Ridge, centred_one_hot, krr_coefficients, relu_ntk
from ..seeding import generator
from .base import MethodConfig, Synthesizer, register_method
from .defence import MinDistance, MinDistanceConfig
from .init import initial_images

FULL_SPLIT_LIMIT = 10_000  # above this many training images the whole-split kernel would hold 800 MB: ask for a batch


@dataclass
class KIPConfig(MethodConfig, MinDistanceConfig):
    iterations: int = 1000        # CPU-sized; Loo et al. run 50,000
    lr_img: float = 1e-3          # Adam on the images and the learned targets
    learn_labels: bool = True
    init: str = "real"            # real | noise
    noise_std: float = 0.2        # init=noise: images = noise_std · N(0, 1) in the normalised space
    target_batch: int = 0         # real images per iteration; 0 = the whole training split
    depth: int = 2                # hidden ReLU layers of the NTK's MLP
    w_std: float = 1.0
    b_std: float = 0.0
    ridge: float = 1e-5           # λ = ridge · tr(K)/n


@register_method
class KIP(Synthesizer):
    name = "kip"
    config_cls = KIPConfig
    rkip = False

    def init(self):
        cfg, ctx = self.cfg, self.ctx
        k, n_train = ctx.dataset.num_classes, len(ctx.dataset.train_y)
        if cfg.target_batch == 0 and n_train > FULL_SPLIT_LIMIT:
            raise CondenseError(f"{self.name} compares the set with the whole training split by default, but "
                                f"{ctx.dataset.name} has {n_train} images (more than {FULL_SPLIT_LIMIT:,}); pass "
                                f"--set target_batch=N to draw N real images per iteration.")
        self.kernel = ReluNet(cfg.depth, cfg.w_std, cfg.b_std).check()
        self.ridge = Ridge(cfg.ridge, per_point=True, differentiable=True)
        images, labels, _ = initial_images(ctx.sampler, k, ctx.run.ipc, cfg.init,
                                           generator("iteration", ctx.run.seed, -1), ctx.device)
        if cfg.init == "noise":
            images = images * cfg.noise_std
        images.requires_grad_(True)
        params = [images]
        if cfg.learn_labels:
            stored = centred_one_hot(labels, k).float().requires_grad_(True)
            params.append(stored)
            self.synth = self.new_synthset(images, stored, label_kind="logits")
        else:
            self.synth = self.new_synthset(images, labels, label_kind="hard")
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr_img)
        self.defence = MinDistance.of(cfg, ctx.dataset)
        self.whole: Optional[tuple[torch.Tensor, ...]] = None  # X_t, Y_t, α_t, constant: built at the first step
        return self.synth

    def support_targets(self) -> torch.Tensor:
        s = self.synth
        return s.labels.double() if self.cfg.learn_labels else centred_one_hot(s.labels, s.num_classes)

    def _real(self, it: int) -> tuple[torch.Tensor, ...]:
        """(X_t, Y_t, α_t, α_tᵀΘ_ttα_t) of iteration ``it``: the whole split (computed once) or a random batch."""
        data, cfg = self.ctx.dataset, self.cfg
        if cfg.target_batch == 0 and self.whole is not None:
            return self.whole
        if cfg.target_batch:
            rows = torch.randperm(len(data.train_y), generator=generator("iteration", self.ctx.run.seed, it))
            rows = rows[:cfg.target_batch].to(data.train_x.device)
            x, y = data.train_x[rows], data.train_y[rows]
        else:
            x, y = data.train_x, data.train_y
        targets = centred_one_hot(y, data.num_classes)
        alpha, constant = None, None
        if self.rkip:
            with torch.no_grad():
                k_tt = relu_ntk(x, None, self.kernel)
                alpha = krr_coefficients(k_tt, targets, self.ridge)
                constant = (alpha * (k_tt @ alpha)).sum()
                del k_tt
        out = (x, targets, alpha, constant)
        if cfg.target_batch == 0:
            self.whole = out
        return out

    def objective(self, x_t, y_t, alpha_t, constant) -> torch.Tensor:
        x_s, y_s = self.synth.images, self.support_targets()
        k_ss = relu_ntk(x_s, None, self.kernel)
        k_ts = relu_ntk(x_t, x_s, self.kernel)
        alpha_s = krr_coefficients(k_ss, y_s, self.ridge)
        if self.rkip:
            return 0.5 * ((alpha_s * (k_ss @ alpha_s)).sum() - 2 * (alpha_t * (k_ts @ alpha_s)).sum() + constant)
        return 0.5 * (y_t - k_ts @ alpha_s).pow(2).mean()

    def step(self, it):
        loss = self.objective(*self._real(it))
        total = loss + self.defence.penalty(self.synth.images) if self.defence is not None else loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.defence is not None:
            self.defence.project(self.synth.images.data)
        return {"loss": loss.item()}

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])


@dataclass
class RKIPConfig(KIPConfig):
    pass


@register_method
class RKIP(KIP):
    """RKIP (Loo et al., ICLR 2024): KIP with the reconstruction (RKHS-distance) loss."""

    name = "rkip"
    config_cls = RKIPConfig
    rkip = True
