"""Masked autoencoders as artifacts: `condense mae` trains the small MAE (``condense.autoencoder``) on the real
training split, resumably, and saves a network file with role ``autoencoder``: what fills the patches a DQ set
dropped."""
from ..checkpoint import check_start, checkpoint_path
from .training import RANGES, MAEConfig, reconstruction_error, train_mae

__all__ = ["RANGES", "MAEConfig", "check_start", "checkpoint_path", "reconstruction_error", "train_mae"]
