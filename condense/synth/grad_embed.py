"""Gradient embeddings, the feature space of the graphcut coreset and of DQ's bins.

As DeepCore's ``calc_gradient`` (Guo, Zhao, Bai; DEXA 2022; PatrickZH/DeepCore), which DQ (Zhou et al., ICCV
2023; magic-research/Dataset_Quantization) builds its bins on: an image's embedding is the gradient of its loss
with respect to the network's last linear layer, the bias part followed by the weight part. For logits
z = W e + b and any loss of z, the bias part is g = ∂ℓ/∂z and the weight part is g eᵀ, so (g, e) fix the
embedding u = [g, vec(g eᵀ)]. condense computes g per image with ``torch.func`` (vmap of grad) in batches and
keeps the factors: K + D numbers per image instead of K·(D + 1) (CIFAR-10 with a 32-px ConvNet: 2,058 against
20,490), and the exact inner product ⟨u_i, u_j⟩ = ⟨g_i, g_j⟩·(1 + ⟨e_i, e_j⟩) gives the cosine similarities.

``gradient`` "ce" differentiates the cross-entropy of the logits; "deepcore" the cross-entropy of the softmax
*probabilities* (a second softmax), which is what DeepCore's code computes.

The network is a teacher (``condense teachers``) when one is given, else the run's model trained briefly on the
real training split through ``train.fit`` (draws from the "embedding_net" stream). The brief network and the
embeddings are cached under ``cache_root("dq")`` (a network file and an ``.npz``, keyed by everything that
makes them), so binning or sampling again at another ratio or IPC starts from them; the brief network is always
read back from its file, so a run that finds it cached uses the very weights a fresh run trains.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import grad, vmap

from ..errors import CondenseError
from ..feature_net import feature_network
from ..io import cache_root, write_npz
from ..models import load_network, read_network_info, save_network
from ..seeding import generator, seed_for
from ..teachers import load_teachers, reference_of
from .base import RunContext

GRADIENTS = ("ce", "deepcore")


@dataclass
class GradEmbedding:
    """Per-image factors of the last-layer gradient: u_i = [g_i, vec(g_i e_iᵀ)]."""

    bias: torch.Tensor      # (N, K) float32: ∂ℓ/∂b, the bias part
    features: torch.Tensor  # (N, D) float32: the last layer's input e

    def rows(self, index) -> "GradEmbedding":
        return GradEmbedding(self.bias[index], self.features[index])

    def dense(self) -> torch.Tensor:
        """The embeddings themselves, (N, K + K·D): for tests and small sets only."""
        return torch.cat([self.bias, (self.bias.unsqueeze(2) * self.features.unsqueeze(1)).flatten(1)], 1)

    def inverse_norms(self) -> torch.Tensor:
        """1 / ‖u_i‖ = 1 / (‖g_i‖·√(1 + ‖e_i‖²)), 0 for an image whose gradient vanishes (similar to nothing)."""
        norm = self.bias.double().norm(dim=1) * (1 + self.features.double().pow(2).sum(1)).sqrt()
        return torch.where(norm > 0, 1 / norm.clamp_min(1e-300), torch.zeros_like(norm)).float()

    def scaled_bias(self) -> torch.Tensor:
        """g_i / ‖u_i‖: with ``features`` the factors of the unit-norm embeddings."""
        return self.bias * self.inverse_norms().unsqueeze(1)

    def cosine(self, other: Optional["GradEmbedding"] = None) -> torch.Tensor:
        """Cosine similarities (N, M) of these embeddings with ``other``'s (default: themselves)."""
        other = self if other is None else other
        a, b = self.scaled_bias(), other.scaled_bias()
        return (a @ b.T) * (1 + self.features @ other.features.T)


def _sample_loss(kind: str):
    def loss(bias: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = z + bias
        if kind == "deepcore":  # DeepCore applies CrossEntropyLoss to softmax outputs
            logits = F.softmax(logits, -1)
        return F.cross_entropy(logits.unsqueeze(0), y.unsqueeze(0))
    return loss


def _head(net: nn.Module) -> nn.Linear:
    head = getattr(net, "classifier", None)
    if not isinstance(head, nn.Linear) or not hasattr(net, "embed"):
        raise CondenseError(f"Gradient embeddings need a network whose last layer is one linear 'classifier' after "
                            f"embed(); {type(net).__name__} has none.")
    return head


@torch.no_grad()
def _features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.embed(x).flatten(1)


def gradient_embeddings(net: nn.Module, x: torch.Tensor, y: torch.Tensor, gradient: str = "ce",
                        batch: int = 256) -> GradEmbedding:
    """The factors (g, e) of every image of ``x`` under ``net`` (eval mode), ``batch`` images at a time."""
    head = _head(net.eval())
    weight = head.weight.detach()
    bias = head.bias.detach() if head.bias is not None else weight.new_zeros(weight.shape[0])
    per_sample = vmap(grad(_sample_loss(gradient)), in_dims=(None, 0, 0))
    gs, es = [], []
    for xb, yb in zip(x.split(batch), y.split(batch)):
        e = _features(net, xb)
        gs.append(per_sample(bias, e @ weight.T, yb).float().cpu())
        es.append(e.float().cpu())
    return GradEmbedding(torch.cat(gs), torch.cat(es))


def dense_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor, gradient: str = "ce") -> torch.Tensor:
    """[∂ℓ/∂b, vec(∂ℓ/∂W)] per image by ``torch.func`` on both parameters (the definition; tests check the
    factors against it)."""
    head = _head(net.eval())
    loss = _sample_loss(gradient)

    def full(weight, bias, e, y):
        return loss(bias, e @ weight.T, y)

    e = _features(net, x)
    per_sample = vmap(grad(full, argnums=(0, 1)), in_dims=(None, None, 0, 0))
    dw, db = per_sample(head.weight.detach(), head.bias.detach(), e, y)
    return torch.cat([db, dw.flatten(1)], 1)


def content_key(*parts) -> str:
    """20 hex digits naming a cached artifact by everything that makes it."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def embedding_network(ctx: RunContext, teacher: str, model: str, epochs: int, lr: float, batch: int
                      ) -> tuple[nn.Module, dict]:
    """The network whose gradients embed the images, and how the set names it: a teacher (``teacher``: a file or
    folder, the first of this data), else the run's model (or ``model``) trained ``epochs`` epochs and cached."""
    ds, run = ctx.dataset, ctx.run
    if teacher:
        found = load_teachers(teacher, dataset=ds.name, fingerprint=ds.fingerprint(), num_classes=ds.num_classes,
                              image_shape=ds.image_shape, device=ctx.device, count=1)
        return found[0].net, {"teacher": reference_of(found), "checksum": found[0].info.checksum}
    name = model or run.model
    recipe = {"epochs": epochs, "lr": lr, "batch": batch, "seed": run.seed}
    path = cache_root("dq", f"net_{content_key(ds.fingerprint(), name, run.model_args, recipe)}.h5")
    if not _readable(path):
        with torch.random.fork_rng(devices=[]):  # the initialisation is reproducible from the seed
            torch.manual_seed(seed_for("embedding_net", run.seed, 0))
            net = feature_network(lambda: ctx.new_model(name), ds.train_x, ds.train_y, epochs=epochs, lr=lr,
                                  batch=batch, generator=generator("embedding_net", run.seed, 1), name=name)
        c, h, w = ds.image_shape
        save_network(path, net, architecture=name, model_args=dict(run.model_args), channels=c,
                     num_classes=ds.num_classes, image_size=(h, w), role="feature", dataset=ds.name,
                     dataset_fingerprint=ds.fingerprint(), training={**recipe, "optimizer": "sgd, momentum 0.9"})
    net, info = load_network(path, device=ctx.device)
    return net.requires_grad_(False), {"trained": {"architecture": name, **recipe}, "checksum": info.checksum}


def _readable(path: str) -> bool:
    """Whether a cached network file is there and sound (a damaged one is trained again and replaced)."""
    if not os.path.isfile(path):
        return False
    try:
        read_network_info(path)
        return True
    except CondenseError:
        return False


def cached_embeddings(net: nn.Module, checksum: str, ctx: RunContext, gradient: str, batch: int = 256) -> GradEmbedding:
    """:func:`gradient_embeddings` of the whole training split, from the cache when this network (by checksum),
    gradient and data were embedded before."""
    ds = ctx.dataset
    path = cache_root("dq", f"emb_{content_key(checksum, gradient, ds.fingerprint(), len(ds.train_y))}.npz")
    n, k = len(ds.train_y), ds.num_classes
    if os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as f:
                bias, features = f["bias"], f["features"]
            if bias.shape == (n, k) and features.ndim == 2 and features.shape[0] == n and bias.dtype == np.float32 \
                    and features.dtype == np.float32 and np.isfinite(bias).all() and np.isfinite(features).all():
                return GradEmbedding(torch.from_numpy(bias), torch.from_numpy(features))
        except (OSError, ValueError, KeyError):
            pass  # damaged: embedded again and replaced
    emb = gradient_embeddings(net, ds.train_x, ds.train_y, gradient, batch)
    write_npz(path, bias=emb.bias.numpy(), features=emb.features.numpy())
    return emb
