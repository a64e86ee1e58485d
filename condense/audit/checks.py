"""Imports every check module so that each registers itself (the timm pattern)."""
from . import memorization  # noqa: F401
from . import mia  # noqa: F401
from . import reconstruction  # noqa: F401
