"""Train an attack target the way Loo et al. do: full-batch gradient descent to (near) convergence, θ_init kept.

Full-batch GD (no minibatches, no momentum, no augmentation, no weight decay) is the setting in which
Δθ is a combination of per-example gradients that the KKT attack inverts; it is also the most
favourable to the attacker, which is what an audit should assume.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, jvp, vjp

from ..errors import CondenseError

LOSSES = ("mse", "ce")


@dataclass
class TrainedTarget:
    theta_init: dict[str, torch.Tensor]
    theta_final: dict[str, torch.Tensor]
    final_loss: float
    train_acc: float
    steps: int


def regression_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot rows for hard labels; soft-label rows are regressed on as they are."""
    return labels.float() if labels.dim() == 2 else F.one_hot(labels.long(), num_classes).float()


def max_curvature(model: nn.Module, x: torch.Tensor, iters: int = 30, seed: int = 0) -> float:
    """Largest eigenvalue of J Jᵀ / N (the MSE loss Hessian in function space, J = ∂f(X)/∂θ) by power iteration.

    GD on ½‖f − y‖²/N is stable for lr < 2/λ and, in the linearised (lazy) model, converges fastest
    along the top direction at lr = 1/λ; an automatic lr of ``fraction/λ`` adapts to N, width and input
    scale. Each iteration is one VJP and one JVP.
    """
    params = {k: v.detach() for k, v in model.named_parameters()}
    f = lambda p: functional_call(model, p, (x,))  # noqa: E731
    out, pullback = vjp(f, params)
    v = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out)
    lam = 0.0
    for _ in range(iters):
        v = v / v.norm()
        (u,) = pullback(v)
        _, jv = jvp(f, (params,), (u,))
        jv = jv / x.shape[0]
        lam = float((jv * v).sum())
        v = jv
    return lam


def train_full_batch(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, num_classes: int, *, steps: int,
                     lr: float, loss: str = "mse") -> TrainedTarget:
    """Plain GD on the whole set: MSE is ½‖f(x) − y‖² summed over outputs, averaged over points."""
    if loss not in LOSSES:
        raise CondenseError(f"Unknown target loss '{loss}'; choose mse or ce.")
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    theta_init = {k: v.clone() for k, v in params.items()}
    y = regression_targets(labels, num_classes).to(x.device)
    hard = labels.argmax(1) if labels.dim() == 2 else labels
    hard = hard.to(x.device)

    def objective(p):
        out = functional_call(model, p, (x,))
        if loss == "mse":
            return 0.5 * (out - y).pow(2).sum(1).mean(), out
        return F.cross_entropy(out, y if labels.dim() == 2 else hard), out

    for p in params.values():
        p.requires_grad_(True)
    value = float("nan")
    for _ in range(int(steps)):
        value_t, _ = objective(params)
        grads = torch.autograd.grad(value_t, list(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads):
                p.sub_(lr * g)
        value = float(value_t.detach())
        if not torch.isfinite(value_t):
            raise CondenseError(f"Training the attack target diverged (loss {value}); lower target_lr.")
    with torch.no_grad():
        value_t, out = objective(params)
        acc = float((out.argmax(1) == hard).float().mean())
    return TrainedTarget(theta_init=theta_init, theta_final={k: v.detach() for k, v in params.items()},
                         final_loss=float(value_t), train_acc=acc, steps=int(steps))
