"""Figures without pyplot (no display needed, no global backend switch), saved through the atomic writer."""
from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from .io import atomic_write


def new_figure(rows: int = 1, cols: int = 1, figsize: tuple[float, float] = (6, 4), squeeze: bool = True,
               **subplot_options: Any) -> tuple[Figure, Any]:
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, squeeze=squeeze, **subplot_options)


def save_figure(fig: Figure, path: str, dpi: int = 110, tight: bool = True) -> str:
    """Lay out (unless the caller placed the axes) and write a PNG atomically; returns ``path``."""
    if tight:
        fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
