"""PNG grids of a SynthSet for people to look at (``condense show --png``).

One row per class, named on the left, as many columns as the class has images (up to ``max_per_class``), so an
IPC 1 grid is one column wide; tiles are upscaled (nearest neighbour) to at least ``min_cell`` pixels, so 32×32
CIFAR images show at 64 and 8×8 digits at 64. A title line says what the grid shows (stored images, or the
training images a decoder makes of them).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .io import atomic_write
from .store import SynthSet

PAD = 2           # white pixels between tiles
HEADER = 24       # the title line's height in pixels
FONT_SIZE = 14


def _font():
    from PIL import ImageFont  # PIL is optional at import time; only drawing needs it

    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (TypeError, OSError, ImportError):  # a Pillow without FreeType: its small bitmap font
        return ImageFont.load_default()


def cell_size(width: int, min_cell: int = 64) -> int:
    """The side of a tile: the image upscaled by the smallest whole factor reaching ``min_cell`` pixels."""
    return width * max(1, math.ceil(min_cell / width))


def grid_rows(synth: SynthSet, decoded: bool = False, max_per_class: int = 20
              ) -> tuple[torch.Tensor, torch.Tensor, list[str], int]:
    """(images in [0, 1], the row of each, the row names, the number of columns): one row per class, as many
    columns as the fullest class has images, up to ``max_per_class``."""
    images, targets = synth.decode() if decoded else (synth.images, synth.labels)
    pixels = synth.denormalized(images)  # (N, C, H, W) in [0, 1]
    if synth.label_kind == "regression":  # no classes (krr_st): rows of consecutive images
        per_row = min(max_per_class, max(1, math.ceil(math.sqrt(len(pixels)))))
        labels = torch.arange(len(pixels)) // per_row
        names = [f"{i * per_row}–{min(len(pixels), (i + 1) * per_row) - 1}" for i in range(int(labels.max()) + 1)]
    else:
        labels = (targets.argmax(1) if targets.dim() == 2 else targets).detach().cpu()
        names = list(synth.class_names)
    counts = torch.bincount(labels, minlength=len(names))
    return pixels, labels, names, max(1, min(max_per_class, int(counts.max())))


def save_grid(synth: SynthSet, path: str, max_per_class: int = 20, min_cell: int = 64, decoded: bool = False) -> str:
    """Write the PNG grid of ``synth`` (``decoded``: the training images the set stands for, after its decoder);
    returns ``path``."""
    from PIL import Image, ImageDraw

    pixels, labels, names, cols = grid_rows(synth, decoded, max_per_class)
    counts = torch.bincount(labels, minlength=len(names))
    c, h, w = pixels.shape[1:]
    scale = cell_size(w, min_cell) // w
    ch, cw = h * scale, w * scale
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(measure.textlength(n, font=font) for n in names) + 12
    what = "training images after the decoder" if decoded else "stored images"
    shown = f"; first {cols} of {int(counts.max())} per class" if int(counts.max()) > cols else ""
    title = f"{synth.method} · {synth.dataset} · {what}{shown}"
    width = max(int(label_w) + cols * (cw + PAD) + PAD, int(measure.textlength(title, font=font)) + 12)
    height = HEADER + len(names) * (ch + PAD) + PAD
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 4), title, fill="black", font=font)
    tiles = (pixels.repeat_interleave(scale, 2).repeat_interleave(scale, 3) * 255).round().byte()
    tiles = tiles.permute(0, 2, 3, 1).numpy()
    for row, name in enumerate(names):
        y = HEADER + PAD + row * (ch + PAD)
        top, bottom = draw.textbbox((0, 0), name, font=font)[1::2]
        draw.text((label_w - 6 - draw.textlength(name, font=font), y + (ch - top - bottom) / 2), name, fill="black",
                  font=font)
        for col, i in enumerate(torch.nonzero(labels == row).squeeze(1)[:cols].tolist()):
            tile = tiles[i]
            tile = np.repeat(tile, 3, axis=2) if c == 1 else tile[..., :3]
            canvas.paste(Image.fromarray(np.ascontiguousarray(tile), "RGB"), (int(label_w) + PAD + col * (cw + PAD), y))
    return atomic_write(path, lambda tmp: canvas.save(tmp, format="png"))
