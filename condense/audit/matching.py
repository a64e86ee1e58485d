"""Greedy one-to-one matching between two image sets (the scoring rule of Loo et al.'s reconstruction code).

Take the globally best pair of the score matrix, remove its row and its column, repeat until one side
is exhausted. Unlike a row-wise argmin, no target can be claimed twice: 2N reconstructions that all
collapse onto one easy training image recover that image once, not 2N times.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import CondenseError


@dataclass
class Matching:
    rows: torch.Tensor     # int64 (P,) row index of each pair, in the order the pairs were taken
    cols: torch.Tensor     # int64 (P,) column index of each pair
    scores: torch.Tensor   # float (P,) the score of each pair (distance or similarity as given)

    def __len__(self) -> int:
        return int(self.rows.numel())


def greedy_match(score: torch.Tensor, *, higher_is_better: bool) -> Matching:
    """Greedy one-to-one matching on a (rows × cols) score matrix.

    ``higher_is_better=False`` for distances (L2), ``True`` for similarities (SSIM). Ties are broken by
    the flat index order, so the result is deterministic. NaN scores are never matched.
    """
    if score.dim() != 2:
        raise CondenseError(f"Greedy matching needs a 2-D score matrix, got shape {tuple(score.shape)}.")
    s = score.detach().cpu().double()
    n, m = s.shape
    key = -s if higher_is_better else s
    key = torch.where(torch.isnan(key), torch.full_like(key, float("inf")), key)
    order = torch.argsort(key.flatten(), stable=True)
    row_free = [True] * n
    col_free = [True] * m
    finite = torch.isfinite(key).flatten().tolist()
    rows, cols = [], []
    limit = min(n, m)
    # A Python loop over the sorted pairs is fine at audit sizes (≤ a few million pairs) and stops early.
    for flat in order.tolist():
        i, j = divmod(flat, m)
        if row_free[i] and col_free[j]:
            if not finite[flat]:
                break
            row_free[i] = False
            col_free[j] = False
            rows.append(i)
            cols.append(j)
            if len(rows) == limit:
                break
    r = torch.tensor(rows, dtype=torch.long)
    c = torch.tensor(cols, dtype=torch.long)
    return Matching(rows=r, cols=c, scores=score.detach().cpu()[r, c] if len(rows) else score.new_zeros(0).cpu())


def pairwise_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between every flattened image of ``a`` and of ``b`` (rows × cols)."""
    return torch.cdist(a.flatten(1).double(), b.flatten(1).double()).float()
