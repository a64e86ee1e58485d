"""Nearest neighbours and k-means with faiss: the one place the library calls faiss.

Used by the coresets, MTT's representative init (AST), the ``min_distance`` defence, the
memorization check and the data-level membership attack. faiss computes squared distances as
‖x‖² + ‖y‖² − 2⟨x, y⟩ in float32, which loses precision for near-duplicates (an exact copy can come
out at 1e-3 instead of 0), so ``NeighbourIndex`` recomputes the distances to the returned neighbours
exactly (float64). The neighbour *identities* come from faiss; only ties closer than float32
rounding could swap.
"""
from __future__ import annotations

from typing import Union

import faiss
import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]


def as_rows(x: Array) -> np.ndarray:
    """(N, ...) tensor or array -> C-contiguous float32 (N, D), what faiss expects."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=np.float32)


def flat_l2_index(rows: Array) -> faiss.IndexFlatL2:
    """A bare exact index whose ``search`` returns faiss's own float32 squared distances (greedy coreset rules)."""
    rows = as_rows(rows)
    index = faiss.IndexFlatL2(rows.shape[1])
    index.add(rows)
    return index


def kmeans_nearest(feats: Array, k: int, seed: int, iters: int = 25) -> list[int]:
    """k-means (k centroids, every point may train it) and the distinct row nearest each centroid.

    A centroid whose nearest row is already taken gets its next nearest one.
    """
    feats = as_rows(feats)
    km = faiss.Kmeans(feats.shape[1], k, niter=iters, seed=seed, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=1 << 30)
    km.train(feats)
    _, nearest = flat_l2_index(feats).search(km.centroids, min(k, len(feats)))
    picked: list[int] = []
    for row in nearest:
        picked.append(next(int(j) for j in row if j not in picked))
    return picked


class NeighbourIndex:
    """An exact L2 index over the rows of ``base`` (kept as float32; float64 copy for exact distances)."""

    def __init__(self, base: Array):
        self.base = as_rows(base)
        self.index = flat_l2_index(self.base)

    def __len__(self) -> int:
        return self.base.shape[0]

    @property
    def dim(self) -> int:
        return self.base.shape[1]

    def search(self, queries: Array, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(distances (Q, k) float64, L2 not squared, ascending; indices (Q, k) int64) of the k nearest rows."""
        q = as_rows(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} features, the index {self.dim}")
        k = min(k, len(self))
        _, idx = self.index.search(q, k)
        dist = np.empty(idx.shape, dtype=np.float64)
        for s in range(0, len(q), 512):  # chunks bound the (chunk, k, D) float64 difference array
            diff = q[s:s + 512].astype(np.float64)[:, None, :] - self.base[idx[s:s + 512]].astype(np.float64)
            dist[s:s + 512] = np.sqrt((diff ** 2).sum(-1))
        order = np.argsort(dist, axis=1, kind="stable")  # exact distances may reorder float32 near-ties
        return np.take_along_axis(dist, order, 1), np.take_along_axis(idx.astype(np.int64), order, 1)


def knn(queries: Array, base: Array, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One-shot exact kNN: (distances (Q, k) L2 float64, indices (Q, k)) of ``queries`` among ``base`` rows."""
    return NeighbourIndex(base).search(queries, k)


def nearest_distance(queries: Array, base: Array) -> np.ndarray:
    """(Q,) L2 distance from each query to its nearest row of ``base``."""
    return knn(queries, base, 1)[0][:, 0]
