"""Distribution matching (DM, Zhao & Bilen 2023): match per-class mean embeddings of real and
synthetic images under a fresh, frozen random network each iteration (METHODS.md §2).

Speed: all classes go through the network in one forward pass (instance norm is per sample, so
the maths is unchanged), with one siamese DSA draw per class and the real side under no_grad in cache-sized chunks.

Scale-out: the per-class losses are independent, so under torchrun each rank draws everything a single
process would (same network, batches and DSA parameters) but forwards and updates only its own classes;
``sync`` shares the rows before every checkpoint and the final save, so the file is the one-process file.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import dist
from ..augment import DSA, DSAConfig, class_siamese, hflip_concat
from .base import MethodConfig, Synthesizer, iteration_seed, make_generator, methods_with, register_method
from .init import initial_images
from .matching import chunked, class_means, frozen


@dataclass
class DMConfig(MethodConfig):
    iterations: int = 60
    lr_img: float = 1.0
    momentum: float = 0.5
    batch_real: int = 256
    init: str = "real"
    dsa: bool = True
    flip: bool = False  # FYI plug-in: match [S; hflip(S)] on the synthetic side
    min_distance: float = 0.0          # defence: every image ≥ d (L2, [0, 1] pixels) from all real training images; 0 = off
    min_distance_weight: float = 50.0  # weight of its penalty 50·mean((d − min(d, d_i))²) (Loo et al. code)


class PixelSynthesizer(Synthesizer):
    """Shared set-up for methods that learn pixels with SGD from a real or noise init."""

    supports_flip = True
    shards_classes = True
    supports_min_distance = True  # descend() adds the penalty and projects after each step

    def init(self):
        ctx, cfg = self.ctx, self.cfg
        gen = make_generator(iteration_seed(ctx.run.seed, -1))
        images, labels = initial_images(ctx.sampler, ctx.dataset.num_classes, ctx.run.ipc, cfg.init, gen, ctx.device)
        images.requires_grad_(True)
        self.optimizer = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
        strategy = ctx.dataset.dsa_strategy
        self.dsa = DSA(DSAConfig(strategy=strategy, flip_first=cfg.flip and "flip" in strategy))
        self.synth = self.new_synthset(images, labels)
        self.defence = None
        if cfg.min_distance:  # penalty in the loss + projection after each step (defence.py)
            from ..errors import CondenseError
            from .defence import MinDistance

            if not self.supports_min_distance:
                supported = " and ".join(methods_with("supports_min_distance"))
                raise CondenseError(f"--min-distance is supported by {supported}, not by '{self.name}'.")
            self.defence = MinDistance(ctx.dataset, cfg.min_distance, cfg.min_distance_weight)
        self.classes = torch.tensor(dist.shard(range(ctx.dataset.num_classes)), device=labels.device)
        return self.synth

    def _own(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's classes only (everything in a single process)."""
        if dist.world() == 1:
            return x, y
        keep = torch.isin(y, self.classes)
        return x[keep], y[keep]

    def synthetic_batch(self):
        images, labels = self.synth.images, self.synth.labels
        return hflip_concat(images, labels) if self.cfg.flip else (images, labels)

    def draw(self, it):
        """This iteration's fresh frozen network and real/synthetic batches, one siamese DSA draw per class."""
        ctx, cfg = self.ctx, self.cfg
        k = ctx.dataset.num_classes
        gen = make_generator(iteration_seed(ctx.run.seed, it))
        net = frozen(ctx.new_model())
        real_x, real_y = self._own(*ctx.sampler.sample_classes(cfg.batch_real, gen))
        syn_x, syn_y = self._own(*self.synthetic_batch())
        if cfg.dsa:
            real_x, syn_x = class_siamese(self.dsa, real_x, real_y, syn_x, syn_y, k, gen)
        return net, real_x, real_y, syn_x, syn_y

    def descend(self, loss: torch.Tensor) -> None:
        if self.defence is not None:
            loss = loss + self.defence.penalty(self.synth.images)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.defence is not None:
            self.defence.project(self.synth.images.data)

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict()}

    def sync(self):
        if dist.world() == 1:
            return
        images = self.synth.images
        mine = torch.isin(self.synth.labels, self.classes)
        dist.share_rows(images, mine)
        buffer = self.optimizer.state.get(images, {}).get("momentum_buffer")
        if buffer is not None:
            dist.share_rows(buffer, mine)

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])


@register_method
class DM(PixelSynthesizer):
    name = "dm"
    config_cls = DMConfig

    def step(self, it):
        net, real_x, real_y, syn_x, syn_y = self.draw(it)
        k = self.ctx.dataset.num_classes
        real_mean = class_means(chunked(net.embed, real_x), real_y, k)
        syn_mean = class_means(net.embed(syn_x), syn_y, k)
        loss = ((real_mean - syn_mean) ** 2).sum()
        self.descend(loss)
        return {"loss": loss.item()}
