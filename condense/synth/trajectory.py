"""The trajectory-matching objective and its gradient, in two interchangeable ways.

A student starts at θ_0 (an expert snapshot), takes N SGD steps on minibatches of the synthetic
set (optionally with heavy-ball momentum μ: b ← μ·b + g, θ ← θ − α·b), and is scored by
Σ_k w_k ‖θ_k − T_k‖² / ‖θ_0 − T_k‖² over the target steps k (the final step N, plus AST's
intermediate steps). We need d/d(images) and d/dα.

- ``unrolled``: keep the whole N-step graph (create_graph=True) and call backward. Memory grows
  with N × the activations of one step.
- ``recompute`` (the TESLA idea): run the steps without a graph, keeping only the flat parameter
  vectors θ_i (and momenta b_i), then walk backward; at each step i rebuild only that step's graph,
  and push the adjoints through it with one vector-Hessian product. Activation memory is one
  step's, whatever N; the extra memory is N parameter vectors. The gradient is the same (exact
  reverse-mode), up to float rounding.

Every random choice (minibatch indices, DSA parameters) is drawn before either pass, so both
passes and both modes see identical steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..augment import DSA, DSAParams, hflip_concat

GRAD_MODES = ("unrolled", "recompute")


@dataclass
class StudentStep:
    index: torch.Tensor              # rows of the synthetic set used by this step
    augment: Optional[DSAParams]     # non-siamese DSA draw for those rows (None: no augmentation)


@dataclass
class Trajectory:
    """One outer iteration's problem: everything fixed except the images and α."""

    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (flat θ, x) -> logits
    labels: torch.Tensor
    start: torch.Tensor                                 # θ_0, flat
    targets: dict[int, tuple[torch.Tensor, float]]      # step k -> (T_k, weight); k = N is the final one
    steps: list[StudentStep]
    dsa: Optional[DSA] = None
    ce_scale: float = 1.0                               # AST balanced loss
    momentum: float = 0.0                               # student heavy-ball momentum (AST: 0.9)
    flip: bool = False                                  # FYI: each minibatch becomes [x; hflip(x)] before DSA

    def inner_loss(self, theta: torch.Tensor, images: torch.Tensor, i: int) -> torch.Tensor:
        step = self.steps[i]
        x, y = images[step.index], self.labels[step.index]
        if self.flip:
            x, y = hflip_concat(x, y)
        if self.dsa is not None and step.augment is not None:
            x = self.dsa.apply(x, step.augment)
        return self.ce_scale * F.cross_entropy(self.forward(theta, x), y)

    def denominators(self) -> dict[int, torch.Tensor]:
        return {k: ((self.start - t) ** 2).sum() for k, (t, _) in self.targets.items()}


def unrolled_loss(tr: Trajectory, images: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The matching loss with the full N-step graph attached (call ``.backward()`` on it)."""
    den = tr.denominators()
    theta = tr.start.detach().requires_grad_(True)
    b: Optional[torch.Tensor] = None
    loss = images.new_zeros(())
    for i in range(len(tr.steps)):
        g = torch.autograd.grad(tr.inner_loss(theta, images, i), theta, create_graph=True)[0]
        b = g if b is None or tr.momentum == 0 else tr.momentum * b + g
        theta = theta - alpha * b
        if i + 1 in tr.targets:
            target, w = tr.targets[i + 1]
            loss = loss + w * ((theta - target) ** 2).sum() / den[i + 1]
    return loss


def recompute_grads(tr: Trajectory, images: torch.Tensor, alpha: torch.Tensor
                    ) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(loss, d loss/d images, d loss/d α) with one step's graph alive at a time."""
    n, mu = len(tr.steps), tr.momentum
    a = alpha.detach()
    frozen = images.detach()
    # Forward: plain SGD steps, no graph kept; remember θ_i (and b_{i+1} when μ > 0).
    thetas = [tr.start.detach()]
    momenta: list[torch.Tensor] = []
    b: Optional[torch.Tensor] = None
    for i in range(n):
        th = thetas[-1].requires_grad_(True)
        with torch.enable_grad():
            g = torch.autograd.grad(tr.inner_loss(th, frozen, i), th)[0]
        th.requires_grad_(False)
        b = g if b is None or mu == 0 else mu * b + g
        if mu != 0:
            momenta.append(b)
        thetas.append((thetas[-1] - a * b).detach())
    # Loss and its gradient at each target step (analytic: d/dθ w‖θ−T‖²/D = 2w(θ−T)/D).
    den = tr.denominators()
    loss = 0.0
    seeds: dict[int, torch.Tensor] = {}
    for k, (target, w) in tr.targets.items():
        diff = thetas[k] - target
        loss += float(w * (diff ** 2).sum() / den[k])
        seeds[k] = 2 * w * diff / den[k]
    # Backward: adjoints λ = dL/dθ_{i+1}, λ_b = dL/db_{i+1} through b_{i+2} only.
    lam = seeds.get(n, torch.zeros_like(tr.start))
    lam_b = torch.zeros_like(tr.start)
    grad_alpha = torch.zeros((), dtype=tr.start.dtype, device=tr.start.device)
    grad_images = torch.zeros_like(images)
    leaf = images.detach().requires_grad_(True)
    for i in reversed(range(n)):
        th = thetas[i].clone().requires_grad_(True)
        with torch.enable_grad():
            g = torch.autograd.grad(tr.inner_loss(th, leaf, i), th, create_graph=True)[0]
            b_next = momenta[i] if mu != 0 else g.detach()
            grad_alpha -= (b_next * lam).sum()            # θ_{i+1} = θ_i − α b_{i+1}
            lam_b_total = lam_b - a * lam
            h_theta, h_images = torch.autograd.grad(g, (th, leaf), grad_outputs=lam_b_total)
        lam = lam + h_theta
        grad_images += h_images
        lam_b = mu * lam_b_total
        if i in seeds and i > 0:  # an intermediate target sits at θ_i
            lam = lam + seeds[i]
    return loss, grad_images, grad_alpha
