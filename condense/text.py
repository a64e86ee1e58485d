"""The few words every log line and table writes the same way: counts with their plural, and a mean with its
spread only when there is one."""
from __future__ import annotations

from typing import Optional


def plural(n: int, word: str) -> str:
    """``1 seed``, ``3 seeds``."""
    return f"{n} {word}{'s' * (n != 1)}"


def mean_std(mean: float, std: float, runs: Optional[int], fmt: str = ".2f") -> str:
    """``mean ± std``, or the mean alone for one run: its spread is unknown, not 0. ``runs`` None (an older
    record without its runs) keeps the ±."""
    text = format(mean, fmt)
    return text if runs == 1 else f"{text} ± {std:.2f}"
