"""Statistics of a membership-inference attack: ROC, AUC, TPR at a fixed FPR with exact intervals.

Pure numpy/scipy functions on (scores, is_member) arrays; a higher score means "member".
Low-FPR numbers are what matter for privacy (Carlini et al. 2022), so the TPR at 0.1% and 1% FPR
comes with a Clopper–Pearson 95% interval on the member count, and the ROC is drawn log-log.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st

from ..figures import new_figure, save_figure


def roc_curve(scores: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, from (0, 0) to (1, 1); predict member when score >= t.

    Tied scores form one step, so a constant attack gives the diagonal's two end points only.
    """
    scores = np.asarray(scores, dtype=float)
    member = np.asarray(member, dtype=bool)
    if scores.shape != member.shape or scores.ndim != 1:
        raise ValueError("scores and member must be 1-D arrays of the same length")
    pos, neg = int(member.sum()), int((~member).sum())
    if pos == 0 or neg == 0:
        raise ValueError("an ROC needs both members and non-members")
    order = np.argsort(-scores, kind="mergesort")
    s, m = scores[order], member[order]
    tp, fp = np.cumsum(m), np.cumsum(~m)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each group of equal scores
    tpr = np.r_[0.0, tp[last] / pos]
    fpr = np.r_[0.0, fp[last] / neg]
    return fpr, tpr, np.r_[np.inf, s[last]]


def auc(scores: np.ndarray, member: np.ndarray) -> float:
    """Area under the ROC = P(score of a member > score of a non-member) + ½ P(tie) (Mann–Whitney)."""
    scores = np.asarray(scores, dtype=float)
    member = np.asarray(member, dtype=bool)
    pos, neg = int(member.sum()), int((~member).sum())
    if pos == 0 or neg == 0:
        raise ValueError("an AUC needs both members and non-members")
    ranks = _st.rankdata(scores)  # average ranks share ties equally
    return float((ranks[member].sum() - pos * (pos + 1) / 2) / (pos * neg))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes out of n (both ends from the beta distribution)."""
    if n <= 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else float(_st.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(_st.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


@dataclass
class TprAtFpr:
    fpr_target: float
    tpr: float           # highest TPR over thresholds whose FPR <= target
    fpr: float           # the FPR actually reached at that threshold
    true_positives: int
    members: int
    ci: tuple[float, float]


def tpr_at_fpr(scores: np.ndarray, member: np.ndarray, fpr_target: float, confidence: float = 0.95) -> TprAtFpr:
    """TPR at the most permissive threshold whose empirical FPR does not exceed ``fpr_target``.

    With fewer than 1/fpr_target non-members the only admissible threshold may reject everything
    (TPR 0): the number of trials bounds what can be measured, so it is reported beside the value.
    """
    fpr, tpr, _ = roc_curve(scores, member)
    pos = int(np.asarray(member, dtype=bool).sum())
    i = int(np.nonzero(fpr <= fpr_target + 1e-12)[0].max())
    k = int(round(tpr[i] * pos))
    return TprAtFpr(fpr_target, float(tpr[i]), float(fpr[i]), k, pos, clopper_pearson(k, pos, confidence))


def summary(scores: np.ndarray, member: np.ndarray, fprs: Sequence[float] = (0.001, 0.01)) -> dict:
    """AUC, trial counts and TPR (with CI) at each FPR in ``fprs``: the numbers a report table needs."""
    member = np.asarray(member, dtype=bool)
    out = {"auc": auc(scores, member), "trials": int(member.size), "members": int(member.sum()),
           "non_members": int((~member).sum())}
    for f in fprs:
        r = tpr_at_fpr(scores, member, f)
        out[f"tpr@{f:g}"] = {"tpr": r.tpr, "ci": list(r.ci), "fpr": r.fpr, "tp": r.true_positives}
    return out


def write_roc_png(path: str, curves: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str = "") -> None:
    """Log-log ROC of several attacks, with the chance diagonal; ``curves`` = [(label, scores, member)]."""
    fig, ax = new_figure(figsize=(5.2, 4.6))
    floor = 1.0
    for label, scores, member in curves:
        fpr, tpr, _ = roc_curve(scores, member)
        neg = int((~np.asarray(member, dtype=bool)).sum())
        floor = min(floor, 1.0 / neg)
        ax.plot(np.maximum(fpr, 1.0 / neg / 2), np.maximum(tpr, 1e-5), lw=1.3,
                label=f"{label} (AUC {auc(scores, member):.3f})")
    grid = np.logspace(np.log10(floor / 2), 0, 100)
    ax.plot(grid, grid, "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor / 2, 1)
    ax.set_ylim(floor / 2, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="major", alpha=0.3)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.11, top=0.92)  # tight_layout: ~1.5 s per plot on log axes
    save_figure(fig, path, tight=False)
