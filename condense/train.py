"""The one training loop: minibatch SGD or AdamW over one network or several trained together.

Every network the library trains goes through ``fit``: evaluation students (N seeds at once),
teachers, membership-inference shadow models, expert trajectories, feature networks and the inner
loop of gradient matching. A ``TrainRecipe`` says how (epochs, batch, optimiser, schedule, targets,
mixup, test checkpoints); hooks add what one caller needs (expert snapshots, AST's loss ramp and
input-gradient penalty).

Several networks: their parameters are stacked (``torch.func.stack_module_state``) and one
``vmap(functional_call)`` runs every forward in one call, so on a small set the per-step overhead
is paid once and convolutions become one grouped convolution; SGD/AdamW are elementwise, so the
stacked optimiser is exactly N independent ones. Each network keeps its own ``torch.Generator``,
which draws, in order, each epoch's batch order and each batch's DSA parameters and mixup, so
vectorised and one-by-one training follow the same trajectories up to float rounding. BatchNorm
(running statistics) and dropout cannot be vectorised; ``vmap_blocker`` says so and callers train
such networks one by one.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from .augment import DSA, DSAParams
from .models import batchnorm_layers

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")
TARGETS = ("hard", "soft", "teacher")  # what an evaluation protocol may ask; fit also takes "regression" (pre-training)


@dataclass(frozen=True)
class TrainRecipe:
    epochs: int
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "constant"        # step: lr × decay_factor after decay_after epochs; cosine; constant
    decay_factor: float = 0.1
    decay_after: Optional[int] = None  # epochs at the base lr under "step" (None: epochs // 2, as DC/DM)
    fresh_optimizer_at_decay: bool = False  # AST experts rebuild the optimiser (momentum reset) at the drop
    labels: str = "hard"              # hard | soft (stored soft labels) | teacher (relabel every batch) | regression (MSE)
    temperature: float = 1.0          # KD temperature for soft logits and teachers
    mixup: float = 0.0                # Beta(a, a) mixup of images and targets; 0 = off
    checkpoints: int = 0              # test evaluations spread over training (0 = none)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of (1-based) ``epoch``."""
        if self.schedule == "step":
            after = self.epochs // 2 if self.decay_after is None else self.decay_after
            return self.lr * self.decay_factor if epoch > after else self.lr
        if self.schedule == "cosine":
            return 0.5 * self.lr * (1 + math.cos(math.pi * (epoch - 1) / self.epochs))
        return self.lr


@dataclass
class Labels:
    """What the networks are trained towards."""

    hard: torch.Tensor                          # (N,) int64, always present
    soft_logits: Optional[torch.Tensor] = None  # (N, K) stored logits: KD at the recipe's temperature
    soft_probs: Optional[torch.Tensor] = None   # (N, K) stored probabilities: matched as they are (T = 1)
    teacher: Optional[nn.Module] = None         # relabels each augmented batch
    regression: Optional[torch.Tensor] = None   # (N, D) real-valued targets, MSE (KRR-ST pre-training); hard unused


def vmap_blocker(model: nn.Module) -> Optional[str]:
    """Why ``model`` cannot be trained stacked with copies of itself (None if it can)."""
    if batchnorm_layers(model):
        return "BatchNorm (train-mode batch statistics and running-stat updates)"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()):
        return "dropout"
    return None


@torch.no_grad()
def test_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy in eval mode (the mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    model.train(was_training)
    return correct / len(x)


class Students:
    """S networks behind one interface: ``forward(x (S, B, ...)) -> (S, B, K)``."""

    def __init__(self, models: Sequence[nn.Module], vectorised: bool):
        self.models = list(models)
        self.vectorised = vectorised and len(models) > 1
        if self.vectorised:
            params, self.buffers = stack_module_state(self.models)
            self.params = {k: v.detach().requires_grad_() for k, v in params.items()}
            base = self.models[0]

            def one(p, b, x):
                return functional_call(base, (p, b), (x,))

            self._fwd = vmap(one, in_dims=(0, 0, 0))
            self._fwd_shared = vmap(one, in_dims=(0, 0, None))

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the stacked parameters back into the networks (vectorised training works on copies)."""
        if self.vectorised:
            for i, m in enumerate(self.models):
                for name, p in m.named_parameters():
                    p.copy_(self.params[name][i])

    def parameters(self) -> list[torch.Tensor]:
        if self.vectorised:
            return list(self.params.values())
        return [p for m in self.models for p in m.parameters()]

    def train(self, mode: bool) -> None:
        for m in self.models:
            m.train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.vectorised:
            return self._fwd(self.params, self.buffers, x)
        return torch.stack([m(xi) for m, xi in zip(self.models, x)])

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> list[float]:
        if not self.vectorised:
            return [test_accuracy(m, x, y, batch) for m in self.models]
        chunk = max(1, batch // len(self.models))  # one shared test batch for all networks
        correct = torch.zeros(len(self.models), dtype=torch.long, device=x.device)
        for i in range(0, len(x), chunk):
            logits = self._fwd_shared(self.params, self.buffers, x[i:i + chunk])
            correct += (logits.argmax(-1) == y[i:i + chunk]).sum(1)
        return (correct.double() / len(x)).tolist()


def _optimizer(params: list[torch.Tensor], recipe: TrainRecipe, lr: float) -> torch.optim.Optimizer:
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


def _cat_params(params: Sequence[DSAParams]) -> DSAParams:
    if len(params) == 1:
        return params[0]
    return DSAParams(**{f.name: None if getattr(params[0], f.name) is None else
                        torch.cat([getattr(p, f.name) for p in params]) for f in fields(DSAParams)})


def _draw_mixup(gens: Sequence[torch.Generator], b: int, alpha: float, dev) -> tuple[torch.Tensor, torch.Tensor]:
    # Beta has no torch.Generator API: a numpy draw seeded from each network's own stream keeps it per network.
    lams, perms = [], []
    for g in gens:
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=g)))
        lams.append(float(rng.beta(alpha, alpha)))
        perms.append(torch.randperm(b, generator=g))
    return torch.tensor(lams, device=dev), torch.stack(perms).to(dev)


def _kd_loss(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² KL(softmax(target/T) || softmax(student/T)) per sample -> (S, B)."""
    t = temperature
    log_p = F.log_softmax(logits / t, -1)
    log_q = F.log_softmax(target_logits / t, -1)
    return (log_q.exp() * (log_q - log_p)).sum(-1) * t * t


def _loss(students: Students, xb: torch.Tensor, idx: torch.Tensor, labels: Labels, recipe: TrainRecipe,
          mix: Optional[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over networks of each network's mean batch loss (so each gets its own gradient), and the logits."""
    s, b = idx.shape
    if mix is not None:  # mixup: x <- lam x + (1 - lam) x[perm], targets interpolated with the same lam
        lam, perm = mix
        xb = lam.view(s, 1, 1, 1, 1) * xb + (1 - lam.view(s, 1, 1, 1, 1)) * torch.gather(
            xb, 1, perm.view(s, b, 1, 1, 1).expand_as(xb))
    logits = students.forward(xb)
    if recipe.labels == "regression":  # mean squared error over batch and dimensions, per network (F.mse_loss)
        target = labels.regression[idx]
        if mix is not None:
            target = lam.view(s, 1, 1) * target + (1 - lam.view(s, 1, 1)) * torch.gather(
                target, 1, perm.view(s, b, 1).expand_as(target))
        return (logits - target).pow(2).mean((1, 2)).sum(), logits
    if recipe.labels == "hard":
        y = labels.hard[idx]
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(s, b)
        if mix is not None:
            ce_perm = F.cross_entropy(logits.flatten(0, 1), torch.gather(y, 1, perm).flatten(), reduction="none")
            ce = lam.view(s, 1) * ce + (1 - lam.view(s, 1)) * ce_perm.view(s, b)
        return ce.mean(1).sum(), logits
    if recipe.labels == "teacher":  # relabel the batch the student actually sees (augmented, mixed)
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
            return kl.mean(1).sum(), logits
    return _kd_loss(logits, target, recipe.temperature).mean(1).sum(), logits


def checkpoint_epochs(epochs: int, checkpoints: int) -> set[int]:
    """``checkpoints`` epochs spread evenly over training, the last one included."""
    if checkpoints < 1:
        return set()
    return set(np.linspace(epochs / checkpoints, epochs, checkpoints).round().astype(int).tolist())


def fit(models: Sequence[nn.Module], generators: Sequence[torch.Generator], x: torch.Tensor, labels: Labels,
        recipe: TrainRecipe, *, dsa: Optional[DSA] = None,
        test: Optional[tuple[torch.Tensor, torch.Tensor]] = None, vectorised: bool = False,
        loss_scale: Optional[Callable[[int], float]] = None,
        extra_loss: Optional[Callable[[nn.Module, torch.Tensor], torch.Tensor]] = None,
        on_epoch: Optional[Callable[[int, float], None]] = None,
        on_checkpoint: Optional[Callable[[int, list[float]], None]] = None,
        optimizer: Optional[torch.optim.Optimizer] = None,
        objective: Optional[Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]] = None
        ) -> list[dict[str, Any]]:
    """Train ``models`` (initialised; one generator each) on ``(x, labels)`` under ``recipe``.

    ``loss_scale(epoch)`` multiplies the batch loss; ``extra_loss(model, clean_batch)`` adds a term
    computed on the un-augmented batch (one network only); ``on_epoch(epoch, mean_loss)`` runs after
    every epoch, ``on_checkpoint(epoch, accuracies)`` after each test checkpoint (one fraction per network, in
    the order of ``models``); ``optimizer`` continues an optimiser the caller keeps (one network, e.g. a pool
    member trained a few steps at a time) instead of a fresh one; ``objective(model, batch, generator)`` replaces the
    label loss (one network; self-supervised training draws its own views of the batch from the generator,
    so pass no ``dsa``). Returns per network: "final" and "best" test accuracy (None without ``test``), the
    test "curve" and, at the same checkpoints, the "loss_curve" (the mean over the networks trained
    together), "train_accuracy" on the (augmented) batches it saw (hard labels without mixup, else
    None), "seconds" per network and "vectorised". The networks hold their trained weights.
    """
    if (extra_loss is not None or objective is not None) and len(models) != 1:
        raise ValueError("an extra loss term or an objective needs exactly one network per training run")
    students = Students(models, vectorised)
    gens = list(generators)
    opt = optimizer or _optimizer(students.parameters(), recipe, recipe.lr)
    hits = torch.zeros(len(models), dtype=torch.long, device=x.device)  # correct training predictions
    n, epochs, bs, dev = len(x), recipe.epochs, recipe.batch_size, x.device
    shape = tuple(x.shape[1:])
    check_at = checkpoint_epochs(epochs, recipe.checkpoints) if test is not None else set()
    decay_after = epochs // 2 if recipe.decay_after is None else recipe.decay_after
    curves: list[list[tuple[int, float]]] = [[] for _ in models]
    losses: list[tuple[int, float]] = []
    students.train(True)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        if recipe.fresh_optimizer_at_decay and recipe.schedule == "step" and epoch == decay_after + 1:
            opt = _optimizer(students.parameters(), recipe, recipe.lr)
        for group in opt.param_groups:
            group["lr"] = recipe.lr_at(epoch)
        orders = [torch.randperm(n, generator=g).to(dev) for g in gens]
        epoch_loss = torch.zeros((), device=dev)
        for start in range(0, n, bs):
            idx = torch.stack([o[start:start + bs] for o in orders])  # (S, B)
            clean = xb = x[idx]
            if dsa is not None:
                params = _cat_params([dsa.sample(idx.shape[1], shape, g, device=dev) for g in gens])
                xb = dsa.apply(xb.flatten(0, 1), params).view_as(xb)
            mix = _draw_mixup(gens, idx.shape[1], recipe.mixup, dev) if recipe.mixup > 0 else None
            if objective is not None:
                loss = objective(students.models[0], xb[0], gens[0])
            else:
                loss, logits = _loss(students, xb, idx, labels, recipe, mix)
                if recipe.labels == "hard":
                    hits += (logits.detach().argmax(-1) == labels.hard[idx]).sum(1)
            if loss_scale is not None:
                loss = loss_scale(epoch) * loss
            if extra_loss is not None:
                loss = loss + extra_loss(students.models[0], clean[0])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            epoch_loss += loss.detach() * idx.shape[1]
        if epoch in check_at:
            accs = students.accuracy(*test)
            for c, a in zip(curves, accs):
                c.append((epoch, a))
            losses.append((epoch, float(epoch_loss) / (n * len(models))))
            if on_checkpoint is not None:
                on_checkpoint(epoch, accs)
        if on_epoch is not None:
            on_epoch(epoch, float(epoch_loss) / (n * len(models)))
    seconds = (time.perf_counter() - t0) / len(models)
    students.write_back()
    seen = epochs * n
    train_acc = [int(h) / seen if recipe.labels == "hard" and not recipe.mixup and objective is None else None
                 for h in hits.tolist()]
    return [{"final": c[-1][1] if c else None, "best": max(a for _, a in c) if c else None, "curve": c,
             "loss_curve": losses, "train_accuracy": a, "seconds": seconds, "vectorised": students.vectorised}
            for c, a in zip(curves, train_acc)]
