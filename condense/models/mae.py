"""The small masked autoencoder in the registry (``MAE``), so it is saved and rebuilt like every network.

The architecture itself lives in ``condense.patches.autoencoder`` (below the set format, whose decoder runs it).
"""
from __future__ import annotations

from ..patches import MaskedAutoencoder
from ..errors import CondenseError
from .layers import check_pos_int
from .registry import register_model


@register_model("MAE")
def mae(channels: int, num_classes: int, image_size: tuple[int, int], patch: int = 0, dim: int = 64, depth: int = 4,
        heads: int = 4, decoder_dim: int = 64, decoder_depth: int = 2, mlp_ratio: float = 2.0) -> MaskedAutoencoder:
    """``patch`` 0 is the grid nearest DQ's 14×14 (``condense.patches.grid_patch``)."""
    for name, value in (("dim", dim), ("depth", depth), ("heads", heads), ("decoder_dim", decoder_dim),
                        ("decoder_depth", decoder_depth)):
        check_pos_int(value, name)
    if patch != 0:
        check_pos_int(patch, "patch")
    if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or not 0 < mlp_ratio < 1e3:
        raise CondenseError(f"Model option 'mlp_ratio' must be a number in (0, 1000), got {mlp_ratio!r}.")
    return MaskedAutoencoder(channels, num_classes, image_size, patch=patch, dim=dim, depth=depth, heads=heads,
                             decoder_dim=decoder_dim, decoder_depth=decoder_depth, mlp_ratio=mlp_ratio)
