"""Image similarity for audits: SSIM between image pairs on [0, 1] images, and side-by-side pair grids.

SSIM is kornia's (Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, ``max_val`` 1) averaged over the
map and the channels. The window is pinned and written into every report: 11 px (Wang et al.) for
images of 22 px and more, and the largest odd size ≤ side/2 (at least 3) for tiny images such as
the 8×8 digits, where an 11 px window would not fit. ``padding='valid'`` scores only the windows
that lie fully inside the image, so no reflected border enters the score.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from kornia.metrics import ssim

from ..figures import new_figure, save_figure

SSIM_PADDING = "valid"


def default_window(height: int, width: int) -> int:
    side = min(height, width)
    w = min(11, side // 2)
    if w % 2 == 0:
        w -= 1
    return max(w, 3)


def ssim_pairs(a: torch.Tensor, b: torch.Tensor, window: Optional[int] = None, chunk: int = 256) -> torch.Tensor:
    """Mean SSIM of each pair (a[i], b[i]); both (N, C, H, W) in [0, 1]. Returns (N,) float32 on CPU."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM pairs need equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    window = window or default_window(*a.shape[-2:])
    out = []
    with torch.no_grad():
        for s in range(0, a.shape[0], chunk):
            x, y = a[s:s + chunk].float().cpu(), b[s:s + chunk].float().cpu()
            out.append(ssim(x, y, window, max_val=1.0, padding=SSIM_PADDING).mean(dim=(1, 2, 3)))
    return torch.cat(out) if out else torch.zeros(0)


def save_pair_grid(left: torch.Tensor, right: torch.Tensor, path: str, captions: Sequence[str] = (),
                   titles: tuple[str, str] = ("synthetic", "nearest real"), ncols: int = 4) -> str:
    """A PNG of image pairs side by side (left | right), ``ncols`` pairs per row, one caption per pair.

    Images are (N, C, H, W) in [0, 1]; grey images use a grey colour map with a fixed [0, 1] range,
    so a copy looks like a copy (no per-image contrast stretch).
    """
    n = left.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = new_figure(nrows, 2 * ncols, figsize=(2 * ncols * 1.3, nrows * 1.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, ncols)
        for j, img in enumerate((left[i], right[i])):
            ax = axes[r, 2 * c + j]
            pixels = img.detach().float().cpu().clamp(0, 1)
            if pixels.shape[0] == 1:
                ax.imshow(pixels[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(pixels.permute(1, 2, 0).numpy(), interpolation="nearest")
            if r == 0:
                ax.set_title(titles[j], fontsize=7)
        if i < len(captions):
            axes[r, 2 * c].text(1.05, -0.08, captions[i], transform=axes[r, 2 * c].transAxes, ha="center",
                                va="top", fontsize=6)
    return save_figure(fig, path)
