"""Patches: the grid DQ's pixel quantisation cuts images into, the strips a set stores the kept patches in, and the
small masked autoencoder that fills the dropped ones (low in the layers because ``SynthSet.decode`` runs it)."""
from .autoencoder import MaskedAutoencoder, random_keep, sincos_positions
from .grid import DQ_GRID, check_grid, grid_patch, keep_top, kept_count, pack, patchify, unpack, unpatchify

__all__ = ["DQ_GRID", "MaskedAutoencoder", "check_grid", "grid_patch", "keep_top", "kept_count", "pack", "patchify",
           "random_keep", "sincos_positions", "unpack", "unpatchify"]
