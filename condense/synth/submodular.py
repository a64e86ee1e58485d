"""Greedy GraphCut maximisation: the selector of the graphcut coreset and of every DQ bin.

GraphCut over a ground set V with similarities s: f(S) = λ Σ_{i∈V} Σ_{j∈S} s_ij − Σ_{i∈S} Σ_{j∈S} s_ij, the
graph-cut function of the submodular data-selection literature; its marginal gain is f(S ∪ {x}) − f(S) = λ Σ_{i∈V} s_ix − 2 Σ_{j∈S} s_jx − s_xx. Like DeepCore's
``GraphCut`` (PatrickZH/DeepCore), which DQ selects with (λ = 1, cosine similarity of gradient embeddings),
the gain here leaves out s_xx (1 for every embedding that does not vanish), which changes no choice:
gain(x | S) = λ·Σ_{pool} s_ix − 2·Σ_{S} s_jx. The ground set is the *pool*: every candidate still free when the
selection starts (for a DQ bin, the class's images no earlier bin took).

Three greedy orders, one result up to float rounding on exact ties:

- ``naive`` (DQ's NaiveGreedy): every candidate's gain at every pick, on the pool's dense similarity matrix;
  each pick updates the gains with one column (O(|pool|)), so a 5,000-image class takes seconds; memory
  |pool|² floats (100 MB for a CIFAR-10 class).
- ``lazy`` (Minoux 1978): stale gains kept in a heap and only the top one re-evaluated. Exact when gains only
  shrink, i.e. when no similarity is negative; a class with a negative similarity is selected ``naive``. On a CPU
  it is slower than ``naive`` here (a Python heap against one vectorised column per pick; ``scripts/bench.py
  --section bins``).
- ``stochastic`` (Mirzasoleiman et al., AAAI 2015): each pick scores ⌈|pool|/k·ln(1/ε)⌉ random free
  candidates. The gain is linear in the candidate's embedding, ⟨λ·Σ_{pool} u − 2·Σ_{S} u, u_x⟩, so it is
  computed from the gradient factors and the |pool|² matrix is never formed (memory O(|pool|·(K + D))).
"""
from __future__ import annotations

import heapq
import math
from typing import Optional

import numpy as np
import torch

from ..errors import CondenseError
from .grad_embed import GradEmbedding

GREEDY = ("naive", "lazy", "stochastic")


def graphcut_gains(sim: np.ndarray, pool: np.ndarray, chosen: list[int], lam: float) -> np.ndarray:
    """gain(x | chosen) of every x, with the ground set ``pool`` (bool mask) — the definition, one call."""
    return lam * sim[pool].sum(0, dtype=np.float64) - 2 * sim[chosen].sum(0, dtype=np.float64)


def _naive(sim: np.ndarray, pool: np.ndarray, size: int, lam: float) -> list[int]:
    ground = lam * (pool.astype(np.float32) @ sim).astype(np.float64)  # Σ over the pool of s_ix, every x at once
    chosen = np.zeros(len(pool), dtype=np.float64)
    free = pool.copy()
    picks: list[int] = []
    for _ in range(size):
        gains = np.where(free, ground - 2 * chosen, -np.inf)
        p = int(np.argmax(gains))  # equal gains: the earlier image
        picks.append(p)
        free[p] = False
        chosen += sim[p]
    return picks


def _lazy(sim: np.ndarray, pool: np.ndarray, size: int, lam: float) -> list[int]:
    if bool((sim[np.ix_(pool, pool)] < 0).any()):
        return _naive(sim, pool, size, lam)  # a gain may grow: upper bounds would not hold
    ground = lam * (pool.astype(np.float32) @ sim).astype(np.float64)
    heap = [(-ground[x], int(x)) for x in np.flatnonzero(pool)]
    heapq.heapify(heap)
    picks: list[int] = []
    while len(picks) < size:
        _, x = heapq.heappop(heap)
        exact = ground[x] - 2 * sim[picks, x].sum(dtype=np.float64)
        if not heap or (-exact, x) <= heap[0]:  # nothing left can beat it (ties: the earlier image, as naive)
            picks.append(x)
        else:
            heapq.heappush(heap, (-exact, x))
    return picks


def _stochastic(emb: GradEmbedding, pool: np.ndarray, size: int, lam: float, epsilon: float,
                gen: torch.Generator) -> list[int]:
    g, e = emb.scaled_bias().double(), emb.features.double()  # unit-norm embeddings, as factors
    free = torch.from_numpy(pool.copy())
    # w = λ Σ_pool u − 2 Σ_S u, as its bias part and its (K, D) weight part
    w_bias, w_weight = lam * g[free].sum(0), lam * g[free].T @ e[free]
    draws = max(1, math.ceil(int(free.sum()) / max(size, 1) * math.log(1 / epsilon)))
    picks: list[int] = []
    for _ in range(size):
        candidates = torch.nonzero(free).squeeze(1)
        if len(candidates) > draws:
            candidates = candidates[torch.randperm(len(candidates), generator=gen)[:draws].sort().values]
        gc = g[candidates]
        gains = gc @ w_bias + ((gc @ w_weight) * e[candidates]).sum(1)
        p = int(candidates[int(torch.argmax(gains))])  # equal gains: the earlier image
        picks.append(p)
        free[p] = False
        w_bias -= 2 * g[p]
        w_weight.sub_(torch.outer(g[p], e[p]), alpha=2)
    return picks


def greedy_graphcut(emb: GradEmbedding, size: int, lam: float = 1.0, greedy: str = "naive",
                    pool: Optional[np.ndarray] = None, sim: Optional[np.ndarray] = None, epsilon: float = 0.01,
                    generator: Optional[torch.Generator] = None) -> list[int]:
    """``size`` indices (into ``emb``'s rows, in pick order) maximising GraphCut greedily over ``pool`` (a bool mask,
    default all rows). ``sim`` is the rows' cosine similarity matrix when the caller already has it."""
    if greedy not in GREEDY:
        raise CondenseError(f"Unknown greedy '{greedy}'; choose one of: {', '.join(GREEDY)}.")
    n = emb.bias.shape[0]
    pool = np.ones(n, dtype=bool) if pool is None else pool
    size = min(size, int(pool.sum()))
    if greedy == "stochastic":
        return _stochastic(emb, pool, size, lam, epsilon, generator or torch.Generator().manual_seed(0))
    sim = emb.cosine().numpy() if sim is None else sim
    return (_lazy if greedy == "lazy" else _naive)(sim, pool, size, lam)
