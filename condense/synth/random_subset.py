"""The `random` baseline: a class-balanced random subset of real training images."""
from __future__ import annotations

from dataclasses import dataclass

from .base import MethodConfig, Synthesizer, iteration_seed, make_generator, register_method
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
        gen = make_generator(iteration_seed(ctx.run.seed, -1))
        images, labels = initial_images(ctx.sampler, ctx.dataset.num_classes, ctx.run.ipc, "real", gen, ctx.device)
        self.synth = self.new_synthset(images, labels)
        return self.synth
