"""A pool of networks trained on real data while the set is distilled: IDM's model queue (Zhao et al.,
CVPR 2023; official uitrbn/IDM ``IDM_cifar10.py``).

DM and DataDAM match features of a fresh random network every iteration. With a pool, the matched
network is drawn from a queue of networks that keep learning on real data, so the matched features
become discriminative. The queue starts with ``pool_initial`` random networks; at every iteration
divisible by ``pool_interval`` a new random one joins and, when the queue is full, the oldest leaves
(FIFO). Each iteration one member is drawn for matching; afterwards ``pool_train_nets`` members each
take ``pool_steps`` SGD steps on random real images of all classes, without augmentation (IDM's
``--net_decay``: momentum 0.9, weight decay 5e-4, each member keeping its optimiser).

Each member's training accuracy (percent) on its last real batches scales the class-aware
regulariser (``ce_weight``), as IDM scales it by its running accuracy meter; a member that has not
trained yet has none, which switches the term off. Every draw comes from the run's seed (streams
``iteration``, ``pool_net``, ``pool_train``) and the whole pool is part of the checkpoint, so resume
is bit-exact, and every torchrun rank keeps the same pool.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch

from ..errors import CondenseError
from ..seeding import generator, seed_for
from ..train import Labels, TrainRecipe, fit


@dataclass
class PoolConfig:
    """Mixin for configs of matching methods that can draw their network from a pool (dm, datadam)."""

    pool: int = 0                 # networks kept; 0 = off (a fresh random network every iteration)
    pool_initial: int = 3         # networks at the start (IDM: 3, plus the one joining at iteration 0)
    pool_interval: int = 30       # a new random network joins every this many iterations
    pool_train_nets: int = 2      # members trained after each iteration (IDM fetch_net_num)
    pool_steps: int = 10          # SGD steps each (IDM model_train_steps)
    pool_batch: int = 256         # real images per step, all classes, not augmented
    pool_lr: float = 0.01
    pool_momentum: float = 0.9
    pool_weight_decay: float = 5e-4
    ce_weight: float = 0.0        # class-aware regulariser: ce_weight × member accuracy (%) × CE on the set


@dataclass
class Member:
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    index: int                    # the member's number in the run (seeds its initialisation)
    accuracy: float = 0.0         # percent, on the real batches of its last training; 0 = not trained yet


class NetworkPool:
    def __init__(self, cfg: PoolConfig, ctx: Any):
        checks = {"pool": 1, "pool_initial": 1, "pool_interval": 1, "pool_train_nets": 0, "pool_steps": 1,
                  "pool_batch": 1}
        for name, low in checks.items():
            v = getattr(cfg, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise CondenseError(f"Option '{name}' must be a whole number >= {low} when the pool is on, got {v!r}.")
        if not (cfg.pool_lr > 0 and cfg.pool_momentum >= 0 and cfg.pool_weight_decay >= 0 and cfg.ce_weight >= 0):
            raise CondenseError("The pool needs pool_lr > 0 and non-negative pool_momentum, pool_weight_decay and "
                                "ce_weight.")
        self.cfg, self.ctx = cfg, ctx
        self.members: list[Member] = []
        self.joined = 0
        self.recipe = TrainRecipe(epochs=1, batch_size=cfg.pool_batch, lr=cfg.pool_lr, momentum=cfg.pool_momentum,
                                  weight_decay=cfg.pool_weight_decay)
        for _ in range(min(cfg.pool_initial, cfg.pool)):
            self._join()

    @classmethod
    def of(cls, cfg: Any, ctx: Any) -> Optional["NetworkPool"]:
        return cls(cfg, ctx) if getattr(cfg, "pool", 0) else None

    def _new_member(self, index: int) -> Member:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_for("pool_net", self.ctx.run.seed, index))
            net = self.ctx.new_model()
        opt = torch.optim.SGD(net.parameters(), lr=self.cfg.pool_lr, momentum=self.cfg.pool_momentum,
                              weight_decay=self.cfg.pool_weight_decay)
        return Member(net, opt, index)

    def _join(self) -> None:
        if len(self.members) == self.cfg.pool:
            self.members.pop(0)
        self.members.append(self._new_member(self.joined))
        self.joined += 1

    def draw(self, it: int, gen: torch.Generator) -> Member:
        """The member matched at iteration ``it`` (a newcomer joins first when ``it`` is due)."""
        if it % self.cfg.pool_interval == 0:
            self._join()
        return self.members[int(torch.randint(len(self.members), (1,), generator=gen))]

    def train(self, it: int) -> None:
        """After iteration ``it``: some members take their SGD steps on random real images."""
        gen = generator("pool_train", self.ctx.run.seed, it)
        data = self.ctx.dataset
        order = torch.randperm(len(self.members), generator=gen)[:self.cfg.pool_train_nets]
        for i in order.tolist():
            m = self.members[i]
            rows = torch.randperm(len(data.train_y), generator=gen)[:self.cfg.pool_steps * self.cfg.pool_batch]
            rows = rows.to(data.train_x.device)
            out = fit([m.net], [gen], data.train_x[rows], Labels(data.train_y[rows]), self.recipe, optimizer=m.optimizer)
            m.accuracy = 100 * out[0]["train_accuracy"]

    def state_dict(self) -> dict[str, Any]:
        return {"joined": self.joined, "members": [{"index": m.index, "accuracy": m.accuracy, "net": m.net.state_dict(),
                                                    "optimizer": m.optimizer.state_dict()} for m in self.members]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.joined, self.members = int(state["joined"]), []
        for s in state["members"]:
            m = self._new_member(int(s["index"]))
            m.net.load_state_dict(s["net"])
            m.optimizer.load_state_dict(s["optimizer"])
            m.accuracy = float(s["accuracy"])
            self.members.append(m)


@contextmanager
def matching(net: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """A pool member as a fixed feature map for one matching step: eval mode (as IDM), no parameter grads."""
    was_training = net.training
    net.eval().requires_grad_(False)
    try:
        yield net
    finally:
        net.train(was_training).requires_grad_(True)
