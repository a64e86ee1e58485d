"""Methods that learn pixels with SGD from real or noise images: the base of DM, DataDAM and DC/DSA.

``draw`` gives an iteration's fresh frozen network and its real and synthetic batches with one
siamese DSA draw per class; ``descend`` takes the image step (and, for methods with the
min-distance mixin, the defence's penalty and projection). Under torchrun each rank updates its own
classes (``shards_classes``) and ``sync`` shares them before a checkpoint or the final save.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import dist
from ..augment import class_siamese, dsa_for, hflip_concat
from ..seeding import generator
from .base import MethodConfig, Synthesizer
from .defence import MinDistance
from .init import initial_images
from .matching import frozen


@dataclass
class PixelConfig(MethodConfig):
    iterations: int = 60
    lr_img: float = 1.0
    momentum: float = 0.5
    batch_real: int = 256
    init: str = "real"
    dsa: bool = True
    flip: bool = False  # FYI plug-in: match [S; hflip(S)] on the synthetic side


class PixelSynthesizer(Synthesizer):
    supports_flip = True
    shards_classes = True

    def init(self):
        ctx, cfg = self.ctx, self.cfg
        images, labels, _ = initial_images(ctx.sampler, ctx.dataset.num_classes, ctx.run.ipc, cfg.init,
                                           generator("iteration", ctx.run.seed, -1), ctx.device)
        images.requires_grad_(True)
        self.optimizer = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
        self.dsa = dsa_for(ctx.dataset.hflip_safe, flip_first=cfg.flip)
        self.synth = self.new_synthset(images, labels)
        self.defence = MinDistance.of(cfg, ctx.dataset)
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
        gen = generator("iteration", ctx.run.seed, it)
        net = frozen(ctx.new_model())
        real_x, real_y = self._own(*ctx.sampler.sample_classes(cfg.batch_real, gen))
        syn_x, syn_y = self._own(*self.synthetic_batch())
        if cfg.dsa:
            real_x, syn_x = class_siamese(self.dsa, real_x, real_y, syn_x, syn_y, ctx.dataset.num_classes, gen)
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

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])

    def sync(self):
        if dist.world() == 1:
            return
        images = self.synth.images
        mine = torch.isin(self.synth.labels, self.classes)
        dist.share_rows(images, mine)
        buffer = self.optimizer.state.get(images, {}).get("momentum_buffer")
        if buffer is not None:
            dist.share_rows(buffer, mine)
