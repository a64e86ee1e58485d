"""``dq``: Dataset Quantization (Zhou, Wang, Gu et al., ICCV 2023; official magic-research/Dataset_Quantization).

Selection plus compression of real data, in three stages:

1. **Bins** (``bins``): every class split into ``num_bins`` (10) non-overlapping bins by successive greedy GraphCut
   selections (λ = 1) on last-layer gradient embeddings (``grad_embed``); cached, so sampling again at another
   ratio or IPC, or with another seed when the network is a teacher, re-uses them.
2. **Bin sampling**: the same fraction of every bin, class-balanced: ``ratio`` of each class, or the run's IPC.
3. **Pixel quantisation** (``pixel``): the patches of every selected image ranked by a class-activation map of the
   embedding network (``saliency``: GradCAM++ as DQ, or GradCAM), the lowest ``mask_ratio`` (0.2) dropped and
   only the kept ones stored (``condense.patches``); at decode time a masked autoencoder fills the holes. DQ
   uses the pretrained MAE ViT-L/16; here it is a small MAE trained on the real training split (``condense mae``,
   ``--set mae=FILE.h5``, any network file with role ``autoencoder`` of the registry's ``MAE`` that fits the
   images, or the checksum of one in the teacher folder), and its weights are stored inside the set, so
   ``storage_bytes`` counts them (``decoder_network``) and decoding needs no file. The set names the MAE by
   checksum, never by path, as KRR-ST names its target (``config["mae"]``: ``condense.teachers.network_reference``;
   ``method_config.mae`` is its checksum), so a re-run from the set finds it in ``$CONDENSE_TEACHERS``, else
   ``synth_sets/teachers`` (``condense.teachers.option_file``); older sets recorded a path, still read when it
   exists, else by its file name in that folder.
   ``fill`` "zero" leaves the holes at the dataset mean instead (an ablation: no network, no extra bytes).

The set is the subset form of the SynthSet format: ``source_indices`` into the training split, then either the
images (``pixel`` false) or strips of kept patches with their masks and the ``patches`` decoder. Patch grid:
DQ cuts 14×14 patches of 16 px after resizing to 224 px, so on CIFAR a patch covers 2.3 original pixels;
condense does not resize and takes the patch side nearest to side/14 that divides the image (2 px at 32 and
28 px: 16×16 and 14×14 grids), or the MAE's own patch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import CondenseError
from ..io import cache_root
from ..models import load_network, read_network_info
from ..patches import check_grid, grid_patch, keep_top, kept_count, pack
from ..store import FILLS
from ..teachers import network_reference, option_file
from .base import register_method
from .bins import Bins, generate_bins, load_bins, sample_bins, save_bins
from .grad_embed import content_key
from .graphcut import GradientSelection, GraphCutConfig
from .saliency import SALIENCY, patch_scores


@dataclass
class DQConfig(GraphCutConfig):
    num_bins: int = 10          # N bins per class (DQ: 10 of 10%)
    bins_file: str = ""         # bins of an earlier run to read ("" = the cache, binned there when absent)
    ratio: float = 0.0          # images kept per class as a fraction of the class (0 = the run's IPC)
    pixel: bool = True          # pixel quantisation
    mask_ratio: float = 0.2     # patches dropped per image (DQ: 0.2; 0 is the same as pixel false)
    patch: int = 0              # patch side (0 = the MAE's, else the grid nearest DQ's 14×14)
    saliency: str = "gradcam++"  # gradcam++ (DQ) | gradcam
    fill: str = "mae"           # mae | zero (the dropped patches left at the dataset mean)
    mae: str = ""               # the masked autoencoder (`condense mae`): a network file, or the checksum of one in
                                # the teacher folder. The set records it by checksum.


@register_method
class DQ(GradientSelection):
    name = "dq"
    config_cls = DQConfig

    def init(self):
        ctx, cfg, ds = self.ctx, self.cfg, self.ctx.dataset
        mae = self.check_pixel_options()
        emb = self.embeddings()
        bins = self.bins(emb)
        counts = ds.class_counts()
        per_class = [max(1, round(cfg.ratio * n)) if cfg.ratio > 0 else ctx.run.ipc for n in counts]
        rows = sample_bins(bins, ds.train_y, ds.num_classes, per_class, ctx.run.seed)
        images = ds.train_x[rows.to(ds.train_x.device)].detach().clone()
        labels = ds.train_y[rows.to(ds.train_y.device)].clone()
        if not cfg.pixel or cfg.mask_ratio == 0:  # nothing dropped: the images as they are
            self.synth = self.new_synthset(images, labels, source_indices=rows)
            return self.synth
        c, h, w = ds.image_shape
        patch = mae[0].patch if mae else cfg.patch or grid_patch(h, w)
        grid = check_grid((c, h, w), patch, "Method 'dq'")
        scores = patch_scores(self.net, images, grid, cfg.saliency)
        keep = keep_top(scores, kept_count(grid[0] * grid[1], cfg.mask_ratio)).to(images.device)
        decoder = {"kind": "patches", "patch": patch, "image_shape": [c, h, w], "fill": cfg.fill}
        arrays = {"keep": keep.reshape(-1, *grid).to(torch.uint8).cpu()}
        if mae:
            net, info = mae
            decoder["mae"] = {"architecture": info.architecture, "model_args": info.model_args,
                              "checksum": info.checksum, "dataset": info.dataset,
                              "dataset_fingerprint": info.dataset_fingerprint}
            arrays.update({f"mae.{k}": v.detach().cpu().clone() for k, v in net.state_dict().items()})
        self.synth = self.new_synthset(pack(images, keep, patch), labels, source_indices=rows, decoder=decoder,
                                       decoder_arrays=arrays)
        if mae:  # named by checksum, not where the file was: a re-run elsewhere finds it in the teacher folder
            self.synth.config["mae"] = network_reference(mae[1])
            self.synth.config["method_config"]["mae"] = mae[1].checksum
        return self.synth

    def check_pixel_options(self):
        """Before any work: the saliency, the fill and the masked autoencoder; returns (MAE, its info) or None."""
        cfg, ds = self.cfg, self.ctx.dataset
        if not cfg.pixel or cfg.mask_ratio == 0:
            return None
        if cfg.saliency not in SALIENCY:
            raise CondenseError(f"Unknown saliency '{cfg.saliency}'; choose one of: {', '.join(SALIENCY)}.")
        if cfg.fill not in FILLS:
            raise CondenseError(f"Unknown fill '{cfg.fill}'; choose one of: {', '.join(FILLS)}.")
        if cfg.fill == "zero":
            return None
        if not cfg.mae:
            raise CondenseError("dq's pixel quantisation fills the dropped patches with a masked autoencoder: train "
                                f"one with `condense mae --dataset {ds.name} --out mae.h5` and give --set mae=mae.h5 "
                                "(or --set pixel=false, or --set fill=zero).")
        path = self.mae_file()
        info = read_network_info(path)
        c, h, w = ds.image_shape
        if info.role != "autoencoder" or info.architecture != "MAE":
            raise CondenseError(f"{path} holds a {info.architecture} network with role '{info.role}', not a "
                                f"masked autoencoder (role autoencoder, architecture MAE, from `condense mae`).")
        if (info.channels, *info.image_size) != (c, h, w):
            shape = "×".join(map(str, (info.channels, *info.image_size)))
            raise CondenseError(f"The masked autoencoder {path} takes {shape} images but {ds.name} has {c}×{h}×{w}.")
        net, info = load_network(path)  # checks the weights against their checksum
        if cfg.patch and cfg.patch != net.patch:
            raise CondenseError(f"--set patch={cfg.patch} differs from the {net.patch}-pixel patches the masked "
                                f"autoencoder {path} fills; drop the option or train another MAE.")
        return net, info

    def mae_file(self) -> str:
        """The file the ``mae`` option names: a network file, or the checksum of one in the teacher folder (how a
        set's own options name it, so a re-run from the set finds it wherever it is)."""
        return option_file(self.cfg.mae, role="autoencoder", architecture="MAE", where="dq's option mae",
                           give="--set mae=FILE", rebuild=f"condense mae --dataset {self.ctx.dataset.name}")

    def bins(self, emb) -> Bins:
        """The bins of this data and embedding: read from ``bins_file``, else from the cache, else made and cached."""
        ctx, cfg, ds = self.ctx, self.cfg, self.ctx.dataset
        expect = {"dataset_fingerprint": ds.fingerprint(), "network": self.network["checksum"],
                  "gradient": cfg.gradient, "num_bins": cfg.num_bins, "lam": cfg.lam, "greedy": cfg.greedy,
                  **({"epsilon": cfg.epsilon, "seed": ctx.run.seed} if cfg.greedy == "stochastic" else {})}
        self.bins_key = content_key(expect)
        if cfg.bins_file:
            bins = load_bins(cfg.bins_file, expect, len(ds.train_y))
        else:
            path = cache_root("dq", f"bins_{self.bins_key}.h5")
            try:
                bins = load_bins(path, expect, len(ds.train_y))
            except CondenseError:  # absent or damaged: binned (again) and cached
                bins = generate_bins(emb, ds.train_y, ds.num_classes, cfg.num_bins, cfg.lam, cfg.greedy, cfg.epsilon,
                                     ctx.run.seed)
                bins.meta.update({**expect, "dataset": ds.name, "rows": len(ds.train_y)})
                save_bins(path, bins)
        return bins

    def new_synthset(self, images, labels, **extra):
        synth = super().new_synthset(images, labels, **extra)
        synth.config["bins"] = self.bins_key  # the bins' cache key: the same for every ratio and IPC
        return synth
