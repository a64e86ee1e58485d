"""KRR-ST: self-supervised dataset distillation for transfer learning (Lee, Lee, Ko, Kawaguchi, Lee, Hwang;
ICLR 2024; official db-Lee/selfsup_dd ``train.py``, ``algorithms/distill.py``, ``model_pool.py``).

From the unlabeled training split, learn images X_s and target representations Y_s so that a network
pre-trained on (X_s, Y_s) with MSE mimics a self-supervised target model. The inner problem (a linear head
on the features of a network) is solved in closed form by kernel ridge regression:

    φ(x) = [embed(x), 1],  K_ss = φ(X_s)φ(X_s)ᵀ,  K_ts = φ(X_t)φ(X_s)ᵀ,  λ = 1e-6 · tr(K_ss)
    L = MSE(K_ts (K_ss + λI)⁻¹ Y_s, target(X_t))        X_t: an augmented real batch (crop ±1/8, flip)

- X_s: random real images (no class balance: the source is unlabeled); Y_s = target(X_s), un-augmented. The
  target is a network file from ``condense ssl`` (role ``ssl``; its ``embed``, i.e. the encoder without head),
  given as a file or as the checksum of one in the teacher folder. The set names it by checksum, never by path
  (``config["target"]``: ``condense.teachers.network_reference``; ``method_config.target`` is its checksum), so
  a resumed run, the transfer baseline and a re-run from the set find it by checksum in ``$CONDENSE_TEACHERS``,
  else ``synth_sets/teachers`` (``condense.teachers.find_network``).
- The features come from a pool of ``pool`` networks of the run's model (the official ConvNet-BN 128-256-512;
  ``--model ConvNetBN`` is the nearest registry model) with a D-output linear head. Each starts, at the first
  iteration, at a random age in [1, pool_age) reached by that many full-batch SGD steps of MSE(model(X_s), Y_s)
  (lr 0.1, momentum 0.9, wd 1e-3), is used in eval mode for the kernel, takes one such step after each outer
  iteration it served, and is replaced by a fresh network once it is ``pool_age`` steps old. The official pool
  never clears a member's step counter on reset, so once old a member is reset at every draw and serves as a
  fresh random network from then on; here the counter restarts (``reset_age``; false gives the official
  behaviour). ``pool = 0`` uses a fresh random network every iteration.
- AdamW (lr ``lr_img``: 1e-3, the official argparse default, kept for CPU-sized runs; the README's commands use
  1e-4 for CIFAR-100 and 1e-5 for Tiny-ImageNet and ImageNet over 160,000 iterations) on X_s and Y_s, the
  learning rate decaying linearly to ``lr_final`` × lr over the run (LinearLR).
- X_s lives in the normalised space like every set (the official keeps X_s in raw [0, 1] pixels and feeds it to
  the pool un-normalised, while X_t is normalised: a mismatch not reproduced).

The set stores X_s as images and Y_s as ``regression`` labels (float32 N×D, no class labels); evaluate it with
``condense eval --transfer TARGET``. Every draw of iteration i comes from ``generator("iteration", seed, i)``,
member initialisations from ``seed_for("pool_net", seed, k)`` (k counts the networks the run created), and the
pool is part of the checkpoint, so resume is bit-exact.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..augment import DSA, DSAConfig
from ..errors import CondenseError
from ..kernels import Ridge, embed_in_chunks, feature_kernel, krr_predict
from ..models import create_model, load_network
from ..seeding import generator, seed_for
from ..teachers import default_teachers_dir, network_reference, option_file
from ..train import Labels, TrainRecipe, fit
from .base import MethodConfig, Synthesizer, register_method


@dataclass
class KRRSTConfig(MethodConfig):
    iterations: int = 200         # CPU-sized; the official runs 160,000
    target: str = ""              # the self-supervised target (`condense ssl`): a network file, or the checksum of
                                  # one in the teacher folder; required. The set records it by checksum.
    images: int = 0               # |X_s|; 0 = IPC × classes (the official CIFAR-100 set has 1,000)
    lr_img: float = 1e-3          # AdamW on X_s and Y_s (official default; its README: 1e-4 on CIFAR-100)
    lr_final: float = 1e-3        # the lr decays linearly to lr_final × lr_img over the run
    weight_decay: float = 0.0     # of the outer AdamW
    batch_real: int = 1024        # augmented real images per iteration
    augment: bool = True          # random crop (±1/8 of the side) and, where label-safe, flip on the real batch
    pool: int = 10                # online networks; 0 = a fresh random network every iteration
    pool_age: int = 1000          # steps after which a member is replaced by a fresh one
    reset_age: bool = True        # a replaced member starts again at age 0 (the official code keeps the old count)
    pool_lr: float = 0.1
    pool_momentum: float = 0.9
    pool_weight_decay: float = 1e-3
    ridge: float = 1e-6           # λ = ridge · tr(K_ss)


class OnlinePool:
    """KRR-ST's model pool: networks trained online on the set itself, one full-batch MSE step per use."""

    def __init__(self, method: "KRRST", dim: int):
        self.method, self.dim, self.cfg = method, dim, method.cfg
        self.created = 0
        self.members: list[dict[str, Any]] = []   # {"net", "opt", "age", "index"}

    def _fresh(self) -> dict[str, Any]:
        ctx = self.method.ctx
        c, h, w = ctx.dataset.image_shape
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_for("pool_net", ctx.run.seed, self.created))
            net = create_model(ctx.run.model, c, self.dim, (h, w), **ctx.run.model_args).to(ctx.device)
        opt = torch.optim.SGD(net.parameters(), lr=self.cfg.pool_lr, momentum=self.cfg.pool_momentum,
                              weight_decay=self.cfg.pool_weight_decay)
        self.created += 1
        return {"net": net, "opt": opt, "age": 0, "index": self.created - 1}

    def _train(self, member: dict[str, Any], steps: int, seed: int) -> None:
        """``steps`` full-batch SGD steps of MSE(net(X_s), Y_s) through the one training loop."""
        x, y = (t.detach() for t in self.method.xy())
        recipe = TrainRecipe(epochs=steps, batch_size=len(x), lr=self.cfg.pool_lr, momentum=self.cfg.pool_momentum,
                             weight_decay=self.cfg.pool_weight_decay, labels="regression")
        fit([member["net"]], [torch.Generator().manual_seed(seed)], x, Labels(torch.zeros(len(x), dtype=torch.long,
            device=x.device), regression=y), recipe, optimizer=member["opt"])
        member["age"] += steps

    def fill(self) -> None:
        """The starting pool: members at random ages in [1, pool_age) (drawn from ``generator("pool_net", seed,
        -1)``), each trained that many steps on the set as it is when the first iteration starts."""
        gen = generator("pool_net", self.method.ctx.run.seed, -1)
        for _ in range(self.cfg.pool):
            member = self._fresh()
            age = int(torch.randint(1, max(2, self.cfg.pool_age), (1,), generator=gen))
            self._train(member, age, seed_for("pool_train", self.method.ctx.run.seed, -1 - member["index"]))
            self.members.append(member)

    def draw(self, gen: torch.Generator) -> dict[str, Any]:
        return self.members[int(torch.randint(len(self.members), (1,), generator=gen))]

    def after_use(self, member: dict[str, Any], it: int) -> None:
        """One online step for the member that served iteration ``it``, or a fresh network when it is old."""
        if member["age"] >= self.cfg.pool_age:
            fresh = self._fresh()
            fresh["age"] = 0 if self.cfg.reset_age else member["age"]
            self.members[self.members.index(member)] = fresh
        else:
            self._train(member, 1, seed_for("pool_train", self.method.ctx.run.seed, it))

    def state_dict(self) -> dict[str, Any]:
        return {"created": self.created,
                "members": [{"index": m["index"], "age": m["age"], "net": m["net"].state_dict(),
                             "opt": m["opt"].state_dict()} for m in self.members]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.members = []
        for s in state["members"]:
            self.created = int(s["index"])
            m = self._fresh()
            m["net"].load_state_dict(s["net"])
            m["opt"].load_state_dict(s["opt"])
            m["age"] = int(s["age"])
            self.members.append(m)
        self.created = int(state["created"])


@register_method
class KRRST(Synthesizer):
    name = "krr_st"
    config_cls = KRRSTConfig
    scheduled = True

    def xy(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.synth.images, self.synth.labels

    def _target_file(self) -> str:
        """The file the ``target`` option names: a network file, or the checksum of one in the teacher folder
        (a set's own config names its target so; a resumed run and a re-run from a set find it wherever it is)."""
        cfg, ds = self.cfg, self.ctx.dataset
        if not cfg.target:
            raise CondenseError("krr_st needs a self-supervised target network: train one with `condense ssl "
                                f"--dataset {ds.name} --out {os.path.join(default_teachers_dir(), 'ssl.h5')}` and "
                                "pass --set target=FILE.")
        return option_file(cfg.target, role="ssl", architecture="self-supervised target",
                           where="krr_st's option target", give="--set target=FILE",
                           rebuild=f"condense ssl --dataset {ds.name}")

    def _load_target(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The frozen target network and how the set names it (``network_reference``: by checksum, no path)."""
        ds = self.ctx.dataset
        path = self._target_file()
        target, info = load_network(path, self.ctx.device)
        if (info.channels, *info.image_size) != tuple(ds.image_shape):
            raise CondenseError(f"The target network {path} takes {info.channels}×{info.image_size[0]}×"
                                f"{info.image_size[1]} images but {ds.name} has {'×'.join(map(str, ds.image_shape))}.")
        if not hasattr(target, "embed"):
            raise CondenseError(f"The target network {path} has no embed(); use a registry model.")
        return target.requires_grad_(False), network_reference(info)

    def init(self):
        cfg, ctx = self.cfg, self.ctx
        if cfg.lr_final > 1:
            raise CondenseError(f"lr_final is the fraction of lr_img the run ends at; it must be at most 1, "
                                f"got {cfg.lr_final}.")
        self.target, target_info = self._load_target()
        n_train = len(ctx.dataset.train_y)
        n = cfg.images or ctx.run.ipc * ctx.dataset.num_classes
        if n > n_train:
            raise CondenseError(f"krr_st asks for {n} images but {ctx.dataset.name} has {n_train} training images.")
        gen = generator("iteration", ctx.run.seed, -1)
        rows = torch.randperm(n_train, generator=gen)[:n].to(ctx.dataset.train_x.device)
        images = ctx.dataset.train_x[rows].detach().clone().to(ctx.device)
        with torch.no_grad():
            targets = embed_in_chunks(self.target.embed, images).float()
        images.requires_grad_(True)
        targets.requires_grad_(True)
        self.optimizer = torch.optim.AdamW([images, targets], lr=cfg.lr_img, weight_decay=cfg.weight_decay)
        self.synth = self.new_synthset(images, targets, label_kind="regression")
        self.synth.config["target"] = target_info  # the resume key and the transfer baseline read it
        self.synth.config["method_config"]["target"] = target_info["checksum"]  # not where the file was
        strategy = "crop_flip" if ctx.dataset.hflip_safe else "crop"
        self.augment = [DSA(DSAConfig(strategy=s)) for s in strategy.split("_")] if cfg.augment else []
        self.ridge = Ridge(cfg.ridge)
        self.pool: Optional[OnlinePool] = OnlinePool(self, targets.shape[1]) if cfg.pool else None
        return self.synth  # the pool fills at the first iteration, so a resumed run never trains one to discard it

    def _network(self, gen: torch.Generator) -> tuple[torch.nn.Module, Optional[dict[str, Any]]]:
        if self.pool:
            if not self.pool.members:
                self.pool.fill()
            member = self.pool.draw(gen)
            return member["net"], member
        c, h, w = self.ctx.dataset.image_shape
        net = create_model(self.ctx.run.model, c, self.synth.labels.shape[1], (h, w), **self.ctx.run.model_args)
        return net.to(self.ctx.device), None

    def step(self, it):
        cfg, ctx = self.cfg, self.ctx
        gen = generator("iteration", ctx.run.seed, it)
        net, member = self._network(gen)
        data = ctx.dataset
        rows = torch.randperm(len(data.train_y), generator=gen)[:cfg.batch_real].to(data.train_x.device)
        real = data.train_x[rows]
        for dsa in self.augment:  # crop, then flip: one family per DSA object, independent values per image
            real = dsa(real, gen)
        images, targets = self.xy()
        net.eval().requires_grad_(False)  # official: the sampled model in eval mode, a fixed feature map
        with torch.no_grad():
            y_real = embed_in_chunks(self.target.embed, real).float()
            f_real = embed_in_chunks(net.embed, real)
        f_syn = net.embed(images)
        pred = krr_predict(feature_kernel(f_real, f_syn), feature_kernel(f_syn), targets, self.ridge)
        loss = F.mse_loss(pred, y_real)
        for group in self.optimizer.param_groups:  # linear decay, a function of the iteration (resume-exact)
            group["lr"] = cfg.lr_img * (1 - (1 - cfg.lr_final) * it / max(1, cfg.iterations))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        net.train().requires_grad_(True)
        if member is not None:
            self.pool.after_use(member, it)
        return {"loss": loss.item()}

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict(), **({"pool": self.pool.state_dict()} if self.pool else {})}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        if self.pool:
            self.pool.load_state_dict(state["pool"])
