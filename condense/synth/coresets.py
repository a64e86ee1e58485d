"""Coreset baselines: IPC real training images per class, chosen in a feature space.

- ``herding``: greedy mean matching (Welling 2009): the t-th pick minimises
  ‖μ − (Σ picked + f_i)/t‖, i.e. it is the nearest point to t·μ − Σ picked.
- ``kcenter``: greedy k-center: start at the point nearest the class mean, then repeatedly
  take the point farthest from everything picked so far.
- ``kmeans``: k-means with k = IPC per class, then the real image nearest each centroid.

Distances and clustering run on faiss (``condense.neighbours``). Features are
the ``embed`` output of a network: the one the user names (``feature_model`` plus optional
``feature_weights``), else the run's model trained briefly on the real training set.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..feature_net import feature_network
from ..neighbours import flat_l2_index, kmeans_nearest
from ..seeding import generator, int31, seed_for
from .base import MethodConfig, Synthesizer, register_method
from .matching import chunked


@dataclass
class CoresetConfig(MethodConfig):
    iterations: int = 0
    feature_model: str = ""     # registry name of the feature network; "" = the run's model
    feature_weights: str = ""   # optional state_dict (.pt, loaded with weights_only=True)
    feature_epochs: int = 3     # brief training on the real set when no weights are given; 0 = random net
    feature_lr: float = 0.01
    feature_batch: int = 256


@dataclass
class KMeansConfig(CoresetConfig):
    kmeans_iters: int = 25


# ---- selection rules on one class's features (float32, n × d); return local indices --------------
def herding(feats: np.ndarray, k: int) -> list[int]:
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    index, mu = flat_l2_index(feats), feats.mean(0, dtype=np.float64)
    picked: list[int] = []
    total = np.zeros(feats.shape[1], dtype=np.float64)
    for t in range(1, k + 1):
        target = (t * mu - total).astype(np.float32)[None]
        _, nearest = index.search(target, min(t, len(feats)))  # ≤ t−1 are taken, so one is free
        i = next(int(j) for j in nearest[0] if j not in picked)
        picked.append(i)
        total += feats[i]
    return picked


def kcenter(feats: np.ndarray, k: int) -> list[int]:
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    n = len(feats)
    index = flat_l2_index(feats)
    _, first = index.search(feats.mean(0, keepdims=True).astype(np.float32), 1)
    picked = [int(first[0, 0])]
    min_dist = np.full(n, np.inf, dtype=np.float64)
    while True:
        dist, ids = index.search(feats[picked[-1]][None], n)
        min_dist[ids[0]] = np.minimum(min_dist[ids[0]], dist[0])
        if len(picked) == k:
            return picked
        min_dist[picked] = -1.0  # duplicates of a picked point are at distance 0, still pickable
        picked.append(int(np.argmax(min_dist)))


# ---- the methods ---------------------------------------------------------------------------------
class Coreset(Synthesizer):
    iterative = False

    def select(self, feats: np.ndarray, k: int, seed: int) -> list[int]:
        raise NotImplementedError

    def feature_network(self) -> torch.nn.Module:
        ctx, cfg = self.ctx, self.cfg
        return feature_network(lambda: ctx.new_model(cfg.feature_model or None), ctx.dataset.train_x,
                               ctx.dataset.train_y, weights=cfg.feature_weights, epochs=cfg.feature_epochs,
                               lr=cfg.feature_lr, batch=cfg.feature_batch,
                               generator=generator("iteration", ctx.run.seed, -2), name=cfg.feature_model)

    def init(self):
        ctx = self.ctx
        seed = seed_for("iteration", ctx.run.seed, -1)
        with torch.random.fork_rng(devices=[]):  # the feature net's init is reproducible from the seed
            torch.manual_seed(seed)
            net = self.feature_network()
        feats = chunked(net.embed, ctx.dataset.train_x).float().cpu().numpy()
        labels = ctx.dataset.train_y.cpu()
        chosen = []
        for c in range(ctx.dataset.num_classes):
            members = torch.nonzero(labels == c).squeeze(1)
            local = self.select(feats[members.numpy()], ctx.run.ipc, int31(seed) + c)
            chosen.append(members[torch.tensor(local, dtype=torch.long)])
        index = torch.cat(chosen).to(ctx.dataset.train_x.device)
        self.synth = self.new_synthset(ctx.dataset.train_x[index].detach().clone(), ctx.dataset.train_y[index].clone(),
                                       source_indices=index.cpu())
        return self.synth


@register_method
class Herding(Coreset):
    name = "herding"
    config_cls = CoresetConfig

    def select(self, feats, k, seed):
        return herding(feats, k)


@register_method
class KCenter(Coreset):
    name = "kcenter"
    config_cls = CoresetConfig

    def select(self, feats, k, seed):
        return kcenter(feats, k)


@register_method
class KMeans(Coreset):
    name = "kmeans"
    config_cls = KMeansConfig

    def select(self, feats, k, seed):
        return kmeans_nearest(feats, k, seed, self.cfg.kmeans_iters)
