"""The KKT / NTK reconstruction attack on a trained network (Haim et al. 2022; Loo et al., ICLR 2024; official
yolky/understanding_reconstruction).

Full-batch gradient descent leaves the parameters at θ_final = θ_init + Σ_t Σ_j Σ_k c_tjk ∇θ f_k^{θ_t}(x_j);
in the lazy (wide-network) regime ∇θ f^{θ_t} ≈ ∇θ f^{θ_final}, so Δθ ≈ Σ_j Σ_k α_jk ∇θ f_k(x_j) with the
training points x_j. The attack optimises candidates x_j and dual coefficients α_j to satisfy that
stationarity condition.

Multi-class outputs: α_j ∈ R^K with one coefficient per output (Σ_j Σ_k α_jk ∇θ f_k(x_j)). That is
exactly the form GD with any loss on K outputs produces (the coefficient of ∇θ f_k(x_j) is −η ∂L/∂f_k),
so it needs no label knowledge; the binary ±1 case of Loo et al. is the K = 1 special case. The sum is
the gradient of the scalar Σ α ⊙ f(X) with respect to θ, so one double backward (torch.func.grad over
``functional_call``) replaces per-example Jacobians: the cost is that of two backward passes, not 2N·K.

ReLU has a zero second derivative almost everywhere, so the gradient with respect to x of a function of
∇θ f would only see the activation pattern; every ``nn.ReLU`` is therefore replaced by softplus with
β annealed from 10 to 200 (β_i = min(β₀ + 10^(decades·i/iterations), β_max); decades = 4 reproduces
Loo et al.'s 10^(i/20000) over their 80k iterations and reaches β_max at ≈ 57% of the run).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad

from ..errors import CondenseError


@dataclass
class KKTConfig:
    candidates_factor: float = 2.0   # 2N candidates (Loo et al.'s amp_factor)
    iterations: int = 6000           # Loo et al. use 80k (GPU); CPU budgets are stated in reports
    lr: float = 0.02                 # Adam, on both images and α
    init_std: float = 0.2            # x ~ init_std · N(0, 1) in the model's input space
    alpha_init: float = 0.5          # α ~ U(−alpha_init, alpha_init)
    beta_start: float = 10.0
    beta_max: float = 200.0
    beta_decades: float = 4.0        # β_i = min(beta_start + 10^(beta_decades · i / iterations), beta_max)
    box_weight: float = 0.1          # weight of Σ_pixels ReLU(x − hi)² + ReLU(lo − x)², mean over candidates
    use_init: bool = True            # match θ_final − θ_init (θ_init saved) or θ_final alone
    balance: str = "global"          # "global": ‖Δθ − G‖²/‖Δθ‖²; "tensor": mean over tensors of ‖Δθ_l − G_l‖²/‖Δθ_l‖²

    def validate(self) -> None:
        if not (self.candidates_factor > 0 and math.isfinite(self.candidates_factor)):
            raise CondenseError(f"candidates_factor must be a positive number, got {self.candidates_factor}.")
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise CondenseError(f"The attack needs a positive whole number of iterations, got {self.iterations}.")
        for name in ("lr", "init_std", "beta_start", "beta_max", "beta_decades"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise CondenseError(f"Attack option {name} must be a positive number, got {v}.")
        if not (self.alpha_init >= 0 and self.box_weight >= 0):
            raise CondenseError("Attack options alpha_init and box_weight must not be negative.")
        if self.beta_max < self.beta_start:
            raise CondenseError(f"beta_max ({self.beta_max}) must be at least beta_start ({self.beta_start}).")

    def beta(self, i: int) -> float:
        return min(self.beta_start + 10.0 ** (self.beta_decades * i / self.iterations), self.beta_max)


@dataclass
class KKTResult:
    images: torch.Tensor                 # (M, C, H, W) reconstructions in the model's input space
    alpha: torch.Tensor                  # (M, K) dual coefficients
    residual: float                      # final ‖Δθ − Σ α ∇f‖² / ‖Δθ‖² (at the final β)
    history: list[tuple[int, float]] = field(default_factory=list)   # (iteration, relative residual)


class _Softplus(nn.Module):
    """Softplus whose β the attack anneals in place (one module object shared by the whole copy)."""

    def __init__(self):
        super().__init__()
        self.beta = 10.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x, beta=self.beta)


def smoothed_copy(model: nn.Module) -> tuple[nn.Module, _Softplus]:
    """A deep copy of ``model`` with every ``nn.ReLU`` replaced by one shared annealable softplus."""
    smooth = copy.deepcopy(model)
    act = _Softplus()
    found = False
    for parent in smooth.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, act)
                found = True
    if not found:
        raise CondenseError("The reconstruction attack needs a network whose activations are nn.ReLU modules.")
    return smooth, act


def reconstruct(model: nn.Module, theta_final: dict[str, torch.Tensor], theta_init: Optional[dict[str, torch.Tensor]],
                num_points: int, input_shape: tuple[int, ...], box: tuple[torch.Tensor, torch.Tensor],
                cfg: KKTConfig, generator: torch.Generator, log: Callable[[str], None] = lambda m: None,
                log_every: int = 0) -> KKTResult:
    """Run the attack on a network of ``model``'s architecture with parameters ``theta_final``.

    ``box`` = (lo, hi) broadcastable to one image: the valid input range (e.g. normalised 0 and 1).
    ``num_points`` is the attacker's guess of the training-set size N; 2N candidates are optimised.
    """
    cfg.validate()
    if cfg.use_init and theta_init is None:
        raise CondenseError("use_init is set but no θ_init was given; pass it or set use_init=false.")
    device = next(iter(theta_final.values())).device
    smooth, act = smoothed_copy(model)
    smooth.to(device)
    params = {k: v.detach() for k, v in theta_final.items()}
    target = {k: (v - theta_init[k].to(device)).detach() if cfg.use_init else v for k, v in params.items()}
    sq = {n: float(t.pow(2).sum()) for n, t in target.items()}
    norm = sum(sq.values())
    if cfg.balance == "tensor":
        weight = {n: 1.0 / (len(sq) * v) for n, v in sq.items() if v > 0}
    else:
        weight = {n: 1.0 / norm for n in sq} if norm > 0 else {}
    if norm == 0.0:
        raise CondenseError("The target network's parameters did not move from θ_init; nothing to reconstruct.")

    m = max(1, round(cfg.candidates_factor * num_points))
    with torch.no_grad():
        k = functional_call(smooth, params, (torch.zeros(1, *input_shape, device=device),)).shape[-1]
    x = (cfg.init_std * torch.randn(m, *input_shape, generator=generator)).to(device).requires_grad_(True)
    alpha = ((torch.rand(m, k, generator=generator) * 2 - 1) * cfg.alpha_init).to(device).requires_grad_(True)
    lo, hi = (b.to(device) for b in box)

    def weighted_output(p, xs, a):
        return (functional_call(smooth, p, (xs,)) * a).sum()

    param_grad = grad(weighted_output)     # Σ_j Σ_k α_jk ∇θ f_k(x_j), differentiable in x and α
    opt = torch.optim.Adam([x, alpha], lr=cfg.lr)
    history: list[tuple[int, float]] = []
    residual = float("nan")
    for i in range(int(cfg.iterations)):
        act.beta = cfg.beta(i)
        g = param_grad(params, x, alpha)
        match = sum(w * (target[n] - g[n]).pow(2).sum() for n, w in weight.items())
        box_pen = (F.relu(x - hi).pow(2) + F.relu(lo - x).pow(2)).flatten(1).sum(1).mean()
        loss = match + cfg.box_weight * box_pen
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        residual = float(match.detach())
        if not math.isfinite(residual):
            raise CondenseError(f"The reconstruction attack diverged at iteration {i} (non-finite loss); "
                                f"lower its lr.")
        if log_every and (i % log_every == 0 or i == cfg.iterations - 1):
            history.append((i, residual))
            log(f"kkt {i}/{cfg.iterations}: residual {residual:.4f} box {float(box_pen.detach()):.4f} beta {act.beta:.1f}")
    return KKTResult(images=x.detach(), alpha=alpha.detach(), residual=residual, history=history)
