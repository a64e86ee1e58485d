"""Train the N seed networks of one architecture: all at once as one vectorised model, or one by one.

Vectorised: the seeds' parameters are stacked (``torch.func.stack_module_state``) and one
``vmap(functional_call)`` runs every seed's forward in a single call, so on a small set (the usual
case: 10-500 images) the per-step overhead is paid once instead of N times and convolutions become
one grouped convolution. The optimiser works on the stacked tensors: SGD/AdamW are elementwise, so
this is exactly N independent optimisers.

Each seed keeps its own randomness, identical in both modes: initialisation from
``torch.manual_seed(seed)`` before building its network, and one ``torch.Generator(seed)`` that
draws, in order, each epoch's batch order and each batch's DSA parameters and mixup. Vectorised
and sequential training therefore follow the same trajectories up to float rounding.

Not vectorisable (automatic sequential fallback): models with BatchNorm (train-mode batch statistics
and in-place running-stat updates do not batch over stacked copies: ResNet18BN_AP, ResNet18BN,
ConvNetBN, AlexNetBN, VGG11BN) and models with dropout.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from .augment import DSA, DSAParams
from .protocol import Protocol

_DSA_FIELDS = [f for f in DSAParams.__dataclass_fields__]


def vmap_blocker(model: nn.Module) -> Optional[str]:
    """Why ``model`` cannot be trained vectorised (None if it can)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return "BatchNorm (train-mode batch statistics and running-stat updates)"
        if isinstance(m, nn.modules.dropout._DropoutNd):
            return "dropout"
    return None


@dataclass
class Labels:
    """What the students are trained towards, by protocol ``labels`` kind."""

    hard: torch.Tensor                       # (N,) int64, always present (for CE and for bookkeeping)
    soft_logits: Optional[torch.Tensor] = None  # (N, K) stored logits: KD at the protocol's temperature
    soft_probs: Optional[torch.Tensor] = None   # (N, K) stored probabilities: already a target, used at T = 1
    teacher: Optional[nn.Module] = None      # relabels each augmented batch (teacher protocol)


def soft_labels(labels: torch.Tensor, hard: torch.Tensor) -> Labels:
    """Stored soft labels: rows that are distributions (non-negative, sum 1) are probabilities, else logits.

    Probabilities were already softened when stored, so they are matched as they are (T = 1);
    a temperature on top would flatten them towards uniform (at T = 30 they carry almost nothing).
    """
    if bool((labels >= 0).all()) and torch.allclose(labels.sum(1), torch.ones_like(labels[:, 0]), atol=1e-3):
        return Labels(hard, soft_probs=labels)
    return Labels(hard, soft_logits=labels)


def _cat_params(params: Sequence[DSAParams]) -> DSAParams:
    if len(params) == 1:
        return params[0]
    return DSAParams(**{f: None if getattr(params[0], f) is None else torch.cat([getattr(p, f) for p in params])
                        for f in _DSA_FIELDS})


class _Students:
    """S networks behind one interface: ``forward(x (S, B, ...)) -> (S, B, K)``."""

    def __init__(self, models: Sequence[nn.Module], vectorised: bool):
        self.vectorised = vectorised and len(models) > 1
        if self.vectorised:
            self.params, self.buffers = stack_module_state(list(models))
            self.params = {k: v.detach().requires_grad_() for k, v in self.params.items()}
            base = models[0]

            def one(p, b, x):
                return functional_call(base, (p, b), (x,))

            self._fwd = vmap(one, in_dims=(0, 0, 0))
            self._fwd_shared = vmap(one, in_dims=(0, 0, None))
        else:
            self.models = list(models)

    def parameters(self) -> list[torch.Tensor]:
        if self.vectorised:
            return list(self.params.values())
        return [p for m in self.models for p in m.parameters()]

    def train(self, mode: bool) -> None:
        if not self.vectorised:
            for m in self.models:
                m.train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.vectorised:
            return self._fwd(self.params, self.buffers, x)
        return torch.stack([m(xi) for m, xi in zip(self.models, x)])

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> list[float]:
        """Test accuracy per seed (eval mode; shared test batch, chunked to bound memory)."""
        self.train(False)
        s = len(self.params[next(iter(self.params))]) if self.vectorised else len(self.models)
        chunk = max(1, batch // s)
        correct = torch.zeros(s, dtype=torch.long, device=x.device)
        for i in range(0, len(x), chunk):
            xb = x[i:i + chunk]
            logits = (self._fwd_shared(self.params, self.buffers, xb) if self.vectorised
                      else torch.stack([m(xb) for m in self.models]))
            correct += (logits.argmax(-1) == y[i:i + chunk]).sum(1)
        self.train(True)
        return (correct.double() / len(x)).tolist()


def _optimizer(params: list[torch.Tensor], proto: Protocol, lr: float) -> torch.optim.Optimizer:
    if proto.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=proto.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=proto.momentum, weight_decay=proto.weight_decay)


def lr_at(proto: Protocol, lr: float, epoch: int) -> float:
    """Learning rate for (1-based) ``epoch``; step decays once after epoch epochs // 2, as official."""
    if proto.schedule == "step":
        return lr * proto.decay_factor if epoch > proto.epochs // 2 else lr
    if proto.schedule == "cosine":
        return 0.5 * lr * (1 + math.cos(math.pi * (epoch - 1) / proto.epochs))
    return lr


def _kd_loss(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 KL(softmax(target/T) || softmax(student/T)) per sample -> (S, B)."""
    t = temperature
    log_p = F.log_softmax(logits / t, -1)
    log_q = F.log_softmax(target_logits / t, -1)
    return (log_q.exp() * (log_q - log_p)).sum(-1) * t * t


def _loss(students: _Students, xb: torch.Tensor, idx: torch.Tensor, labels: Labels, proto: Protocol,
          mix: Optional[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Sum over seeds of each seed's mean batch loss (so each seed gets its own gradient)."""
    s, b = idx.shape
    if mix is not None:  # mixup: x <- lam x + (1 - lam) x[perm], targets interpolated with the same lam
        lam, perm = mix
        xb = lam.view(s, 1, 1, 1, 1) * xb + (1 - lam.view(s, 1, 1, 1, 1)) * torch.gather(
            xb, 1, perm.view(s, b, 1, 1, 1).expand_as(xb))
    logits = students.forward(xb)
    if proto.labels == "hard":
        y = labels.hard[idx]
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(s, b)
        if mix is not None:
            ce_perm = F.cross_entropy(logits.flatten(0, 1), torch.gather(y, 1, perm).flatten(), reduction="none")
            ce = lam.view(s, 1) * ce + (1 - lam.view(s, 1)) * ce_perm.view(s, b)
        return ce.mean(1).sum()
    if proto.labels == "teacher":  # relabel the batch the student actually sees (augmented, mixed)
        with torch.no_grad():
            target = labels.teacher(xb.flatten(0, 1)).view(s, b, -1)
    else:
        probs = labels.soft_probs is not None
        target = labels.soft_probs[idx] if probs else labels.soft_logits[idx]
        if mix is not None:  # INFER interpolates the stored labels with the images' lambda
            target = lam.view(s, 1, 1) * target + (1 - lam.view(s, 1, 1)) * torch.gather(
                target, 1, perm.view(s, b, 1).expand_as(target))
        if probs:
            kl = (target * (target.clamp_min(1e-12).log() - F.log_softmax(logits, -1))).sum(-1)
            return kl.mean(1).sum()
    return _kd_loss(logits, target, proto.temperature).mean(1).sum()


def train_group(models: Sequence[nn.Module], seeds: Sequence[int], train_x: torch.Tensor, labels: Labels,
                test_x: torch.Tensor, test_y: torch.Tensor, proto: Protocol, lr: float, dsa: Optional[DSA],
                vectorised: bool = True) -> list[dict[str, Any]]:
    """Train ``models`` (one per seed, already initialised) together; returns one result dict per seed."""
    students = _Students(models, vectorised)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    opt = _optimizer(students.parameters(), proto, lr)
    n, epochs, bs, dev = len(train_x), proto.epochs, proto.batch_size, train_x.device
    shape = tuple(train_x.shape[1:])
    check_at = set(np.linspace(epochs / proto.checkpoints, epochs, proto.checkpoints).round().astype(int).tolist())
    curves: list[list[tuple[int, float]]] = [[] for _ in seeds]
    losses: list[tuple[int, list[float]]] = []
    students.train(True)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(proto, lr, epoch)
        orders = [torch.randperm(n, generator=g).to(dev) for g in gens]
        epoch_loss = torch.zeros((), device=dev)
        for start in range(0, n, bs):
            idx = torch.stack([o[start:start + bs] for o in orders])  # (S, B)
            xb = train_x[idx]
            if dsa is not None:
                flat = xb.flatten(0, 1)
                params = _cat_params([dsa.sample(idx.shape[1], shape, g, device=dev) for g in gens])
                xb = dsa.apply(flat, params).view_as(xb)
            mix = None
            if proto.mixup > 0:
                mix = _draw_mixup(gens, idx.shape[1], proto.mixup, dev)
            loss = _loss(students, xb, idx, labels, proto, mix)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            epoch_loss += loss.detach() * idx.shape[1]
        if epoch in check_at:
            accs = students.accuracy(test_x, test_y)
            for c, a in zip(curves, accs):
                c.append((epoch, a))
            losses.append((epoch, float(epoch_loss) / (n * len(seeds))))
    seconds = (time.perf_counter() - t0) / len(seeds)
    final = [c[-1][1] for c in curves]
    return [{"seed": s, "final": f, "best": max(a for _, a in c), "curve": c, "loss_curve": losses,
             "seconds": seconds, "vectorised": students.vectorised} for s, f, c in zip(seeds, final, curves)]


def _draw_mixup(gens: Sequence[torch.Generator], b: int, alpha: float, dev) -> tuple[torch.Tensor, torch.Tensor]:
    # Beta has no torch.Generator API: a numpy draw seeded from the seed's own stream keeps it per-seed.
    lams, perms = [], []
    for g in gens:
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=g)))
        lams.append(float(rng.beta(alpha, alpha)))
        perms.append(torch.randperm(b, generator=g))
    return torch.tensor(lams, device=dev), torch.stack(perms).to(dev)


def train_seeds(build: Callable[[], nn.Module], seeds: Sequence[int], train_x: torch.Tensor, labels: Labels,
                test_x: torch.Tensor, test_y: torch.Tensor, proto: Protocol, lr: float, dsa: Optional[DSA],
                vectorised: bool = True,
                on_run: Optional[Callable[[int, dict[str, Any]], None]] = None) -> list[dict[str, Any]]:
    """Build one network per seed (``torch.manual_seed(seed)`` first) and train them.

    Vectorised when asked and the architecture allows it (see ``vmap_blocker``), else one by one.
    """
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(build().to(train_x.device))
    if vectorised and len(seeds) > 1 and vmap_blocker(models[0]) is None:
        out = train_group(models, seeds, train_x, labels, test_x, test_y, proto, lr, dsa, vectorised=True)
        for i, o in enumerate(out):
            if on_run:
                on_run(i, o)
        return out
    out = []
    for i, (m, s) in enumerate(zip(models, seeds)):
        o = train_group([m], [s], train_x, labels, test_x, test_y, proto, lr, dsa, vectorised=False)[0]
        out.append(o)
        if on_run:
            on_run(i, o)
    return out
