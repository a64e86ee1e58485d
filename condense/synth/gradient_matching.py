"""Gradient matching: DC (Zhao, Mopuri & Bilen, ICLR 2021) and DSA (Zhao & Bilen, ICML 2021); official
VICO-UoE/DatasetCondensation ``main.py``.

Per outer iteration a fresh network; ``outer_loop`` times: match, class by class, the gradient
of the CE loss on a real batch with the gradient on the synthetic images of that class, take one
image step, then train the network on the synthetic set for ``inner_loop`` epochs. The
distance is layer-wise: each gradient reshaped to (out_rows, rest), Σ (1 − cos) over rows, and
1-D parameters (biases, norm affine) contribute nothing. DSA is the same with one siamese
augmentation draw per class on both sides (and non-siamese DSA in the inner loop).

The synthetic gradients of all classes come from one ``torch.func.vmap(grad(...))`` call
(classes as the vmapped dimension), so the double backward is a single graph instead of K.
The real side needs no graph: per class, in cache-sized chunks on CPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ..augment import class_siamese
from ..errors import CondenseError
from ..models import batchnorm_layers
from ..seeding import generator
from ..train import Labels, TrainRecipe, fit
from .base import register_method
from .pixel import PixelConfig, PixelSynthesizer

DISTANCES = ("ours", "mse", "cos")
_EPS = 1e-6  # official denominator guard in the cosine


@dataclass
class DCConfig(PixelConfig):
    """The pixel-learning fields with DC's defaults, plus the inner loop and the distance."""

    iterations: int = 100
    lr_img: float = 0.1
    init: str = "noise"       # DC default; DSA recommends real
    dsa: bool = False
    outer_loop: int = 1       # set per IPC by the preset table (official get_loops)
    inner_loop: int = 1
    lr_net: float = 0.01      # inner network: plain SGD on the synthetic set
    batch_train: int = 256
    bn_real: int = 16         # real images per class that fix BatchNorm statistics before matching
    distance: str = "ours"    # ours | mse | cos


@dataclass
class DSAMethodConfig(DCConfig):
    init: str = "real"
    dsa: bool = True


def layer_distance(gs: torch.Tensor, gr: torch.Tensor) -> torch.Tensor:
    """Σ over output rows of (1 − cos(gs_row, gr_row)); 1-D parameters give 0."""
    if gr.dim() <= 1:
        return gs.new_zeros(())
    gs, gr = gs.reshape(gs.shape[0], -1), gr.reshape(gr.shape[0], -1)
    cos = (gs * gr).sum(-1) / (gs.norm(dim=-1) * gr.norm(dim=-1) + _EPS)
    return (1 - cos).sum()


def match_distance(gs: Sequence[torch.Tensor], gr: Sequence[torch.Tensor], metric: str = "ours") -> torch.Tensor:
    """Distance between two lists of per-parameter gradients (synthetic, real) of one class."""
    if metric == "ours":
        return sum((layer_distance(s, r) for s, r in zip(gs, gr)), gs[0].new_zeros(()))
    if metric == "mse":
        return sum((((s - r) ** 2).sum() for s, r in zip(gs, gr)), gs[0].new_zeros(()))
    if metric == "cos":
        s, r = torch.cat([t.flatten() for t in gs]), torch.cat([t.flatten() for t in gr])
        return 1 - (s * r).sum() / (s.norm() * r.norm() + _EPS)
    raise CondenseError(f"Unknown gradient distance '{metric}'; choose one of: {', '.join(DISTANCES)}.")


def fix_batchnorm_statistics(net: torch.nn.Module, real_x: torch.Tensor) -> None:
    """Official trick: one train-mode forward of a real batch updates the running statistics,
    then BatchNorm layers go to eval mode so matching uses real statistics on both sides."""
    net.train()
    with torch.no_grad():
        net(real_x)
    for m in batchnorm_layers(net):
        m.eval()


class GradientMatching(PixelSynthesizer):
    shards_classes = False  # the inner network trains on every class's images: no independent shares

    def init(self):
        cfg = self.cfg
        if cfg.distance not in DISTANCES:
            raise CondenseError(f"Unknown gradient distance '{cfg.distance}'; choose one of: {', '.join(DISTANCES)}.")
        for name in ("outer_loop", "inner_loop", "batch_real", "batch_train", "bn_real"):
            if getattr(cfg, name) < 1:
                raise CondenseError(f"Option '{name}' must be a positive number, got {getattr(cfg, name)}.")
        return super().init()

    def class_gradients(self, net: torch.nn.Module):
        """f(x (K, m, ...), y (K, m)) -> {param: (K, *shape)}: per-class gradient of the mean CE."""
        params = {n: p.detach() for n, p in net.named_parameters()}
        buffers = dict(net.named_buffers())

        def loss(p, x, y):
            return F.cross_entropy(functional_call(net, (p, buffers), (x,)), y)

        per_class = vmap(grad(loss), in_dims=(None, 0, 0))
        return lambda x, y: per_class(params, x, y)

    def real_gradients(self, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> list[list[torch.Tensor]]:
        """Detached per-class gradients; class by class in chunks (mean CE = size-weighted chunk means)."""
        params = [p for p in net.parameters()]
        chunk = 64 if x.device.type == "cpu" else len(x)
        out = []
        for c in range(k):
            xc, yc = x[y == c], y[y == c]
            total = [torch.zeros_like(p) for p in params]
            for xs, ys in zip(xc.split(chunk), yc.split(chunk)):
                g = torch.autograd.grad(F.cross_entropy(net(xs), ys), params)
                for t, gi in zip(total, g):
                    t.add_(gi, alpha=len(xs) / len(xc))
            out.append(total)
        return out

    def match_loss(self, net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
        ctx, cfg = self.ctx, self.cfg
        k = ctx.dataset.num_classes
        n = min(cfg.batch_real, min(ctx.sampler.count(c) for c in range(k)))
        real_x, real_y = ctx.sampler.sample_classes(n, gen)
        syn_x, syn_y = self.synthetic_batch()
        order = torch.argsort(syn_y, stable=True)  # class-major, also for the flipped copies
        syn_x, syn_y = syn_x[order], syn_y[order]
        if cfg.dsa:
            real_x, syn_x = class_siamese(self.dsa, real_x, real_y, syn_x, syn_y, k, gen)
        g_real = self.real_gradients(net, real_x, real_y, k)
        m = len(syn_x) // k
        g_syn = self.class_gradients(net)(syn_x.view(k, m, *syn_x.shape[1:]), syn_y.view(k, m))
        g_syn = list(g_syn.values())
        return sum(match_distance([g[c] for g in g_syn], g_real[c], cfg.distance) for c in range(k))

    def train_inner(self, net: torch.nn.Module, gen: torch.Generator) -> None:
        """``inner_loop`` epochs of plain SGD (no momentum: a fresh optimiser per call loses no state) on the
        detached synthetic set, DSA if enabled."""
        cfg = self.cfg
        x, y = self.synthetic_batch()
        fit([net], [gen], x.detach(), Labels(y), TrainRecipe(epochs=cfg.inner_loop, batch_size=cfg.batch_train,
                                                            lr=cfg.lr_net), dsa=self.dsa if cfg.dsa else None)

    def step(self, it):
        ctx, cfg = self.ctx, self.cfg
        gen = generator("iteration", ctx.run.seed, it)
        net = ctx.new_model()
        net.train()
        batchnorm = bool(batchnorm_layers(net))
        losses = []
        for ol in range(cfg.outer_loop):
            if batchnorm:
                fix_batchnorm_statistics(net, ctx.sampler.sample_classes(cfg.bn_real, gen)[0])
            loss = self.match_loss(net, gen)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
            if ol < cfg.outer_loop - 1:
                self.train_inner(net, gen)
        return {"loss": sum(losses) / len(losses), "first_loss": losses[0]}


@register_method
class DC(GradientMatching):
    name = "dc"
    config_cls = DCConfig


@register_method
class DSAMatching(GradientMatching):
    name = "dsa"
    config_cls = DSAMethodConfig
