"""Differentiable siamese augmentation (DSA, Zhao & Bilen 2021) on kornia and torch ops.

Parameters are sampled apart from their application (kornia style). That split is what makes
siamese augmentation natural: draw once, apply the same draw to the real and the synthetic batch.

- Non-siamese (training networks): one family per call, independent values per image.
- Siamese (matching): one family and one value set shared by every image of both batches; with
  ``class_siamese`` one such draw per class, so all classes can share one forward pass.
- FYI (``flip_first``): a flip with p = 0.5 always comes first, then one other family.

Values follow the official ``ParamDiffAug``. Every family is differentiable w.r.t. the pixels
(crop/cutout/flip are index or mask operations; scale/rotate are kornia bilinear warps; color
uses the official DSA formulas, which kornia's enhance ops do not reproduce).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from kornia.geometry.transform import homography_warp

from .errors import CondenseError

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
NO_FLIP_STRATEGY = "color_crop_cutout_scale_rotate"  # digits: a flipped 2 is not a 2


@dataclass(frozen=True)
class DSAConfig:
    strategy: str = DEFAULT_STRATEGY  # families joined by "_"; one is drawn per call (or per group)
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    crop: float = 0.125               # max translation as a fraction of the side
    cutout: float = 0.5               # cutout side as a fraction of the side
    scale: float = 1.2                # sx, sy ~ U[1/scale, scale]
    rotate: float = 15.0              # degrees
    flip_first: bool = False          # FYI: flip (p=0.5) always first, then one other family


@dataclass
class DSAParams:
    """Per-image parameters; every tensor has leading dimension B (the number of images).

    Values for every family are drawn even though only ``family`` is applied: the random stream
    then does not depend on which family was picked, and ``expand`` is a plain row gather.
    """

    family: torch.Tensor      # (B,) long, index into FAMILIES
    color: torch.Tensor       # (B, 3) uniforms for brightness, saturation, contrast
    shift: torch.Tensor       # (B, 2) long, crop translation (dx, dy) in pixels
    cutout: torch.Tensor      # (B, 2) long, cutout centre (cx, cy) in pixels
    flip: torch.Tensor        # (B,) bool
    scale: torch.Tensor       # (B, 2) sx, sy
    angle: torch.Tensor       # (B,) degrees
    flip_first: Optional[torch.Tensor] = None  # (B,) bool, only when cfg.flip_first

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "DSAParams":
        return DSAParams(**{f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                            for f in fields(self)})

    def expand(self, index: torch.Tensor) -> "DSAParams":
        """Gather rows: one draw per group becomes one row per image (``index`` = each image's group)."""
        index = index.to(self.family.device, torch.long)
        return self._map(lambda t: t[index])

    def to(self, device) -> "DSAParams":
        return self._map(lambda t: t.to(device))

    def __len__(self) -> int:
        return len(self.family)


class DSA:
    def __init__(self, cfg: DSAConfig = DSAConfig()):
        names = [n.strip() for n in cfg.strategy.split("_") if n.strip()]
        if not names:
            raise CondenseError(f"The DSA strategy is empty; join families from {', '.join(FAMILIES)} with '_'.")
        for n in names:
            if n not in FAMILIES:
                raise CondenseError(f"Unknown augmentation family '{n}' in strategy '{cfg.strategy}'; "
                                    f"choose from {', '.join(FAMILIES)}.")
        drawable = [n for n in names if not (cfg.flip_first and n == "flip")]
        if not drawable:
            raise CondenseError("flip_first needs at least one family other than flip in the DSA strategy.")
        if not (cfg.scale > 0 and 0 <= cfg.crop < 1 and 0 <= cfg.cutout <= 1):
            raise CondenseError("DSA needs scale > 0, 0 <= crop < 1 and 0 <= cutout <= 1.")
        self.cfg = cfg
        # Repeated names stay repeated: they weight the draw, as in the official string split.
        self.choices = torch.tensor([FAMILIES.index(n) for n in drawable])

    # ---- sampling ---------------------------------------------------------------------------
    def sample(self, n: int, image_shape: tuple[int, ...], generator: Optional[torch.Generator] = None,
               device=None, siamese_groups: bool = False) -> DSAParams:
        """Draw parameters for ``n`` rows.

        Non-siamese: one family for all rows, independent values per row (official non-batch mode).
        ``siamese_groups``: each row is a group (e.g. a class) with its own family and value set;
        the caller expands rows to images with ``params.expand(group_of_each_image)``.
        """
        cfg, g = self.cfg, generator
        h, w = image_shape[-2:]
        on = g.device if g is not None else torch.device("cpu")  # draw where the generator lives

        def rand(*shape):
            return torch.rand(*shape, generator=g, device=on)

        def randint(low, high):
            return torch.randint(low, high, (n,), generator=g, device=on)

        pick = torch.randint(len(self.choices), (n if siamese_groups else 1,), generator=g, device=on)
        family = self.choices.to(on)[pick].expand(n).clone()
        max_dx, max_dy = _half_up(cfg.crop * w), _half_up(cfg.crop * h)
        side_w, side_h = _half_up(cfg.cutout * w), _half_up(cfg.cutout * h)
        params = DSAParams(
            family=family,
            color=rand(n, 3),
            shift=torch.stack([randint(-max_dx, max_dx + 1), randint(-max_dy, max_dy + 1)], 1),
            # Official centre range: an even side may also centre one pixel past the last row/column.
            cutout=torch.stack([randint(0, w + 1 - side_w % 2), randint(0, h + 1 - side_h % 2)], 1),
            flip=rand(n) < 0.5,
            scale=rand(n, 2) * (cfg.scale - 1.0 / cfg.scale) + 1.0 / cfg.scale,
            angle=(rand(n) - 0.5) * 2 * cfg.rotate,
            flip_first=(rand(n) < 0.5) if cfg.flip_first else None,
        )
        return params.to(device) if device is not None else params

    # ---- application ------------------------------------------------------------------------
    def apply(self, x: torch.Tensor, params: DSAParams) -> torch.Tensor:
        """Apply per-row parameters; rows may use different families. Differentiable w.r.t. ``x``."""
        if x.dim() != 4:
            raise ValueError(f"DSA expects images shaped (B, C, H, W), got {tuple(x.shape)}")
        if len(params) != len(x):
            raise ValueError(f"{len(params)} parameter rows for {len(x)} images")
        params = params.to(x.device)
        if params.flip_first is not None:
            x = torch.where(params.flip_first.view(-1, 1, 1, 1), x.flip(-1), x)
        families = torch.unique(params.family).tolist()
        if len(families) == 1:
            return _APPLY[FAMILIES[families[0]]](self.cfg, x, params)
        # Mixed families (one draw per class): run each family on its rows, then restore row order.
        rows = [(params.family == f).nonzero().squeeze(1) for f in families]
        parts = [_APPLY[FAMILIES[f]](self.cfg, x[r], params.expand(r)) for f, r in zip(families, rows)]
        return torch.cat(parts)[torch.argsort(torch.cat(rows))]

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Non-siamese augmentation, e.g. for training a network on a batch."""
        return self.apply(x, self.sample(len(x), tuple(x.shape[1:]), generator, device=x.device))

    def siamese(self, real: torch.Tensor, syn: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw (one family, one value set) shared by every image of both batches."""
        _check_same_size(real, syn)
        p = self.sample(1, tuple(real.shape[1:]), generator, device=real.device, siamese_groups=True)
        return self.apply(real, p.expand(_zeros(real))), self.apply(syn, p.expand(_zeros(syn)))


def dsa_for(hflip_safe: bool, flip_first: bool = False) -> DSA:
    """DSA for a dataset: every family, or every family but flip when a mirrored image changes its label;
    ``flip_first`` (FYI) only where flips are label-safe."""
    strategy = DEFAULT_STRATEGY if hflip_safe else NO_FLIP_STRATEGY
    return DSA(DSAConfig(strategy=strategy, flip_first=flip_first and hflip_safe))


def class_siamese(dsa: DSA, real: torch.Tensor, real_groups: torch.Tensor, syn: torch.Tensor,
                  syn_groups: torch.Tensor, num_groups: int,
                  generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One siamese draw per group (class), shared by that group's real and synthetic images.

    Equivalent to calling ``dsa.siamese`` once per class, but all classes go through one batch.
    """
    _check_same_size(real, syn)
    p = dsa.sample(num_groups, tuple(real.shape[1:]), generator, device=real.device, siamese_groups=True)
    return dsa.apply(real, p.expand(real_groups)), dsa.apply(syn, p.expand(syn_groups))


def hflip_concat(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FYI: [x; hflip(x)] with labels duplicated (synthetic side only, before DSA)."""
    return torch.cat([x, x.flip(-1)]), torch.cat([y, y])


def _half_up(v: float) -> int:
    return int(v + 0.5)  # official rounding; Python's round() would send 3.5 and 4.5 both to 4


def _zeros(t: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(t), dtype=torch.long, device=t.device)


def _check_same_size(real: torch.Tensor, syn: torch.Tensor) -> None:
    # Pixel-valued parameters (shift, cutout centre) are drawn for one image size.
    if real.shape[-2:] != syn.shape[-2:]:
        raise ValueError(f"real {tuple(real.shape)} and synthetic {tuple(syn.shape)} images differ in size")


# ---- the six families (each receives exactly the rows it applies to) ------------------------
def _color(cfg: DSAConfig, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
    u = p.color.to(x.dtype).view(-1, 3, 1, 1, 1)
    x = x + (u[:, 0] - 0.5) * cfg.brightness
    mean_c = x.mean(dim=1, keepdim=True)                 # per-pixel grey level
    x = (x - mean_c) * (u[:, 1] * cfg.saturation) + mean_c
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)       # per-image mean
    return (x - mean_all) * (u[:, 2] + cfg.contrast) + mean_all


def _crop(cfg: DSAConfig, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
    """Integer translation with zero fill: a gather from a zero-padded copy (exact, differentiable)."""
    b, c, h, w = x.shape
    m = int(p.shift.abs().max()) if b else 0
    if m == 0:
        return x
    padded = F.pad(x, (m, m, m, m))
    ys = torch.arange(h, device=x.device).view(1, h, 1) - p.shift[:, 1].view(-1, 1, 1) + m
    xs = torch.arange(w, device=x.device).view(1, 1, w) - p.shift[:, 0].view(-1, 1, 1) + m
    src = (ys * (w + 2 * m) + xs).view(b, 1, h * w).expand(b, c, h * w)  # flat index into padded plane
    return padded.flatten(2).gather(2, src).view(b, c, h, w)


def _cutout(cfg: DSAConfig, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
    b, _, h, w = x.shape
    side_w, side_h = _half_up(cfg.cutout * w), _half_up(cfg.cutout * h)
    x0 = (p.cutout[:, 0] - side_w // 2).view(-1, 1, 1)
    y0 = (p.cutout[:, 1] - side_h // 2).view(-1, 1, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    hole = (xs >= x0) & (xs < x0 + side_w) & (ys >= y0) & (ys < y0 + side_h)  # clipped at the borders
    return x * (~hole).unsqueeze(1).to(x.dtype)


def _flip(cfg: DSAConfig, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
    return torch.where(p.flip.view(-1, 1, 1, 1), x.flip(-1), x)


def _warp(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Affine warp with kornia; ``a`` (B, 2, 2) maps output to input in normalised coordinates
    (align_corners=True, zero padding), as the official ``F.affine_grid`` code does."""
    h = torch.zeros(len(x), 3, 3, dtype=x.dtype, device=x.device)
    h[:, :2, :2] = a.to(x.dtype)
    h[:, 2, 2] = 1
    return homography_warp(x, h, tuple(x.shape[-2:]), mode="bilinear", padding_mode="zeros",
                           align_corners=True, normalized_coordinates=True)


def _scale(cfg: DSAConfig, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
    return _warp(x, torch.diag_embed(p.scale))


def _rotate(cfg: DSAConfig, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
    rad = p.angle * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    return _warp(x, torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1))


_APPLY = {"color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate}
