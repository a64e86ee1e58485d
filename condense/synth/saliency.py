"""Patch saliency for DQ's pixel quantisation: which patches of an image a network looks at.

DQ ranks patches with GradCAM++ (Chattopadhay et al., WACV 2018; torchcam's ``GradCAMpp`` in the official
magic-research/Dataset_Quantization) on an ImageNet-pretrained ResNet-18, for its top-1 class, and resizes the
map to the 14×14 patch grid. Here the network is the one that embedded the images (a teacher, or the briefly
trained run model: nothing pretrained can be downloaded), the map is taken at its last feature map larger than
1×1, again for the top-1 class, and resized bilinearly to the patch grid.

With A the feature maps (C, h, w) and G = ∂y_top1/∂A:

- ``gradcam++``: α = G² / (2G² + Σ_hw A·G³) (0 where the denominator is 0), channel weights w = Σ_hw α·ReLU(G),
  map ReLU(Σ_c w·A). The closed form weighs each location by how much of the score it carries, so several
  objects or a large one light up whole rather than at one peak.
- ``gradcam`` (Selvaraju et al., ICCV 2017): w = mean_hw G, map ReLU(Σ_c w·A). Cheaper, and it favours the
  single most discriminative region; with the small maps of a 32-px network the two often rank patches alike.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CondenseError

SALIENCY = ("gradcam++", "gradcam")


def _maps_and_logits(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last 4-D activation with more than one location, and the logits, of one forward pass."""
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out) if isinstance(out, torch.Tensor)
                                     and out.dim() == 4 and out.shape[2] * out.shape[3] > 1 else None)
             for m in net.modules() if m is not net]
    try:
        logits = net(x)
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise CondenseError(f"Pixel quantisation ranks patches by a class-activation map of the network's last "
                            f"feature map, but {type(net).__name__} has no spatial feature map; use a convolutional "
                            f"network (or --set pixel=false).")
    return seen[-1], logits


def class_activation(net: nn.Module, x: torch.Tensor, method: str = "gradcam++") -> torch.Tensor:
    """(N, h, w) maps for the top-1 class of every image (eval mode; the network's weights are not touched)."""
    if method not in SALIENCY:
        raise CondenseError(f"Unknown saliency '{method}'; choose one of: {', '.join(SALIENCY)}.")
    net.eval()
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)  # a graph through frozen weights
        maps, logits = _maps_and_logits(net, x)
        score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()  # images are independent in eval mode
        g = torch.autograd.grad(score, maps)[0]
    a = maps.detach()
    if method == "gradcam":
        weights = g.mean((2, 3))
    else:
        g2 = g * g
        denom = 2 * g2 + (a * g2 * g).sum((2, 3), keepdim=True)
        alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                            torch.zeros_like(g2))
        weights = (alpha * F.relu(g)).sum((2, 3))
    return F.relu((weights[:, :, None, None] * a).sum(1))


def patch_scores(net: nn.Module, x: torch.Tensor, grid: tuple[int, int], method: str = "gradcam++",
                 batch: int = 128) -> torch.Tensor:
    """(N, gh·gw) saliency of every patch in raster order: the map resized bilinearly to the patch grid."""
    parts = []
    for xb in x.split(batch):
        cam = class_activation(net, xb, method).unsqueeze(1)
        parts.append(F.interpolate(cam, size=grid, mode="bilinear", align_corners=False).flatten(1).cpu())
    return torch.cat(parts)
