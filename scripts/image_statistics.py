"""Pixel statistics of stored synthetic images, beside real images of the same dataset: how far a set has left
natural-image statistics (values outside [0, 1], high-frequency energy, a texture repeating every 8 pixels).

Written to answer "is this a bug?" for the CIFAR-10 IPC-1 DM/DataDAM sets, which look like the same coloured dot
texture in every class. Import a set made by official code first (`condense import`), then compare:

    python scripts/image_statistics.py --out eval/figures/cifar10_ipc1_pattern \
        official=official_dm_ipc1.h5 condense=synth_sets/zoo/cifar10_dm_ipc1.h5

Prints a table and writes OUT.json and OUT.png: one row per set, one image per class (the first row: the first
real training image of each class); values are clipped to [0, 1] for display only. Statistics cover every
stored image.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from condense.evaluation.real_data import real_data_for  # noqa: E402
from condense.store import SynthSet  # noqa: E402


def statistics(pixels: torch.Tensor) -> dict:
    """``pixels``: (N, C, H, W) in [0, 1] units (not clipped). Spectra are of each channel minus its mean."""
    centred = pixels - pixels.mean(dim=(2, 3), keepdim=True)
    power = torch.fft.fftshift(torch.fft.fft2(centred).abs() ** 2, dim=(-2, -1)).mean(dim=(0, 1))
    h, w = power.shape
    fy, fx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    radius = (fy ** 2 + fx ** 2).float().sqrt()
    power[h // 2, w // 2] = 0  # already ~0 after centring
    peak = divmod(int(power.argmax()), w)
    # ConvNet-3's three 2x2 poolings map each 8x8 pixel block onto one cell of its 4x4 embedding grid, so a
    # texture that repeats every 8 pixels puts its energy on frequencies that are multiples of w/8 (here 4).
    lattice = (fy % (h // 8) == 0) & (fx % (w // 8) == 0) & (radius > 0)
    kernel = torch.ones(pixels.shape[1], 1, 3, 3) / 9
    detail = pixels - F.conv2d(F.pad(pixels, (1, 1, 1, 1), mode="replicate"), kernel, groups=pixels.shape[1])
    v = detail.flatten(1)
    v = (v - v.mean(1, keepdim=True)) / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    corr = v @ v.T
    n = len(v)
    return {"outside_0_1": float(((pixels < 0) | (pixels > 1)).float().mean()),
            "pixel_std": float(pixels.std()),
            "high_frequency_share": float(power[radius > h / 4].sum() / power.sum()),
            "period_8px_share": float(power[lattice].sum() / power.sum()),
            "peak_frequency": [peak[0] - h // 2, peak[1] - w // 2],
            "detail_correlation_between_images": float((corr.sum() - n) / max(n * (n - 1), 1))}


def dm_gradient_rms(data, ipc: int, nets: int = 10, seed: int = 0) -> float:
    """RMS of DM's per-image gradient (Zhao & Bilen, WACV 2023: ``||mean embed(real) - mean embed(syn)||^2``, one
    random frozen ConvNet per draw, 256 real images per class, no DSA) for ``ipc`` real-initialised images per
    class, averaged over ``nets`` networks: the size of the step SGD at a fixed ``lr_img`` gives each image."""
    from condense.models import create_model

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    total = 0.0
    for c in range(data.num_classes):
        idx = torch.nonzero(data.train_y == c).squeeze(1)
        real = data.train_x[idx[torch.randperm(len(idx), generator=g)[:256]]]
        syn = data.train_x[idx[:ipc]].clone().requires_grad_(True)
        grad = torch.zeros_like(syn)
        for _ in range(nets):
            net = create_model("ConvNet", data.image_shape[0], data.num_classes, tuple(data.image_shape[1:]))
            net.requires_grad_(False)
            loss = (net.embed(real).mean(0) - net.embed(syn).mean(0)).pow(2).sum()
            grad += torch.autograd.grad(loss, syn)[0] / nets
        total += float(grad.pow(2).mean())
    return (total / data.num_classes) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", metavar="NAME=SET.h5")
    parser.add_argument("--out", required=True, help="writes OUT.json and OUT.png")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--dm-gradient", action="store_true",
                        help="also print the RMS of DM's per-image gradient at IPC 1 and 10 on the first set's data")
    args = parser.parse_args()
    named = {}
    for spec in args.sets:
        name, sep, path = spec.partition("=")
        if not sep:
            print(f"image_statistics: '{spec}' is not NAME=SET.h5.", file=sys.stderr)
            raise SystemExit(2)
        named[name] = SynthSet.load(path)
    first = next(iter(named.values()))
    data = real_data_for(first, data_root=args.data_root, device=torch.device("cpu"))
    idx = torch.stack([torch.nonzero(data.train_y == c)[0, 0] for c in range(data.num_classes)])
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    rows = {"real (first image per class)": data.train_x[idx] * std + mean}
    shown = {"real (first image per class)": torch.arange(data.num_classes)}
    for name, s in named.items():  # not clipped: values outside [0, 1] are what is measured
        rows[name] = s.images.detach().cpu() * torch.tensor(s.std).view(1, -1, 1, 1) + torch.tensor(s.mean).view(1, -1, 1, 1)
        labels = s.hard_labels.cpu()
        shown[name] = torch.stack([torch.nonzero(labels == c)[0, 0] for c in range(s.num_classes)])
    table = {name: statistics(px.float()) for name, px in rows.items()}
    print(f"| images | outside [0,1] | pixel std | energy above 1/4 of the band | on the 8-px lattice | peak (cycles) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, m in table.items():
        print(f"| {name} | {100 * m['outside_0_1']:.1f}% | {m['pixel_std']:.3f} | {100 * m['high_frequency_share']:.1f}% "
              f"| {100 * m['period_8px_share']:.1f}% | {m['peak_frequency']} |")
    result = {"sets": {n: p for n, p in zip(named, args.sets)}, "statistics": table}
    if args.dm_gradient:
        rms = {ipc: dm_gradient_rms(data, ipc) for ipc in (1, 10)}
        print(f"DM per-image gradient RMS (normalised pixels, 10 random ConvNets, 256 real images per class): "
              f"IPC 1 {rms[1]:.4g}, IPC 10 {rms[10]:.4g} ({rms[1] / rms[10]:.1f}x)")
        result["dm_gradient_rms_by_ipc"] = rms
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    from PIL import Image
    strips = [np.concatenate(list(px[shown[name]].clamp(0, 1).permute(0, 2, 3, 1).numpy()), axis=1)
              for name, px in rows.items()]
    grid = np.concatenate(strips, axis=0)
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    image = Image.fromarray((grid * 255).round().astype(np.uint8))
    image.resize((image.width * 2, image.height * 2), Image.NEAREST).save(args.out + ".png")
    print(f"wrote {args.out}.json and {args.out}.png (rows: {', '.join(rows)})")


if __name__ == "__main__":
    main()
