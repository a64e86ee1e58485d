"""Memorization check: is any synthetic image a (near) copy of a private training image?

For every synthetic image, its k nearest real training images (exact faiss kNN) in two spaces:

- **pixel space**: L2 between images in [0, 1] (denormalised, clamped: the picture one releases);
- **feature space**: L2 between ``embed`` outputs of a network trained briefly on the real
  training set (or the user's ``feature_model`` + ``feature_weights``).

Per image and space: SSIM with the nearest real image (pixel SSIM, pinned window), the ratio
NN1/NN2, and the percentile of the NN1 distance within the *calibration* distribution: the NN1
distances from the real test images to the training set. Real data has natural near-duplicates,
so "closer than 99% of fresh real images are to the training set" is the meaningful bar, not a
fixed distance.

Flags (thresholds are options, written into the report): ``near-copy`` when the percentile is
below ``near_copy_percentile`` (1), or the ratio is below ``near_copy_ratio`` (1/3), or SSIM ≥
``near_copy_ssim`` (0.9); ``review`` when SSIM ≥ ``review_ssim`` (0.5) and not a near-copy.

Which space drives the verdict (``flag_space``, default ``pixel``): the privacy harm of a
released image is that it *looks like* a private one, and SSIM is a pixel measure, so pixel space
drives the flags. Feature space is computed and reported beside it (CSV, table, its own flag
counts): it catches copies that are shifted or re-coloured, which pixel L2 misses, but its
distances depend on the feature network. ``flag_space=either`` flags an image flagged in either
space. The same rules are also applied to the held-out test images: the rate at which they flag
fresh real images is the false-positive baseline (≈1% by construction for the percentile rule).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import CondenseError
from ..feature_net import feature_network
from ..figures import new_figure, save_figure
from ..io import write_text
from ..models import create_model, save_network
from ..neighbours import NeighbourIndex
from ..store import SynthSet
from ..synth.matching import chunked
from .base import AuditContext, CheckResult, register_check
from .similarity import SSIM_PADDING, default_window, save_pair_grid, ssim_pairs

SPACES = ("pixel", "feature")
FEATURE_NET_FILE = "memorization_feature_net.h5"  # the trained feature network (a network file)


@dataclass
class MemorizationConfig:
    k: int = 5                             # nearest real images kept per synthetic image (CSV)
    near_copy_percentile: float = 1.0      # NN1 distance below this percentile of the calibration -> near-copy
    near_copy_ratio: float = 1 / 3         # NN1/NN2 below this -> near-copy
    near_copy_ssim: float = 0.9            # SSIM with the nearest real image at or above this -> near-copy
    review_ssim: float = 0.5               # SSIM at or above this (and not a near-copy) -> review
    ssim_window: int = 0                   # odd Gaussian window; 0 = 11, or smaller for tiny images
    flag_space: str = "pixel"              # pixel | feature | either: which space's flags give the verdict
    feature_model: str = "ConvNet"         # registry model whose embed() is the feature space
    feature_model_args: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 64}
    feature_weights: str = ""              # network file or state_dict .pt; "" = train briefly on the real set
    feature_epochs: int = 3
    feature_lr: float = 0.01
    feature_batch: int = 256
    worst_pairs: int = 16                  # pairs in each PNG grid

    def validate(self) -> None:
        if not isinstance(self.k, int) or self.k < 2:
            raise CondenseError(f"Memorization needs k >= 2 neighbours (for the NN1/NN2 ratio), got {self.k}.")
        if not 0 <= self.near_copy_percentile <= 100:
            raise CondenseError(f"near_copy_percentile must be within [0, 100], got {self.near_copy_percentile}.")
        for name in ("near_copy_ratio", "near_copy_ssim", "review_ssim"):
            if not 0 <= float(getattr(self, name)) <= 1:
                raise CondenseError(f"{name} must be within [0, 1], got {getattr(self, name)}.")
        if self.ssim_window and (self.ssim_window < 3 or self.ssim_window % 2 == 0):
            raise CondenseError(f"ssim_window must be an odd number >= 3 (or 0 for auto), got {self.ssim_window}.")
        if self.flag_space not in (*SPACES, "either"):
            raise CondenseError(f"flag_space must be pixel, feature or either, got '{self.flag_space}'.")
        if self.feature_epochs < 0 or self.worst_pairs < 1 or self.feature_batch < 1:
            raise CondenseError("feature_epochs must be >= 0, and worst_pairs and feature_batch >= 1.")
        if not isinstance(self.feature_model_args, dict):
            raise CondenseError("feature_model_args must be a JSON object, e.g. '{\"width\": 64}'.")
        if self.feature_weights and not os.path.isfile(self.feature_weights):
            raise CondenseError(f"Feature weights file {self.feature_weights} does not exist.")


# ---- pieces --------------------------------------------------------------------------------
def synthetic_pixels(synth: SynthSet, images: torch.Tensor) -> torch.Tensor:
    """``images`` of the set (e.g. decoded) in [0, 1] pixel space (ZCA sets go back through the inverse whitening)."""
    if synth.zca_matrix is None:
        return synth.denormalized(images)
    z = images.detach().cpu().reshape(len(images), -1).double()
    w = synth.zca_matrix.detach().cpu().double()
    x = torch.linalg.solve(w.T, z.T).T + synth.zca_mean.detach().cpu().double()  # z = (x − m) W
    return x.float().reshape(images.shape).clamp(0, 1)


@dataclass
class SpaceResult:
    """Neighbours and scores in one space, for the synthetic images and for the calibration (test) images."""

    dist: np.ndarray        # (N, k) L2 to the k nearest training images
    idx: np.ndarray         # (N, k)
    ratio: np.ndarray       # (N,) NN1/NN2
    percentile: np.ndarray  # (N,) of NN1 within the calibration NN1 distances
    ssim: np.ndarray        # (N,) pixel SSIM with the NN1 image of this space
    cal_dist: np.ndarray    # (T,) NN1 distance of every test image to the training set
    cal_ratio: np.ndarray
    cal_percentile: np.ndarray
    cal_ssim: np.ndarray


def _ratio(dist: np.ndarray) -> np.ndarray:
    # an exact copy (NN1 = 0) has ratio 0 even if the training set holds a duplicate (NN2 = 0)
    return np.where(dist[:, 0] == 0, 0.0, dist[:, 0] / np.maximum(dist[:, 1], 1e-12))


def percentile_within(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Percentage of ``reference`` strictly below each value (0 = closer than every real test image)."""
    ref = np.sort(reference)
    return 100.0 * np.searchsorted(ref, values, side="left") / max(len(ref), 1)


def score_space(syn_q, test_q, train_q, syn01, test01, train01, k: int, window: int) -> SpaceResult:
    index = NeighbourIndex(train_q)
    dist, idx = index.search(syn_q, k)
    cal, cal_idx = index.search(test_q, 2)
    return SpaceResult(dist=dist, idx=idx, ratio=_ratio(dist), percentile=percentile_within(dist[:, 0], cal[:, 0]),
                       ssim=ssim_pairs(syn01, train01[torch.from_numpy(idx[:, 0])], window).numpy(),
                       cal_dist=cal[:, 0], cal_ratio=_ratio(cal), cal_percentile=percentile_within(cal[:, 0], cal[:, 0]),
                       cal_ssim=ssim_pairs(test01, train01[torch.from_numpy(cal_idx[:, 0])], window).numpy())


def flags(percentile, ratio, ssim, cfg: MemorizationConfig) -> tuple[np.ndarray, np.ndarray]:
    near = (percentile < cfg.near_copy_percentile) | (ratio < cfg.near_copy_ratio) | (ssim >= cfg.near_copy_ssim)
    review = ~near & (ssim >= cfg.review_ssim)
    return near, review


def _features(cfg: MemorizationConfig, ctx: AuditContext, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    data = ctx.data
    c, h, w = data.image_shape

    def build():
        try:
            return create_model(cfg.feature_model, c, data.num_classes, (h, w), **cfg.feature_model_args).to(ctx.device)
        except TypeError as err:
            raise CondenseError(f"Feature network '{cfg.feature_model}' rejects feature_model_args "
                                f"{cfg.feature_model_args} ({err}).") from None

    with torch.random.fork_rng(devices=[]):  # the feature net's init is reproducible from the audit seed
        torch.manual_seed(ctx.seed)
        net = feature_network(build, data.train_x, data.train_y, weights=cfg.feature_weights,
                              epochs=cfg.feature_epochs, lr=cfg.feature_lr, batch=cfg.feature_batch,
                              generator=ctx.generator(1), name=cfg.feature_model)
    if not cfg.feature_weights:  # training dominates the check's cost: keep the net for --feature-weights reuse
        save_network(ctx.path(FEATURE_NET_FILE), net, architecture=cfg.feature_model,
                     model_args=cfg.feature_model_args, channels=c, num_classes=data.num_classes, image_size=(h, w),
                     role="feature", dataset=data.name, dataset_fingerprint=data.fingerprint(),
                     training={"epochs": cfg.feature_epochs, "lr": cfg.feature_lr, "batch": cfg.feature_batch,
                               "seed": ctx.seed})
    return [chunked(net.embed, x.to(ctx.device)).float().cpu().numpy() for x in inputs]


# ---- the check -----------------------------------------------------------------------------
@register_check("memorization", MemorizationConfig,
                "nearest real training images of every synthetic image (pixel and feature space), SSIM, flags")
def run(ctx: AuditContext, cfg: MemorizationConfig) -> CheckResult:
    data, synth = ctx.data, ctx.synth
    window = cfg.ssim_window or default_window(*data.image_shape[1:])
    images, targets = synth.decode()  # what a model trained on the set sees
    syn01 = synthetic_pixels(synth, images)
    train01 = data.denormalize(data.train_x).clamp(0, 1).cpu()
    test01 = data.denormalize(data.test_x).clamp(0, 1).cpu()
    labels = (targets.argmax(1) if targets.dim() == 2 else targets).cpu().numpy()
    train_y = data.train_y.cpu().numpy()
    k = min(cfg.k, len(train01))

    ctx.log("memorization: pixel-space neighbours")
    res = {"pixel": score_space(syn01, test01, train01, syn01, test01, train01, k, window)}
    ctx.log("memorization: feature network and feature-space neighbours")
    syn_norm = data.normalize(syn01.to(data.train_x.device))
    f_syn, f_test, f_train = _features(cfg, ctx, [syn_norm, data.test_x, data.train_x])
    res["feature"] = score_space(f_syn, f_test, f_train, syn01, test01, train01, k, window)

    fl = {s: flags(r.percentile, r.ratio, r.ssim, cfg) for s, r in res.items()}
    cal_fl = {s: flags(r.cal_percentile, r.cal_ratio, r.cal_ssim, cfg) for s, r in res.items()}
    if cfg.flag_space == "either":
        near = fl["pixel"][0] | fl["feature"][0]
        review = ~near & (fl["pixel"][1] | fl["feature"][1])
    else:
        near, review = fl[cfg.flag_space]

    n = len(syn01)
    _write_csv(ctx.path("memorization.csv"), res, fl, near, review, labels, train_y, k)
    figures = []
    for space in SPACES:
        fname = f"memorization_pairs_{space}.png"
        _worst_pairs(fname, ctx, res[space], fl[space], syn01, train01, labels, train_y, cfg.worst_pairs)
        figures.append((f"The {min(cfg.worst_pairs, n)} most suspicious synthetic images ({space} space, "
                        f"flagged first, then by NN percentile), each beside its nearest real training image",
                        fname))
    _histogram(ctx.path("memorization_hist.png"), res, cfg)
    figures.append(("NN1 distance of synthetic images vs the calibration distribution (real test images to the "
                    "training set); dashed: the near-copy percentile", "memorization_hist.png"))

    verdict = (f"{int(near.sum())}/{n} near-copy, {int(review.sum())}/{n} review ({cfg.flag_space} space)")
    other = [s for s in SPACES if s != cfg.flag_space] if cfg.flag_space != "either" else []
    for s in other:
        verdict += f"; {s} space: {int(fl[s][0].sum())} near-copy, {int(fl[s][1].sum())} review"
    settings = {**dataclasses.asdict(cfg), "k": k, "ssim_window": window, "ssim_padding": SSIM_PADDING,
                "ssim": "kornia.metrics.ssim, Gaussian sigma 1.5, max_val 1, mean over map and channels",
                "pixel_space": "L2 on denormalised images clamped to [0, 1]",
                "feature_space": f"L2 on {cfg.feature_model}.embed"
                                 + (f" with weights {cfg.feature_weights}" if cfg.feature_weights
                                    else f" trained {cfg.feature_epochs} epochs on the real training set (saved as "
                                         f"{FEATURE_NET_FILE}; reuse it with --feature-weights)"),
                "calibration": f"NN1 distances of the {len(test01)} real test images to the {len(train01)} training images",
                "near_copy_rule": "percentile < near_copy_percentile OR ratio < near_copy_ratio OR SSIM >= near_copy_ssim",
                "review_rule": "SSIM >= review_ssim and not near-copy"}
    metrics = {"images": n, "near_copy": int(near.sum()), "review": int(review.sum()), "flag_space": cfg.flag_space}
    for s, r in res.items():
        metrics[s] = {"near_copy": int(fl[s][0].sum()), "review": int(fl[s][1].sum()),
                      "nn1_min": float(r.dist[:, 0].min()), "nn1_median": float(np.median(r.dist[:, 0])),
                      "ratio_median": float(np.median(r.ratio)), "ssim_median": float(np.median(r.ssim)),
                      "ssim_max": float(r.ssim.max()),
                      "same_class_nn1": float(np.mean(train_y[r.idx[:, 0]] == labels)),
                      "calibration_nn1_p1": float(np.percentile(r.cal_dist, cfg.near_copy_percentile)),
                      "calibration_nn1_median": float(np.median(r.cal_dist)),
                      "test_near_copy_rate": float(cal_fl[s][0].mean()), "test_review_rate": float(cal_fl[s][1].mean())}
    markdown = _markdown(res, fl, cal_fl, metrics, near, review, labels, train_y, cfg, window)
    return CheckResult(name="memorization", verdict=verdict, markdown=markdown, figures=figures, settings=settings,
                       metrics=metrics, flagged=bool(near.any()))


# ---- outputs -------------------------------------------------------------------------------
def _status(near, review) -> np.ndarray:
    return np.where(near, "near-copy", np.where(review, "review", "ok"))


def _write_csv(path, res, fl, near, review, labels, train_y, k) -> None:
    header = ["synthetic", "label", "flag"]
    for s in SPACES:
        header += [f"{s}_flag", f"{s}_nn1_label", f"{s}_ratio", f"{s}_percentile", f"{s}_ssim"]
        header += [f"{s}_nn{j + 1}" for j in range(k)] + [f"{s}_d{j + 1}" for j in range(k)]
    status = _status(near, review)
    space_status = {s: _status(*fl[s]) for s in SPACES}
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(header)
    for i in range(len(labels)):
        row = [i, int(labels[i]), status[i]]
        for s in SPACES:
            r = res[s]
            row += [space_status[s][i], int(train_y[r.idx[i, 0]]), f"{r.ratio[i]:.4f}", f"{r.percentile[i]:.2f}",
                    f"{r.ssim[i]:.4f}"]
            row += [int(j) for j in r.idx[i]] + [f"{d:.4f}" for d in r.dist[i]]
        w.writerow(row)
    write_text(path, f.getvalue())


def suspicion_order(r: SpaceResult, near, review) -> np.ndarray:
    """Most suspicious first: near-copies, then review, then by NN percentile, then by SSIM (descending)."""
    rank = np.where(near, 0, np.where(review, 1, 2))
    return np.lexsort((-r.ssim, r.percentile, rank))


def _worst_pairs(fname, ctx, r: SpaceResult, fl, syn01, train01, labels, train_y, count) -> None:
    near, review = fl
    order = suspicion_order(r, near, review)[:count]
    status = _status(near, review)
    nn = torch.from_numpy(r.idx[order, 0])
    captions = [f"#{i} {status[i]}\nd={r.dist[i, 0]:.2f} p={r.percentile[i]:.0f}% ssim={r.ssim[i]:.2f}"
                + ("" if labels[i] == train_y[r.idx[i, 0]] else " (other class)") for i in order]
    save_pair_grid(syn01[torch.from_numpy(order)], train01[nn], ctx.path(fname), captions)


def _histogram(path, res, cfg) -> None:
    fig, axes = new_figure(1, 2, figsize=(9, 3.2))
    for ax, s in zip(axes, SPACES):
        r = res[s]
        hi = max(r.cal_dist.max(), r.dist[:, 0].max()) * 1.05 + 1e-9
        bins = np.linspace(0, hi, 40)
        ax.hist(r.cal_dist, bins=bins, density=True, alpha=0.5, label=f"real test → train (n={len(r.cal_dist)})")
        ax.hist(r.dist[:, 0], bins=bins, density=True, alpha=0.6, label=f"synthetic → train (n={len(r.dist)})")
        ax.axvline(np.percentile(r.cal_dist, cfg.near_copy_percentile), color="k", ls="--", lw=1,
                   label=f"calibration p{cfg.near_copy_percentile:g} (near-copy bar)")
        ax.set_xlabel(f"NN1 L2 distance ({s} space)")
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def _markdown(res, fl, cal_fl, metrics, near, review, labels, train_y, cfg, window) -> str:
    n = len(labels)
    lines = [f"Flags use **{cfg.flag_space}** space. Near-copy: NN1 below percentile {cfg.near_copy_percentile:g} "
             f"percentile of the calibration distribution, or NN1/NN2 < {cfg.near_copy_ratio:.3g}, or SSIM ≥ "
             f"{cfg.near_copy_ssim:g}; review: SSIM ≥ {cfg.review_ssim:g} (not a near-copy). SSIM window {window}.",
             "",
             "| space | near-copy | review | NN1 min | NN1 median | calib. NN1 1st pct | calib. NN1 median "
             "| NN1/NN2 median | SSIM median | SSIM max | NN1 same class | test images flagged near-copy / review |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in SPACES:
        m = metrics[s]
        lines.append(f"| {s} | {m['near_copy']}/{n} | {m['review']}/{n} | {m['nn1_min']:.3f} | {m['nn1_median']:.3f} "
                     f"| {m['calibration_nn1_p1']:.3f} | {m['calibration_nn1_median']:.3f} | {m['ratio_median']:.3f} "
                     f"| {m['ssim_median']:.3f} | {m['ssim_max']:.3f} | {100 * m['same_class_nn1']:.0f}% "
                     f"| {100 * m['test_near_copy_rate']:.1f}% / {100 * m['test_review_rate']:.1f}% |")
    lines += ["", "The last column applies the same rules to the held-out real test images: the false-positive "
              "baseline of the rules (≈ the percentile threshold by construction, plus natural near-duplicates).", ""]
    lines += ["Most suspicious images (flag space; full list in `memorization.csv`):", "",
              "| synthetic | class | flag | pixel NN1 (d, ratio, pct, SSIM) | feature NN1 (d, ratio, pct, SSIM) |",
              "|---|---|---|---|---|"]
    status = _status(near, review)
    space = "pixel" if cfg.flag_space == "either" else cfg.flag_space
    for i in suspicion_order(res[space], near, review)[:10]:
        cells = []
        for s in SPACES:
            r = res[s]
            cells.append(f"#{r.idx[i, 0]} ({r.dist[i, 0]:.3f}, {r.ratio[i]:.2f}, {r.percentile[i]:.1f}%, {r.ssim[i]:.2f})")
        lines.append(f"| {i} | {labels[i]} | {status[i]} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
