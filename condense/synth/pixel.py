"""Methods that learn pixels with SGD from real or noise images: the base of DM, DataDAM and DC/DSA.

``step`` draws the iteration's network (a fresh frozen one, or a member of the network pool) and its
real and synthetic batches with one siamese DSA draw per class, asks the method's ``match`` for the
loss, adds the class-aware regulariser when a pool member is matched, and ``descend`` takes the image
step (and, for methods with the min-distance mixin, the defence's penalty and projection). Under
torchrun each rank updates its own classes (``shards_classes``) and ``sync`` shares them before a
checkpoint or the final save.

Multi-formation (``factor`` f > 1; IDC, Kim et al. ICML 2022; IDM, Zhao et al. CVPR 2023): every stored
image holds f×f sub-images, initialised from f² different real images of its class downscaled
(bilinear, as IDM), and the set is matched, trained and evaluated through its decoder
(``SynthSet.decode``), so IPC stored images stand for f²·IPC training images at the same storage.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import dist
from ..augment import class_siamese, dsa_for, hflip_concat
from ..errors import CondenseError
from ..seeding import generator
from ..store import decode_images
from .base import MethodConfig, Synthesizer
from .defence import MinDistance
from .init import initial_images
from .matching import class_means, frozen
from .pool import NetworkPool, matching


@dataclass
class PixelConfig(MethodConfig):
    iterations: int = 60
    lr_img: float = 1.0
    momentum: float = 0.5
    batch_real: int = 256
    init: str = "real"
    dsa: bool = True
    flip: bool = False  # FYI plug-in: match [S; hflip(S)] on the synthetic side
    factor: int = 1     # multi-formation: each stored image holds factor × factor sub-images


class PixelSynthesizer(Synthesizer):
    supports_flip = True
    shards_classes = True

    def init(self):
        ctx, cfg = self.ctx, self.cfg
        f = cfg.factor
        if isinstance(f, bool) or not isinstance(f, int) or f < 1:
            raise CondenseError(f"The multi-formation factor must be a whole number >= 1, got {f!r}.")
        if f > 1 and getattr(cfg, "min_distance", 0):
            raise CondenseError("--min-distance measures stored images against real ones; it does not combine with "
                                "a multi-formation factor.")
        images, labels, _ = initial_images(ctx.sampler, ctx.dataset.num_classes, ctx.run.ipc, cfg.init,
                                           generator("iteration", ctx.run.seed, -1), ctx.device, factor=f)
        images.requires_grad_(True)
        self.optimizer = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
        self.dsa = dsa_for(ctx.dataset.hflip_safe, flip_first=cfg.flip)
        decoder = {"kind": "multi_formation", "factor": f} if f > 1 else {"kind": "identity"}
        self.synth = self.new_synthset(images, labels, decoder=decoder)  # learned pixels: no source rows
        self.defence = MinDistance.of(cfg, ctx.dataset)
        self.pool = NetworkPool.of(cfg, ctx)
        self.classes = torch.tensor(dist.shard(range(ctx.dataset.num_classes)), device=labels.device)
        return self.synth

    def _own(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's classes only (everything in a single process)."""
        if dist.world() == 1:
            return x, y
        keep = torch.isin(y, self.classes)
        return x[keep], y[keep]

    def synthetic_batch(self):
        """The training images the set stands for (decoded), with the FYI mirrors when asked."""
        s = self.synth
        images, labels = decode_images(s.images, s.labels, s.decoder, s.mean, s.std)
        return hflip_concat(images, labels) if self.cfg.flip else (images, labels)

    def match(self, net, real_x, real_y, syn_x, syn_y) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """The method's loss, the synthetic embeddings (for the class-aware regulariser) and extra statistics."""
        raise NotImplementedError

    def step(self, it):
        """One matching step: a network (fresh, or drawn from the pool), real/synthetic batches with one siamese
        DSA draw per class, ``match``, the class-aware regulariser, the image step; then the pool trains."""
        ctx, cfg = self.ctx, self.cfg
        k = ctx.dataset.num_classes
        gen = generator("iteration", ctx.run.seed, it)
        member = self.pool.draw(it, gen) if self.pool else None
        net = member.net if member else frozen(ctx.new_model())
        real_x, real_y = self._own(*ctx.sampler.sample_classes(cfg.batch_real, gen))
        syn_x, syn_y = self._own(*self.synthetic_batch())
        if cfg.dsa:
            real_x, syn_x = class_siamese(self.dsa, real_x, real_y, syn_x, syn_y, k, gen)
        with matching(net) if member else nullcontext():
            loss, syn_embed, stats = self.match(net, real_x, real_y, syn_x, syn_y)
            if member and cfg.ce_weight and member.accuracy:  # IDM: weight × the member's accuracy in percent
                ce = F.cross_entropy(net.classifier(syn_embed), syn_y, reduction="none")
                ce = class_means(ce[:, None], syn_y, k).sum()
                loss = loss + cfg.ce_weight * member.accuracy * ce
                stats["ce"] = ce.item()
            self.descend(loss)
        if self.pool:
            self.pool.train(it)
        return {"loss": loss.item(), **stats}

    def descend(self, loss: torch.Tensor) -> None:
        if self.defence is not None:
            loss = loss + self.defence.penalty(self.synth.images)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.defence is not None:
            self.defence.project(self.synth.images.data)

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict(), **({"pool": self.pool.state_dict()} if self.pool else {})}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        if self.pool:
            self.pool.load_state_dict(state["pool"])

    def sync(self):
        if dist.world() == 1:
            return
        images = self.synth.images
        mine = torch.isin(self.synth.labels, self.classes)
        dist.share_rows(images, mine)
        buffer = self.optimizer.state.get(images, {}).get("momentum_buffer")
        if buffer is not None:
            dist.share_rows(buffer, mine)
