"""The `random` baseline: a class-balanced random subset of real training images."""
from __future__ import annotations

from dataclasses import dataclass

from ..seeding import generator
from .base import MethodConfig, Synthesizer, register_method
from .init import initial_images


@dataclass
class RandomConfig(MethodConfig):
    iterations: int = 0


@register_method
class RandomSubset(Synthesizer):
    name = "random"
    config_cls = RandomConfig
    iterative = False

    def init(self):
        ctx = self.ctx
        images, labels, rows = initial_images(ctx.sampler, ctx.dataset.num_classes, ctx.run.ipc, "real",
                                              generator("iteration", ctx.run.seed, -1), ctx.device)
        self.synth = self.new_synthset(images, labels, source_indices=rows)
        return self.synth
