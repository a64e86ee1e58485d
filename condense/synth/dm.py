"""Distribution matching (DM, Zhao & Bilen, WACV 2023; official VICO-UoE/DatasetCondensation ``main_DM.py``):
match per-class mean embeddings of real and synthetic images under a fresh, frozen random network each
iteration.

Speed: all classes go through the network in one forward pass (instance norm is per sample, so the
maths is unchanged), with one siamese DSA draw per class and the real side under no_grad in
cache-sized chunks.

Scale-out: the per-class losses are independent, so under torchrun each rank draws everything a single
process would (same network, batches and DSA parameters) but forwards and updates only its own classes;
``sync`` shares the rows before every checkpoint and the final save, so the file is the one-process file.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import register_method
from .defence import MinDistanceConfig
from .matching import chunked, class_means
from .pixel import PixelConfig, PixelSynthesizer


@dataclass
class DMConfig(PixelConfig, MinDistanceConfig):
    pass


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
