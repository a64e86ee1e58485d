"""Kernel ridge regression and the kernels of the kernel family (KRR-ST, KIP, RKIP): built once, shared.

- ``Ridge``: each method's own regulariser, λ = c · tr(K) (KRR-ST, Lee et al. ICLR 2024, official
  db-Lee/selfsup_dd ``algorithms/distill.py``: c = 1e-6, λ detached) or λ = c · tr(K)/n (KIP/RKIP, Loo et al.
  ICLR 2024, official yolky/understanding_reconstruction ``distill_dataset.py``: c = 1e-5, differentiated).
- ``krr_coefficients`` / ``krr_predict``: α = (K_ss + λI)⁻¹ Y by Cholesky in float64 (K_ss is a Gram matrix
  whose conditioning, ~tr(K)/λ, is far past what float32 resolves), LU when rounding makes it indefinite;
  differentiable through ``torch.linalg`` in K_ss, Y and so in whatever built them.
- ``relu_kernels``: the closed-form NNGP and NTK of a fully connected ReLU network of any depth in the NTK
  parameterisation (the arc-cosine recursion of Cho & Saul 2009; Jacot et al. 2018; Arora et al. 2019), the
  kernels neural-tangents' ``stax.Dense``/``stax.Relu`` give. ``ReluNet(w_std=√2, b_std=0.1)`` is the kernel of
  ``audit.ntk_mlp.NTKMLP`` at infinite width.
- ``feature_kernel``: the empirical kernel [φ(x), 1][φ(x'), 1]ᵀ of a network's ``embed`` (KRR-ST's, with the
  bias column); ``empirical_ntk``: the finite-width NTK ∇θf(x)·∇θf(x') of any model, one row at a time
  (O(parameters) memory), to check the analytic kernel against.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch.func import functional_call, grad, jvp

from .errors import CondenseError

_EPS = 1e-10  # arccos is clamped this far inside ±1 (float64): its derivative is infinite at the ends


@dataclass(frozen=True)
class Ridge:
    """λ = coefficient · tr(K), divided by n when ``per_point``; ``differentiable`` keeps λ in the graph."""

    coefficient: float
    per_point: bool = False
    differentiable: bool = False

    def value(self, k: torch.Tensor) -> torch.Tensor:
        trace = torch.diagonal(k).sum()
        trace = trace if self.differentiable else trace.detach()
        return self.coefficient * trace / (k.shape[0] if self.per_point else 1)


KRR_ST_RIDGE = Ridge(1e-6)                                         # selfsup_dd: 1e-6 · tr(K_ss.detach())
RKIP_RIDGE = Ridge(1e-5, per_point=True, differentiable=True)      # understanding_reconstruction: 1e-5 · tr(K)/n


def krr_coefficients(k_ss: torch.Tensor, targets: torch.Tensor, ridge: Ridge) -> torch.Tensor:
    """α = (K_ss + λI)⁻¹ Y in float64, returned in float64 (callers multiply in float64 and cast at the end)."""
    if k_ss.dim() != 2 or k_ss.shape[0] != k_ss.shape[1] or targets.shape[0] != k_ss.shape[0]:
        raise CondenseError(f"Kernel ridge regression needs an n×n kernel and n targets, got {tuple(k_ss.shape)} "
                            f"and {tuple(targets.shape)}.")
    k = k_ss.double()
    y = targets.double()
    reg = k + ridge.value(k) * torch.eye(k.shape[0], dtype=k.dtype, device=k.device)
    chol, info = torch.linalg.cholesky_ex(reg)
    if int(info) == 0:
        return torch.cholesky_solve(y if y.dim() == 2 else y[:, None], chol).view_as(y)
    return torch.linalg.solve(reg, y)  # not positive definite after rounding (duplicate points, tiny λ)


def centred_one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Zero-mean one-hot regression targets (one-hot − 1/K, KIP's label encoding), float64."""
    return torch.nn.functional.one_hot(labels.long(), classes).double() - 1.0 / classes


def krr_predict(k_ts: torch.Tensor, k_ss: torch.Tensor, targets: torch.Tensor, ridge: Ridge) -> torch.Tensor:
    """K_ts (K_ss + λI)⁻¹ Y, in the dtype of ``targets``."""
    return (k_ts.double() @ krr_coefficients(k_ss, targets, ridge)).to(targets.dtype)


# ---- analytic kernels of a fully connected ReLU network ----------------------------------------------------
@dataclass(frozen=True)
class ReluNet:
    """``depth`` hidden Dense(width → ∞, W_std = w_std, b_std) + ReLU layers and a Dense readout (W_std =
    readout_w_std), NTK parameterisation: every layer computes (σ_w/√fan_in)·W·h + σ_b·b with W, b ~ N(0, 1).
    The defaults are Loo et al.'s distillation MLP (``stax.Dense(2048, W_std=1)`` ×2, no bias)."""

    depth: int = 2
    w_std: float = 1.0
    b_std: float = 0.0
    readout_w_std: float = 1.0

    def check(self) -> "ReluNet":
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise CondenseError(f"The ReLU kernel needs a depth of at least 1 hidden layer, got {self.depth!r}.")
        for name in ("w_std", "b_std", "readout_w_std"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise CondenseError(f"The ReLU kernel option {name} must be a finite number ≥ 0, got {v!r}.")
        return self


def _arccos_step(cross: torch.Tensor, va: torch.Tensor, vb: torch.Tensor, same: Optional[torch.Tensor]):
    """E[relu(u) relu(v)] and E[relu'(u) relu'(v)] for (u, v) ~ N(0, [[va, cross], [cross, vb]])."""
    norm = torch.sqrt(va[:, None] * vb[None, :]).clamp_min(1e-30)
    cos = (cross / norm).clamp(-1 + _EPS, 1 - _EPS)
    theta = torch.arccos(cos)
    relu = norm * (torch.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
    dot = (math.pi - theta) / (2 * math.pi)
    if same is not None:  # k(x, x): θ = 0 exactly, so the values are exact and the arccos is never differentiated
        relu = torch.where(same, (va / 2)[:, None].expand_as(relu), relu)
        dot = torch.where(same, torch.full_like(dot, 0.5), dot)
    return relu, dot


def relu_kernels(x1: torch.Tensor, x2: Optional[torch.Tensor] = None, net: ReluNet = ReluNet()
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(NNGP, NTK) between the rows of ``x1`` and ``x2`` (``x1`` itself when None), in float64, differentiable.

    Σ¹ = σ_w²·x·x'/d + σ_b², Θ¹ = Σ¹; per ReLU layer Σ^{l+1} = σ²·E[relu relu] + σ_b², Σ̇ = σ²·E[relu' relu'],
    Θ^{l+1} = Σ^{l+1} + Θ^l·Σ̇ (σ = readout_w_std on the last step). The NTK is that of one output.
    """
    net.check()
    a = x1.flatten(1).double()
    b = a if x2 is None else x2.flatten(1).double()
    if a.shape[1] != b.shape[1]:
        raise CondenseError(f"Kernel inputs of {a.shape[1]} and {b.shape[1]} features cannot be compared.")
    d = a.shape[1]
    same = torch.eye(len(a), dtype=torch.bool, device=a.device) if x2 is None else None
    w2, b2 = net.w_std ** 2, net.b_std ** 2
    cross = w2 * (a @ b.T) / d + b2
    va, vb = w2 * a.pow(2).sum(1) / d + b2, w2 * b.pow(2).sum(1) / d + b2
    ntk = cross
    for layer in range(net.depth):
        s2 = net.readout_w_std ** 2 if layer == net.depth - 1 else w2
        relu, dot = _arccos_step(cross, va, vb, same)
        cross = s2 * relu + b2
        ntk = cross + ntk * (s2 * dot)
        va, vb = s2 * va / 2 + b2, s2 * vb / 2 + b2
    return cross, ntk


def relu_ntk(x1: torch.Tensor, x2: Optional[torch.Tensor] = None, net: ReluNet = ReluNet(), chunk: int = 1024
             ) -> torch.Tensor:
    """The NTK alone, computed ``chunk`` rows of ``x1`` at a time (the recursion holds a few n×m temporaries)."""
    if x2 is None and len(x1) <= chunk:
        return relu_kernels(x1, None, net)[1]
    other = x1 if x2 is None else x2
    return torch.cat([relu_kernels(x1[i:i + chunk], other, net)[1] for i in range(0, len(x1), chunk)])


# ---- empirical kernels --------------------------------------------------------------------------------------
def with_bias(features: torch.Tensor) -> torch.Tensor:
    """[φ, 1]: the bias column that lets KRR fit an offset (KRR-ST)."""
    return torch.cat([features, features.new_ones(len(features), 1)], 1)


def feature_kernel(f1: torch.Tensor, f2: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[φ(x), 1][φ(x'), 1]ᵀ for feature rows (``f1`` with itself when ``f2`` is None)."""
    a = with_bias(f1)
    return a @ (a if f2 is None else with_bias(f2)).T


def embed_in_chunks(embed: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """``embed`` over ``x`` in chunks (keeps activation memory bounded; gradients flow when enabled)."""
    return torch.cat([embed(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def empirical_ntk(model: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor, output: int = 0) -> torch.Tensor:
    """Θ(x1, x2) = ∇θ f_out(x1) · ∇θ f_out(x2) at the model's current parameters (buffers as they are).

    Row i is one gradient (backward) and one Jacobian-vector product over ``x2``, so memory is that of a
    few parameter copies, never the n×P Jacobian.
    """
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, x):
        return functional_call(model, p, (x,))[:, output]

    rows = []
    for i in range(len(x1)):
        g = grad(lambda p: f(p, x1[i:i + 1]).sum())(params)
        rows.append(jvp(lambda p: f(p, x2), (params,), (g,))[1])
    return torch.stack(rows)
