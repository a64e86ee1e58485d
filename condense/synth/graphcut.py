"""``graphcut``: a coreset of IPC real images per class chosen by greedy GraphCut on gradient embeddings.

DeepCore's ``Submodular`` selection with ``GraphCut`` (Guo, Zhao, Bai; DEXA 2022; PatrickZH/DeepCore), class by
class as its ``balance`` mode, and the selector DQ builds its bins with (Zhou et al., ICCV 2023): λ = 1, cosine
similarity of last-layer gradient embeddings (``grad_embed``), greedy maximisation (``submodular``). The network
is a teacher when one is given (``--teacher``), else the run's model trained briefly (``embed_epochs``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import CondenseError
from ..seeding import generator
from .base import MethodConfig, Synthesizer, register_method
from .grad_embed import GRADIENTS, GradEmbedding, cached_embeddings, embedding_network
from .submodular import GREEDY, greedy_graphcut


@dataclass
class GraphCutConfig(MethodConfig):
    iterations: int = 0
    teacher: str = ""        # a teacher file or folder (`condense teachers`); "" = the run's model, trained briefly
    embed_model: str = ""    # the briefly trained network ("" = the run's --model)
    embed_epochs: int = 5    # its epochs on the real training split (0 = a random network)
    embed_lr: float = 0.01
    embed_batch: int = 256
    gradient: str = "ce"     # ce | deepcore (cross-entropy of the softmax probabilities, as DeepCore's code)
    lam: float = 1.0         # GraphCut's λ (DQ: 1)
    greedy: str = "naive"    # naive (DQ's) | lazy | stochastic
    epsilon: float = 0.01    # stochastic greedy's ε


class GradientSelection(Synthesizer):
    """What graphcut and dq share: the embedding network and the gradient embeddings of the training split."""

    iterative = False

    def embeddings(self) -> GradEmbedding:
        cfg, ctx = self.cfg, self.ctx
        if cfg.gradient not in GRADIENTS:
            raise CondenseError(f"Unknown gradient '{cfg.gradient}'; choose one of: {', '.join(GRADIENTS)}.")
        if cfg.greedy not in GREEDY:
            raise CondenseError(f"Unknown greedy '{cfg.greedy}'; choose one of: {', '.join(GREEDY)}.")
        self.net, self.network = embedding_network(ctx, cfg.teacher, cfg.embed_model, cfg.embed_epochs, cfg.embed_lr,
                                                   cfg.embed_batch)
        return cached_embeddings(self.net, self.network["checksum"], ctx, cfg.gradient, cfg.embed_batch)

    def new_synthset(self, images: torch.Tensor, labels: torch.Tensor, **extra):
        synth = super().new_synthset(images, labels, **extra)
        synth.config["embedding_network"] = self.network  # which weights the gradients came from
        return synth


@register_method
class GraphCut(GradientSelection):
    name = "graphcut"
    config_cls = GraphCutConfig

    def init(self):
        ctx, cfg = self.ctx, self.cfg
        emb = self.embeddings()
        labels = ctx.dataset.train_y.cpu()
        chosen = []
        for c in range(ctx.dataset.num_classes):
            members = torch.nonzero(labels == c).squeeze(1)
            picks = greedy_graphcut(emb.rows(members), ctx.run.ipc, cfg.lam, cfg.greedy, epsilon=cfg.epsilon,
                                    generator=generator("bin_greedy", ctx.run.seed, c))
            chosen.append(members[torch.from_numpy(np.asarray(picks, dtype=np.int64))])
        rows = torch.cat(chosen)
        x, y = ctx.dataset.train_x, ctx.dataset.train_y
        self.synth = self.new_synthset(x[rows.to(x.device)].detach().clone(), y[rows.to(y.device)].clone(),
                                       source_indices=rows)
        return self.synth
