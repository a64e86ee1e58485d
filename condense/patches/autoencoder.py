"""A small masked autoencoder (MAE, He et al., CVPR 2022) that fills the patches a set dropped.

DQ fills its dropped patches with the official MAE ViT-L/16 (facebookresearch/mae, the GAN-loss visualisation
checkpoint). Nothing can be downloaded here, so condense trains this small one on the real training data
(``condense mae``) and stores its weights inside every set that needs it. The network sits this low in the
layers because ``SynthSet.decode`` runs it.

Structure: a linear patch embedding plus fixed 2-D sine-cosine positions; an encoder of pre-norm transformer
blocks over the *visible* patches only; a narrower decoder that inserts a learned mask token at every dropped
position and predicts every patch's pixels (in the dataset's normalised space). No class token. ``fill`` pastes
the visible patches back untouched (``torch.where``), so what a set stored comes out bit for bit. Like every
registry model it also has ``embed`` (the mean encoder token of the whole image) and a linear ``classifier`` on
it (``condense mae`` trains it with one output and never uses it).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CondenseError
from .grid import grid_patch, patchify, unpatchify


def sincos_positions(gh: int, gw: int, dim: int) -> torch.Tensor:
    """(gh·gw, dim) fixed positions: half the channels encode the row, half the column, each as sin and cos."""
    quarter = dim // 4
    freq = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / max(quarter, 1))
    rows, cols = torch.meshgrid(torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64),
                                indexing="ij")
    parts = [f(v.reshape(-1, 1) * freq) for v in (rows, cols) for f in (torch.sin, torch.cos)]
    pos = torch.cat(parts, 1)
    return F.pad(pos, (0, dim - pos.shape[1])).float()  # dims not divisible by 4: zero channels at the end


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        hidden = max(1, int(dim * mlp_ratio))
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class MaskedAutoencoder(nn.Module):
    """``reconstruct(x, keep)`` predicts every patch from the kept ones; ``fill`` returns whole images."""

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], patch: int = 0, dim: int = 64,
                 depth: int = 4, heads: int = 4, decoder_dim: int = 64, decoder_depth: int = 2,
                 mlp_ratio: float = 2.0):
        super().__init__()
        h, w = image_size
        self.patch = patch or grid_patch(h, w)
        if h % self.patch or w % self.patch or dim % heads or decoder_dim % heads:
            raise CondenseError(f"MAE options do not fit: patch {self.patch} must divide the image sides {h}×{w} "
                                f"and heads {heads} must divide dim {dim} and decoder_dim {decoder_dim}.")
        self.shape = (channels, h, w)
        gh, gw = h // self.patch, w // self.patch
        token = channels * self.patch ** 2
        self.feature_dim = dim
        self.patch_embed = nn.Linear(token, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_blocks = nn.ModuleList(Block(decoder_dim, heads, mlp_ratio) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.head = nn.Linear(decoder_dim, token)
        self.classifier = nn.Linear(dim, num_classes)
        # fixed, so not stored: a set that carries the MAE pays only for what was learned
        self.register_buffer("pos", sincos_positions(gh, gw, dim), persistent=False)
        self.register_buffer("decoder_pos", sincos_positions(gh, gw, decoder_dim), persistent=False)
        for m in self.modules():  # MAE's initialisation: xavier-uniform linear layers, zero biases
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.mask_token, std=0.02)

    def _encode(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(tokens) + pos
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def reconstruct(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Predicted tokens (N, L, C·p·p) for images ``x`` of which only the patches where ``keep`` (N, L) is
        true are seen; every row of ``keep`` must keep the same number of patches."""
        n, length = keep.shape
        k = int(keep[0].sum())
        tokens = patchify(x, self.patch)
        visible = tokens[keep].reshape(n, k, -1)
        latent = self._encode(visible, self.pos.expand(n, -1, -1)[keep].reshape(n, k, -1))
        dec = self.decoder_embed(latent)
        full = self.mask_token.expand(n, length, -1).masked_scatter(keep.unsqueeze(-1), dec)
        full = full + self.decoder_pos
        for block in self.decoder_blocks:
            full = block(full)
        return self.head(self.decoder_norm(full))

    def loss(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the pixels of the dropped patches only (MAE's loss, without norm_pix)."""
        per_patch = (self.reconstruct(x, keep) - patchify(x, self.patch)).pow(2).mean(-1)
        dropped = (~keep).to(per_patch.dtype)
        return (per_patch * dropped).sum() / dropped.sum().clamp_min(1)

    def fill(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x`` with its dropped patches replaced by the prediction and its kept patches exactly as given."""
        tokens = torch.where(keep.unsqueeze(-1), patchify(x, self.patch), self.reconstruct(x, keep))
        return unpatchify(tokens, self.patch, self.shape)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode(patchify(x, self.patch), self.pos).mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def random_keep(n: int, length: int, keep: int, generator: torch.Generator) -> torch.Tensor:
    """MAE's random masking: for each of ``n`` images, ``keep`` of ``length`` patches chosen uniformly (CPU draws)."""
    order = torch.rand(n, length, generator=generator).argsort(1)[:, :keep]
    return torch.zeros(n, length, dtype=torch.bool).scatter_(1, order, True)
