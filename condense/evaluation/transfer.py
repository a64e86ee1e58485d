"""Transfer evaluation: pre-train a fresh network on a set, then fine-tune it on labelled target datasets.

The protocol of KRR-ST (Lee et al., ICLR 2024; official db-Lee/selfsup_dd ``test.py``, ``algorithms/
pretrain_krr_st.py``, ``pretrain_dc.py``, ``finetune.py``, ``linear_eval.py``), with every network trained by
``train.fit``:

- **Pre-training** on the set: MSE to its regression targets for KRR-ST sets (SGD lr 0.1, momentum 0.9,
  wd 1e-3, constant lr, no augmentation; official 1,000 epochs), cross-entropy on the (argmax) labels of
  labelled sets (SGD lr 0.01, momentum 0.9, wd 5e-4, ×0.1 at half time, DSA).
- **Transfer**, on a labelled share of every target class (e.g. 1 % and 10 %): *fine-tuning* of the whole
  network with a fresh head (SGD lr 0.01, momentum 0.9, wd 5e-4, batch 128, cosine, DSA; official 10,000
  steps on CIFAR targets), and a *linear probe* on the frozen ``embed`` features, standardised with the labelled
  images' statistics (SGD lr 0.2, momentum 0.9, batch 512, cosine; the official linear evaluation, which feeds
  raw features). Budgets are steps; epochs = steps / batches per epoch. The official ``test.py`` fine-tunes on
  the whole target training split at batch 256 with crop + flip (``--label-fractions 1`` for its setting), and
  pre-trains KIP/FRePo sets by MSE on their learned labels (AdamW 3e-4), not by cross-entropy on the argmax.
- **Baselines**, trained with the same seeds: no pre-training (a random encoder), and a random real subset of
  the source training split of the same size, pre-trained on the same self-supervised targets (the target
  network a KRR-ST set names by checksum, found in the teacher folder, ``$CONDENSE_TEACHERS`` or
  ``synth_sets/teachers``, or given as ``ssl`` and then checked against that checksum; else ``ssl``), or with
  cross-entropy on its labels when no target network is known. A named target that cannot be found is one
  sentence with the ``condense ssl`` command that rebuilds it.

Run r uses ``seed_for("eval_run", seed, r)`` for every network's initialisation and batch order (so every row
starts from the same weights and the same head), ``generator("transfer_labels", seed, r)`` for the labelled
target images and ``generator("transfer_random", seed, r)`` for the random subset. Scores are the final
networks' accuracy on the target's test split, read once per network. Each pre-trained network serves every
target (as the official ``test.py`` does), so a second target costs only its fine-tuning.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn

from ..augment import dsa_for
from ..data import ImageDataset, load_dataset
from ..device import resolve_device
from ..errors import CondenseError
from ..fields import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, SEED, check_fields
from ..kernels import embed_in_chunks
from ..models import create_model, load_network, read_network_info
from ..seeding import generator, seed_for
from ..ssl import rebuild_command
from ..store import SynthSet
from ..teachers import default_teachers_dir, file_hint, find_network
from ..train import Labels, TrainRecipe, fit, test_accuracy
from .catalog import network_recipe
from .transfer_report import TransferReport, TransferRow

MODES = ("finetune", "linear")
BASELINES = ("scratch", "random")


@dataclass
class TransferConfig:
    targets: list[str] = field(default_factory=lambda: ["digits"])  # labelled target datasets (views allowed)
    data_root: Optional[str] = None            # of the targets (default: the sets' own)
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.1])  # labelled share of every target class
    modes: list[str] = field(default_factory=lambda: list(MODES))
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    ssl: str = ""                              # target network of the random baseline (default: a krr_st set's)
    model: str = "ConvNetBN"
    model_args: dict[str, Any] = field(default_factory=dict)
    runs: int = 3
    seed: int = 0
    pretrain_epochs: int = 200                 # official 1,000
    pretrain_batch: int = 256
    regression_lr: float = 0.1
    regression_weight_decay: float = 1e-3
    labels_lr: float = 0.01
    labels_weight_decay: float = 5e-4
    finetune_steps: int = 1000                 # official 10,000 (CIFAR targets), 5,000 (others)
    finetune_batch: int = 128
    finetune_lr: float = 0.01
    finetune_weight_decay: float = 5e-4
    linear_steps: int = 1000
    linear_batch: int = 512
    linear_lr: float = 0.2
    linear_weight_decay: float = 0.0
    momentum: float = 0.9

    def check(self) -> "TransferConfig":
        check_fields(TransferConfig, asdict(self), RANGES, "Transfer")
        if not self.fractions or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f <= 1
                                         for f in self.fractions):
            raise CondenseError(f"Label fractions must be numbers in (0, 1], e.g. 0.01,0.1; got {self.fractions}.")
        for values, allowed, what in ((self.modes, MODES, "transfer mode"), (self.baselines, BASELINES, "baseline")):
            bad = [v for v in values if v not in allowed]
            if bad or len(set(values)) != len(values):
                raise CondenseError(f"Unknown or repeated {what} '{(bad or values)[0]}'; choose from "
                                    f"{', '.join(allowed)}.")
        if not self.modes:
            raise CondenseError("Give at least one transfer mode (finetune, linear).")
        if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise CondenseError(f"Give at least one target dataset, got {self.targets}.")
        return self


RANGES = {**dict.fromkeys(("runs", "pretrain_epochs", "pretrain_batch", "finetune_steps", "finetune_batch",
                           "linear_steps", "linear_batch"), AT_LEAST_1),
          **dict.fromkeys(("regression_lr", "labels_lr", "finetune_lr", "linear_lr"), POSITIVE),
          **dict.fromkeys(("regression_weight_decay", "labels_weight_decay", "finetune_weight_decay",
                           "linear_weight_decay"), NON_NEGATIVE), "momentum": FRACTION, "seed": SEED}


@dataclass
class Source:
    """One row's pre-training data: images with regression targets, with class labels, or nothing (scratch)."""

    name: str
    kind: str                                   # scratch | regression | labels
    x: Optional[torch.Tensor] = None
    targets: Optional[torch.Tensor] = None      # (N, D) float or (N,) int64
    classes: int = 0
    note: str = ""


def named_target(sets: Sequence[tuple[str, SynthSet]]) -> Optional[tuple[str, dict[str, Any]]]:
    """The first KRR-ST set among ``sets`` and the reference of its target network (``config["target"]``)."""
    for path, s in sets:
        reference = s.config.get("target") if s.label_kind == "regression" else None
        if isinstance(reference, dict) and isinstance(reference.get("checksum"), str):
            return path, reference
    return None


def rebuild_target(reference: dict[str, Any], folder: str) -> str:
    """The `condense ssl` command that trains a set's target again into ``folder`` under its file name: from the
    training the set recorded, else (older sets) from the zoo row that names that file, else its dataset alone."""
    name = file_hint(reference) or f"{reference.get('dataset')}_ssl.h5"
    out = os.path.join(folder, name)
    training = reference.get("training") if isinstance(reference.get("training"), dict) else network_recipe(name)
    if training:
        return rebuild_command(training, out)
    return f"condense ssl --dataset {reference.get('dataset')} --out {out}"


def labelled_rows(y: torch.Tensor, classes: int, fraction: float, g: torch.Generator) -> torch.Tensor:
    """max(1, round(fraction · n_c)) random rows of every class c, sorted."""
    y = y.cpu()
    picks = []
    for c in range(classes):
        idx = torch.nonzero(y == c).squeeze(1)
        picks.append(idx[torch.randperm(len(idx), generator=g)[:max(1, round(fraction * len(idx)))]])
    return torch.cat(picks).sort().values


def epochs_for(steps: int, n: int, batch: int) -> int:
    """Epochs that give at least ``steps`` optimiser steps on ``n`` examples (the last batch may be short)."""
    return max(1, math.ceil(steps / math.ceil(n / batch)))


def _encoder_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("classifier.")}


class Transfer:
    """The sets' sources, the targets and the recipes of one transfer evaluation."""

    def __init__(self, cfg: TransferConfig, sets: Sequence[tuple[str, SynthSet]], device: torch.device,
                 log: Callable[[str], None]):
        self.cfg, self.device, self.log = cfg.check(), device, log
        self.sets = list(sets)
        first = self.sets[0][1]
        for path, s in self.sets:
            if s.zca_matrix is not None:
                raise CondenseError(f"The set {path} lives in ZCA space; transfer evaluation needs pixel-space sets.")
            if (s.dataset, s.image_shape) != (first.dataset, first.image_shape):
                raise CondenseError(f"The sets come from different sources ({first.dataset} and {s.dataset}); "
                                    f"compare sets of one source dataset in a transfer evaluation.")
        self.source_root = first.config.get("run", {}).get("data_root")
        root = cfg.data_root if cfg.data_root is not None else self.source_root
        c, h, w = first.image_shape
        self.targets = []
        for name in cfg.targets:
            target = load_dataset(name, root=root, device=device)
            if tuple(target.image_shape) != (c, h, w):
                raise CondenseError(f"The sets hold {c}×{h}×{w} images but the target {target.name} has "
                                    f"{'×'.join(map(str, target.image_shape))}; use a view of the target with the "
                                    f"sets' shape, e.g. {name}@size={h}@channels={c}.")
            self.targets.append(target)
        create_model(cfg.model, c, 2, (h, w), **cfg.model_args)  # fail now on a bad model
        self.source_data = load_dataset(first.dataset, root=self.source_root,
                                        max_per_class=first.config.get("run", {}).get("max_per_class"), device=device)
        self.ssl_path, self.ssl_note = self._ssl_target() if "random" in cfg.baselines else ("", "")
        self.ssl_net = load_network(self.ssl_path, device)[0] if self.ssl_path else None  # weights checked now

    def _ssl_target(self) -> tuple[str, str]:
        """The self-supervised target of the random baseline: the one a KRR-ST set names, found by checksum (``ssl``,
        when given, must be that one), else ``ssl``, else none."""
        named = named_target(self.sets)
        if named:
            path, reference = named
            found = find_network(reference, where=f"The set {path}", given=self.cfg.ssl, give="--ssl FILE",
                                 rebuild=rebuild_target(reference, default_teachers_dir()))
            return found, f"the target network of {path}"
        if self.cfg.ssl:
            info, shape = read_network_info(self.cfg.ssl), self.sets[0][1].image_shape
            if (info.channels, *info.image_size) != tuple(shape):
                raise CondenseError(f"The target network {self.cfg.ssl} takes {info.channels}×{info.image_size[0]}×"
                                    f"{info.image_size[1]} images but the sets hold {'×'.join(map(str, shape))}.")
            return self.cfg.ssl, "the given target network"
        return "", ""

    # ---- sources ---------------------------------------------------------------------------------------------
    def sources(self, run: int) -> list[Source]:
        out = []
        if "scratch" in self.cfg.baselines:
            out.append(Source("no pre-training", "scratch"))
        if "random" in self.cfg.baselines:
            for size in sorted({len(s.decode()[0]) for _, s in self.sets}):
                out.append(self._random(size, run))
        for path, s in self.sets:
            images, targets = s.decode()
            if s.label_kind == "regression":
                out.append(Source(path, "regression", images.detach(), targets.detach().float()))
            else:
                hard = targets.argmax(1) if targets.dim() == 2 else targets
                out.append(Source(path, "labels", images.detach(), hard.detach().long(), s.num_classes))
        return out

    def _random(self, size: int, run: int) -> Source:
        data: ImageDataset = self.source_data
        rows = torch.randperm(len(data.train_y), generator=generator("transfer_random", self.cfg.seed, run))[:size]
        x = data.train_x[rows.to(data.train_x.device)]
        name = f"random subset ({size})"
        if self.ssl_net is not None:
            with torch.no_grad():
                y = embed_in_chunks(self.ssl_net.embed, x).float()
            return Source(name, "regression", x, y, note=f"SSL targets from {self.ssl_note}")
        return Source(name, "labels", x, data.train_y[rows.to(data.train_y.device)], data.num_classes,
                      note="cross-entropy on its labels (no target network known)")

    # ---- training --------------------------------------------------------------------------------------------
    def _build(self, outputs: int, seed: int) -> nn.Module:
        c, h, w = self.sets[0][1].image_shape
        torch.manual_seed(seed)
        return create_model(self.cfg.model, c, outputs, (h, w), **self.cfg.model_args).to(self.device)

    def pretrain(self, src: Source, seed: int) -> Optional[dict[str, torch.Tensor]]:
        """The encoder weights (everything but the head) after pre-training on ``src``; None for scratch."""
        cfg = self.cfg
        if src.kind == "scratch":
            return None
        x = src.x.to(self.device)
        if src.kind == "regression":
            net = self._build(src.targets.shape[1], seed)
            recipe = TrainRecipe(epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch, lr=cfg.regression_lr,
                                 momentum=cfg.momentum, weight_decay=cfg.regression_weight_decay, labels="regression")
            labels = Labels(torch.zeros(len(x), dtype=torch.long, device=self.device),
                            regression=src.targets.to(self.device))
            fit([net], [torch.Generator().manual_seed(seed)], x, labels, recipe)
        else:
            net = self._build(src.classes, seed)
            recipe = TrainRecipe(epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch, lr=cfg.labels_lr,
                                 momentum=cfg.momentum, weight_decay=cfg.labels_weight_decay, schedule="step")
            fit([net], [torch.Generator().manual_seed(seed)], x, Labels(src.targets.to(self.device)), recipe,
                dsa=dsa_for(self.source_data.hflip_safe))
        return _encoder_state(net)

    def _with_encoder(self, encoder: Optional[dict[str, torch.Tensor]], classes: int, seed: int) -> nn.Module:
        net = self._build(classes, seed)  # the same head for every row of a run
        if encoder is not None:
            result = net.load_state_dict(encoder, strict=False)
            if result.unexpected_keys or any(not k.startswith("classifier.") for k in result.missing_keys):
                raise CondenseError(f"Model {self.cfg.model} keeps its head outside 'classifier'; transfer needs "
                                    f"a registry model whose head is its classifier.")
        return net

    def finetune(self, encoder, t: ImageDataset, rows: torch.Tensor, seed: int) -> float:
        cfg = self.cfg
        x, y = t.train_x[rows.to(t.train_x.device)], t.train_y[rows.to(t.train_y.device)]
        net = self._with_encoder(encoder, t.num_classes, seed)
        recipe = TrainRecipe(epochs=epochs_for(cfg.finetune_steps, len(x), cfg.finetune_batch),
                             batch_size=cfg.finetune_batch, lr=cfg.finetune_lr, momentum=cfg.momentum,
                             weight_decay=cfg.finetune_weight_decay, schedule="cosine")
        fit([net], [torch.Generator().manual_seed(seed)], x, Labels(y), recipe, dsa=dsa_for(t.hflip_safe))
        return test_accuracy(net, t.test_x, t.test_y)

    def linear(self, encoder, t: ImageDataset, rows: torch.Tensor, seed: int) -> float:
        cfg = self.cfg
        net = self._with_encoder(encoder, t.num_classes, seed).eval()
        with torch.no_grad():
            train_f = embed_in_chunks(net.embed, t.train_x[rows.to(t.train_x.device)])
            test_f = embed_in_chunks(net.embed, t.test_x)
            # standardised with the labelled images' statistics: raw pooled features of small images can be
            # ~1e-2 in scale, where a fixed-lr probe barely moves (the official probe feeds them raw)
            mean, std = train_f.mean(0), train_f.std(0, unbiased=False).clamp_min(1e-6)
            train_f, test_f = (train_f - mean) / std, (test_f - mean) / std
        torch.manual_seed(seed)
        head = nn.Linear(train_f.shape[1], t.num_classes).to(self.device)
        recipe = TrainRecipe(epochs=epochs_for(cfg.linear_steps, len(train_f), cfg.linear_batch),
                             batch_size=cfg.linear_batch, lr=cfg.linear_lr, momentum=cfg.momentum,
                             weight_decay=cfg.linear_weight_decay, schedule="cosine")
        fit([head], [torch.Generator().manual_seed(seed)], train_f, Labels(t.train_y[rows.to(t.train_y.device)]),
            recipe)
        return test_accuracy(head, test_f, t.test_y)


def evaluate_transfer(sets: Sequence[tuple[str, SynthSet]], cfg: TransferConfig, *, device: str = "auto",
                      log: Callable[[str], None] = lambda m: None) -> list[TransferReport]:
    """Pre-train on every set (and the baselines), transfer to each of ``cfg.targets``: one report per target,
    accuracies in percent."""
    dev = resolve_device(device)
    job = Transfer(cfg, sets, dev, log)
    seeds = [seed_for("eval_run", cfg.seed, r) for r in range(cfg.runs)]
    columns = [(mode, f) for f in cfg.fractions for mode in cfg.modes]
    rows: list[dict[str, TransferRow]] = [{} for _ in job.targets]
    labelled: list[dict[float, torch.Tensor]] = []
    for r, seed in enumerate(seeds):
        g = generator("transfer_labels", cfg.seed, r)
        labelled = [{f: labelled_rows(t.train_y, t.num_classes, f, g) for f in cfg.fractions} for t in job.targets]
        for src in job.sources(r):
            t0 = time.perf_counter()
            encoder = job.pretrain(src, seed)
            pretrain_s = time.perf_counter() - t0
            for target, table, picks in zip(job.targets, rows, labelled):
                row = table.setdefault(src.name, TransferRow(name=src.name, kind=src.kind, note=src.note,
                                                             images=0 if src.x is None else len(src.x)))
                row.pretrain_seconds.append(pretrain_s)
                for mode, f in columns:
                    t1 = time.perf_counter()
                    acc = 100 * (job.finetune if mode == "finetune" else job.linear)(encoder, target, picks[f], seed)
                    row.results.setdefault(TransferReport.column(mode, f), []).append(acc)
                    row.seconds.setdefault(TransferReport.column(mode, f), []).append(time.perf_counter() - t1)
                    log(f"transfer run {r + 1}/{cfg.runs}: {src.name} → {target.name}, {mode} with "
                        f"{len(picks[f])} labels ({TransferReport.fraction(f)}): {acc:.2f}%")
    return [TransferReport(source=sets[0][1].dataset, target=target.name, model=cfg.model, seeds=seeds,
                           labelled={TransferReport.fraction(f): len(picks[f]) for f in cfg.fractions},
                           columns=[TransferReport.column(m, f) for m, f in columns], rows=list(table.values()),
                           config=asdict(cfg), ssl=job.ssl_path or None)
            for target, table, picks in zip(job.targets, rows, labelled)]
