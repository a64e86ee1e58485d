"""Membership scores from per-model, per-point signals (numpy; higher score = "member").

Shapes: a target model's signal on C canaries is ``(C,)``; reference (shadow) models give
``(R, C)`` plus an ``(R, C)`` boolean IN mask. Attacks:

- LiRA (Carlini et al. 2022) on the logit-scaled confidence φ = log p_y − log(1 − p_y) of the
  true class, Gaussian per point with a *fixed* (global) variance: online = log N(φ; μ_in, σ_in) −
  log N(φ; μ_out, σ_out); offline = the one-sided test against the OUT Gaussian, (φ − μ_out)/σ_out.
- RMIA (Zarifzadeh et al. 2024): LR(x, z) = [Pr(x|θ)/Pr(x)] / [Pr(z|θ)/Pr(z)] with Pr(·|θ) the
  true-class probability and Pr(x) averaged over reference models; score = fraction of population
  points z (never trained on) with LR ≥ γ (ties within one count ordered by LR, see
  ``smooth_fraction_below``). Online Pr(x) = ½(mean IN + mean OUT); offline uses
  Pr_IN ≈ a·Pr_OUT + (1 − a), i.e. Pr(x) = ½((1 + a)·Pr_OUT + (1 − a)), for x and z alike, with
  ``a`` picked by grid search with each reference model in turn as a stand-in target.
- Loss threshold (Yeom et al. 2018): −cross-entropy of the target, no reference models.
- Data level: −min L2 distance from the canary to the released set (no model at all).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy.special import logsumexp

from ..neighbours import nearest_distance
from .mia_stats import auc


# ---- signals ---------------------------------------------------------------------------------
def true_class_logprob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log softmax(logits)[y], stable; logits (..., C, K), labels (C,)."""
    logits = np.asarray(logits, dtype=np.float64)
    lp = logits - logsumexp(logits, axis=-1, keepdims=True)
    return np.take_along_axis(lp, np.broadcast_to(labels[..., None], lp.shape[:-1] + (1,)), -1)[..., 0]


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """φ = log(p_y / (1 − p_y)) computed as z_y − logsumexp(z_{k≠y}) (no 1 − p cancellation)."""
    logits = np.asarray(logits, dtype=np.float64)
    idx = np.broadcast_to(labels[..., None], logits.shape[:-1] + (1,))
    true = np.take_along_axis(logits, idx, -1)[..., 0]
    others = logits.copy()
    np.put_along_axis(others, idx, -np.inf, -1)
    return true - logsumexp(others, axis=-1)


# ---- LiRA ------------------------------------------------------------------------------------
def _masked_mean(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = mask.sum(0)
    return np.where(n > 0, (x * mask).sum(0) / np.maximum(n, 1), np.nan), n


def _pooled_std(x: np.ndarray, mask: np.ndarray, mean: np.ndarray) -> float:
    """Global σ: residuals from each point's own mean, pooled over points (the fixed-variance LiRA)."""
    ok = mask & np.isfinite(mean)[None, :]
    if ok.sum() < 2:
        return 1.0
    return float(max(np.sqrt(((x - mean[None, :]) ** 2)[ok].sum() / max(ok.sum() - 1, 1)), 1e-6))


def lira_scores(phi: np.ndarray, ref_phi: np.ndarray, ref_in: np.ndarray, online: bool = True) -> np.ndarray:
    """LiRA with fixed variance; ``phi`` (C,), ``ref_phi``/``ref_in`` (R, C).

    A point with no IN (or no OUT) reference borrows the average IN − OUT shift of the others,
    which only happens with very few shadows (e.g. 2).
    """
    ref_in = np.asarray(ref_in, dtype=bool)
    mu_out, n_out = _masked_mean(ref_phi, ~ref_in)
    sd_out = _pooled_std(ref_phi, ~ref_in, mu_out)
    if not online:
        mu_out = np.where(n_out > 0, mu_out, np.nanmean(mu_out) if np.isfinite(mu_out).any() else 0.0)
        return (phi - mu_out) / sd_out
    mu_in, n_in = _masked_mean(ref_phi, ref_in)
    sd_in = _pooled_std(ref_phi, ref_in, mu_in)
    both = (n_in > 0) & (n_out > 0)
    shift = float(np.mean(mu_in[both] - mu_out[both])) if both.any() else 0.0
    mu_in = np.where(n_in > 0, mu_in, mu_out + shift)
    mu_out = np.where(n_out > 0, mu_out, mu_in - shift)
    return _log_normal(phi, mu_in, sd_in) - _log_normal(phi, mu_out, sd_out)


def _log_normal(x, mu, sd):
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd)


# ---- RMIA ------------------------------------------------------------------------------------
def rmia_denominator(ref_p: np.ndarray, ref_in: Optional[np.ndarray], a: Optional[float]) -> np.ndarray:
    """Pr(x) from reference models: online ½(IN + OUT means) when ``a`` is None, else the offline
    formula on the OUT references alone (IN flags mark the models an offline attacker never has)."""
    ref_p = np.asarray(ref_p, dtype=np.float64)
    ref_in = np.zeros(ref_p.shape, bool) if ref_in is None else np.asarray(ref_in, dtype=bool)
    p_out, n_out = _masked_mean(ref_p, ~ref_in)
    if a is not None:
        p_out = np.where(n_out > 0, p_out, np.nanmean(p_out) if np.isfinite(p_out).any() else 0.0)
        return 0.5 * ((1 + a) * p_out + (1 - a))
    p_in, n_in = _masked_mean(ref_p, ref_in)
    # A point lacking one side (very few shadows) falls back to the mean of the side it has.
    p_in = np.where(n_in > 0, p_in, p_out)
    p_out = np.where(n_out > 0, p_out, p_in)
    return 0.5 * (p_in + p_out)


def rmia_scores(p_x: np.ndarray, ref_p_x: np.ndarray, ref_in: np.ndarray, p_z: np.ndarray, ref_p_z: np.ndarray,
                gamma: float = 1.0, a: Optional[float] = None) -> np.ndarray:
    """RMIA score per canary: the fraction of population points z with LR(x, z) ≥ γ, ties broken.

    ``p_x`` (C,) / ``p_z`` (Z,): the target's true-class probabilities; ``ref_p_*`` (R, ·) the
    references'. Population points were never trained on, so all references are OUT for them; in
    online mode Pr(z) is their plain mean, in offline mode the same ``a`` formula as for x.
    """
    ratio_x = p_x / np.maximum(rmia_denominator(ref_p_x, ref_in, a), 1e-30)
    pz_den = rmia_denominator(ref_p_z, None, a) if a is not None else np.asarray(ref_p_z, np.float64).mean(0)
    ratio_z = p_z / np.maximum(pz_den, 1e-30)
    # LR(x, z) >= γ  <=>  ratio_z <= ratio_x / γ
    return smooth_fraction_below(np.log(np.maximum(ratio_z, 1e-300)),
                                 np.log(np.maximum(ratio_x, 1e-300)) - np.log(gamma))


def smooth_fraction_below(ref: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(k + u) / (Z + 1): k = #{ref <= x} (RMIA's count), u ∈ [0, 1) = x's position inside its bracket.

    Thresholds at k / (Z + 1) give exactly the paper's decisions; u only orders points with the same
    count, which otherwise tie: every x beyond the largest population ratio would score 1, which
    flattens the low-FPR end of the ROC (seen on a 200-point population).
    """
    ref = np.sort(np.asarray(ref, np.float64))
    x = np.asarray(x, np.float64)
    k = np.searchsorted(ref, x, side="right")
    lo = ref[np.maximum(k - 1, 0)]
    hi = ref[np.minimum(k, len(ref) - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        mid = (x - lo) / (hi - lo)
    u = np.where(k == 0, np.exp(np.minimum(x - ref[0], 0.0)),           # below every z: (0, 1)
                 np.where(k == len(ref), 1 - np.exp(-(x - ref[-1])),    # beyond every z: [0, 1)
                          np.nan_to_num(mid, nan=0.0)))
    return (k + np.clip(u, 0.0, 1 - 1e-12)) / (len(ref) + 1)


def rmia_choose_a(ref_p_x: np.ndarray, ref_in: np.ndarray, ref_p_z: np.ndarray, gamma: float = 1.0,
                  grid: Sequence[float] = tuple(np.round(np.linspace(0, 1, 11), 2))) -> float:
    """Offline ``a`` by grid search: each reference model in turn is the target, the rest (OUT only) attack it.

    Uses only reference models, never the audited target. Criterion: mean AUC over stand-in targets.
    """
    ref_p_x, ref_in, ref_p_z = np.asarray(ref_p_x, np.float64), np.asarray(ref_in, bool), np.asarray(ref_p_z)
    r = len(ref_p_x)
    if r < 2:  # no model left to attack a stand-in target with
        return 1.0
    totals, counted = np.zeros(len(grid)), 0
    for t in range(r):
        member = ref_in[t]
        if member.all() or not member.any():
            continue
        others = np.arange(r) != t
        p_out, n_out = _masked_mean(ref_p_x[others], ~ref_in[others])
        p_out = np.where(n_out > 0, p_out, np.nanmean(p_out) if np.isfinite(p_out).any() else 0.0)
        pz_out = ref_p_z[others].mean(0)
        for j, a in enumerate(grid):  # the same arithmetic as rmia_scores(..., a=a), with the means hoisted
            ratio_x = ref_p_x[t] / np.maximum(0.5 * ((1 + a) * p_out + (1 - a)), 1e-30)
            ratio_z = ref_p_z[t] / np.maximum(0.5 * ((1 + a) * pz_out + (1 - a)), 1e-30)
            totals[j] += auc(smooth_fraction_below(np.log(np.maximum(ratio_z, 1e-300)),
                                                   np.log(np.maximum(ratio_x, 1e-300)) - np.log(gamma)), member)
        counted += 1
    return float(grid[int(np.argmax(totals))]) if counted else 1.0


# ---- simple attacks --------------------------------------------------------------------------
def loss_scores(logprob_true: np.ndarray) -> np.ndarray:
    """Loss threshold: −CE = log p_y; no calibration, so hard examples look like non-members."""
    return np.asarray(logprob_true, dtype=np.float64)


def distance_scores(canaries: np.ndarray, released: np.ndarray) -> np.ndarray:
    """−min L2 distance from each canary (C, ...) to the released images (N, ...); exact."""
    return -nearest_distance(canaries, released)
