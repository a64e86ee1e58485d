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
from .pool import PoolConfig


@dataclass
class DMConfig(PixelConfig, MinDistanceConfig, PoolConfig):
    pass


@register_method
class DM(PixelSynthesizer):
    name = "dm"
    config_cls = DMConfig

    def match(self, net, real_x, real_y, syn_x, syn_y):
        k = self.ctx.dataset.num_classes
        real_mean = class_means(chunked(net.embed, real_x), real_y, k)
        syn_embed = net.embed(syn_x)
        return ((real_mean - class_means(syn_embed, syn_y, k)) ** 2).sum(), syn_embed, {}


@dataclass
class IDMConfig(DMConfig):
    """IDM's official CIFAR-10 IPC 10 command (``--aug --net_decay --syn_ce --ce_weight 0.5 --lr_img 0.2
    --train_net_num 1``): multi-formation factor 2, a pool of up to 100 networks, two of them trained 10 SGD
    steps on 256 real images after every iteration, the class-aware regulariser. Rows per IPC in presets.py."""

    iterations: int = 200       # CPU-sized; the paper runs 20,000
    lr_img: float = 0.2
    factor: int = 2
    pool: int = 100
    ce_weight: float = 0.5


@register_method
class IDM(DM):
    """IDM (Zhao et al., CVPR 2023; official uitrbn/IDM): DM with partition and expansion, enriched model
    sampling and class-aware regularisation. One image step per iteration for all classes, where the official
    code steps once per class (with momentum 0.5 the per-class steps also move the other classes' images)."""

    name = "idm"
    config_cls = IDMConfig
