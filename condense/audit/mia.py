"""Check `mia`: membership inference against the whole pipeline (distil, then train a model on the set).

Design (LiRA-style, Carlini et al. 2022): pick C canaries from the real training set and S shadow
runs; each canary is IN each shadow with probability ½ (independently by default: the balanced
design, exactly S/2 IN per canary, leaks in leave-one-out, see ``membership``). A shadow's training data
is every non-canary training image plus its IN canaries. Each shadow re-runs the audited set's
own method with its stored config (optionally on a smaller budget: ``iterations``, ``model_args``)
and trains a fresh model on the result with the evaluator's trainer under ``protocol``. Leave-one-
out: every shadow in turn is the target and the other S − 1 are its reference models, so there
are S·C trials (about half members). Attacks: LiRA online/offline (fixed variance), RMIA online/offline,
loss threshold, and a data-level attack on the released set (−min pixel distance). The same audit
runs on two baselines that share the same membership design: a random real subset of the set's
size, and a model trained on the shadow's full training data.

Per-shadow results are cached as .npz files (``cache_dir``) so a killed audit resumes where it
stopped; the cache key covers every setting that changes a shadow.

CPU cost per shadow, measured (mnist5k IPC 10, 500 canaries, 1000 population images, one torch
thread, 2 shared cores at load ~5, so idle figures are lower): the DM pipeline (width 32, 30
iterations, then a width-32 ConvNet under the `fast` protocol, 50 epochs on its 100 images)
95 s (range 66–135 s); the random-subset baseline 18 s; the full-data baseline with
``full_epochs=10`` 135 s (about 13 s per epoch over ~4.75k images). 16 shadows of all three
pipelines therefore cost about an hour of one core. ``seconds_per_shadow`` in audit.json gives
the figures of any run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import zipfile
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

from ..augment import dsa_for
from ..errors import CondenseError
from ..evaluation import get_protocol, labels_for
from ..io import check_output, write_npz
from ..models import create_model
from ..seeding import seed_for
from ..synth import distill
from ..train import Labels, fit
from .base import AuditContext, CheckResult, register_check
from . import mia_attacks as A
from .mia_stats import summary, write_roc_png

PIPELINES = ("set", "random", "full")
ATTACKS = ("lira_online", "lira_offline", "rmia_online", "rmia_offline", "loss", "distance")
ATTACK_NAMES = {"lira_online": "LiRA online", "lira_offline": "LiRA offline", "rmia_online": "RMIA online",
                "rmia_offline": "RMIA offline", "loss": "loss threshold", "distance": "data-level (−min L2)"}


@dataclass
class MIAConfig:
    shadows: int = 16                      # shadow pipelines; each is also a target (leave-one-out)
    canaries: int = 500                    # audit points from the training set (capped to its size)
    protocol: str = "fast"                 # evaluator protocol for every shadow model
    epochs: Optional[int] = None           # override the protocol's epochs (smoke runs)
    full_epochs: Optional[int] = None      # epochs of the full-data baseline (default: as the others)
    iterations: Optional[int] = None       # override the set's distillation iterations in the shadows
    model_args: Optional[dict] = None      # override the distillation network's args, e.g. {"width": 32}
    eval_model: str = "ConvNet"            # architecture trained on each shadow's data
    eval_model_args: Optional[dict] = None  # default: model_args
    population: int = 1000                 # held-out test images used as RMIA's population z
    pipelines: str = "set,random,full"     # which pipelines to audit
    rmia_gamma: float = 1.0
    rmia_a: Optional[float] = None         # offline RMIA's a; None = grid search on reference models
    cache_dir: str = ""                    # per-shadow .npz results; default SET_mia_cache beside the set
    design: str = "bernoulli"              # membership design: bernoulli (independent ½) or balanced

    def validate(self) -> None:
        if isinstance(self.shadows, bool) or not isinstance(self.shadows, int) or self.shadows < 2:
            raise CondenseError(f"Membership inference needs at least 2 shadow runs (--shadows), got {self.shadows}.")
        if isinstance(self.canaries, bool) or not isinstance(self.canaries, int) or self.canaries < 2:
            raise CondenseError(f"Membership inference needs at least 2 canaries (--canaries), got {self.canaries}.")
        bad = [p for p in self.pipeline_list() if p not in PIPELINES]
        if bad or not self.pipeline_list():
            raise CondenseError(f"Unknown MIA pipeline '{bad[0] if bad else ''}'; choose from: {', '.join(PIPELINES)}.")
        if self.design not in ("bernoulli", "balanced"):
            raise CondenseError(f"Unknown membership design '{self.design}'; choose bernoulli or balanced.")
        for name in ("epochs", "full_epochs", "iterations"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise CondenseError(f"{name} must be a positive whole number, got {v}.")
        if self.population < 1:
            raise CondenseError(f"The RMIA population must have at least 1 image, got {self.population}.")
        if self.rmia_a is not None and not 0.0 <= float(self.rmia_a) <= 1.0:
            raise CondenseError(f"rmia_a must lie in [0, 1], got {self.rmia_a}.")
        if self.rmia_gamma <= 0:
            raise CondenseError(f"rmia_gamma must be positive, got {self.rmia_gamma}.")
        for name in ("model_args", "eval_model_args"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                raise CondenseError(f"{name} must be a JSON object such as {{\"width\": 32}}.")

    def pipeline_list(self) -> list[str]:
        return [p.strip() for p in str(self.pipelines).split(",") if p.strip()]


# ---- design ----------------------------------------------------------------------------------
def balanced_membership(shadows: int, canaries: int, rng: np.random.Generator) -> np.ndarray:
    """(S, C) bool: each canary IN exactly ⌊S/2⌋ or ⌈S/2⌉ shadows (alternating for odd S), at random."""
    member = np.zeros((shadows, canaries), dtype=bool)
    for c in range(canaries):
        k = shadows // 2 + (c % 2 if shadows % 2 else 0)
        member[rng.permutation(shadows)[:k], c] = True
    return member


def membership(design: str, shadows: int, canaries: int, rng: np.random.Generator) -> np.ndarray:
    """The (S, C) IN mask. ``balanced`` fixes each canary's IN count at S/2, which leaks in leave-one-out:
    a member target leaves S/2 − 1 IN references, a non-member S/2, and LiRA's per-point means then
    differ in precision by membership (measured on a no-signal toy: LiRA-online AUC 0.47 at S = 8,
    0.40 at S = 4). Independent Bernoulli(½) draws make the references' counts independent of the
    target's membership (same toy: 0.50 at S = 8), so it is the default."""
    if design == "balanced":
        return balanced_membership(shadows, canaries, rng)
    return rng.random((shadows, canaries)) < 0.5


def choose_canaries(n_train: int, wanted: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n_train, size=min(wanted, n_train), replace=False))


# ---- one shadow ------------------------------------------------------------------------------
def shadow_data(data, canary_idx: np.ndarray, member_row: np.ndarray):
    keep = np.ones(len(data.train_y), dtype=bool)
    keep[canary_idx[~member_row]] = False  # OUT canaries leave; every other image stays
    idx = torch.as_tensor(np.nonzero(keep)[0], device=data.train_x.device)
    return replace(data, train_x=data.train_x[idx], train_y=data.train_y[idx])


def distil_shadow(method: str, synth_config: dict, data, seed: int, cfg: MIAConfig, device: torch.device):
    """Re-run the set's method (or the random baseline) with its stored config on one shadow's data."""
    run = synth_config.get("run", {})
    options = dict(synth_config.get("method_config", {}))
    if method != synth_config.get("method"):  # the random-subset baseline: only the size is shared
        options = {}
    elif cfg.iterations is not None:
        options["iterations"] = cfg.iterations
    model_args = {**run.get("model_args", {}), **(cfg.model_args or {})}
    return distill(method, data, int(run.get("ipc", 1)), model=run.get("model", "ConvNet"),
                   model_args=model_args, seed=seed, device=str(device), quiet=True, **options)


def _train_eval_model(x, labels: Labels, data, cfg: MIAConfig, seed: int, lr: float,
                      proto) -> tuple[torch.nn.Module, float]:
    c, h, w = data.image_shape
    args = cfg.eval_model_args if cfg.eval_model_args is not None else (cfg.model_args or {})
    torch.manual_seed(seed)
    model = create_model(cfg.eval_model, c, data.num_classes, (h, w), **args).to(x.device)
    out = fit([model], [torch.Generator().manual_seed(seed)], x, labels, proto.recipe(lr),
              dsa=dsa_for(data.hflip_safe) if proto.augment == "dsa" else None, test=(data.test_x, data.test_y))
    return model, float(out[0]["final"])


@torch.no_grad()
def _logits(model: torch.nn.Module, x: torch.Tensor, batch: int = 500) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).double().cpu().numpy()


def run_shadow(ctx: AuditContext, cfg: MIAConfig, pipeline: str, s: int, canary_idx: np.ndarray,
               member_row: np.ndarray, pop_x: torch.Tensor) -> dict[str, np.ndarray]:
    """One shadow of one pipeline: its data, its set (if any), its model; returns the model's signals."""
    t0 = time.perf_counter()
    data, synth = ctx.data, ctx.synth
    shadow = shadow_data(data, canary_idx, member_row)
    epochs = cfg.full_epochs if (pipeline == "full" and cfg.full_epochs is not None) else cfg.epochs
    proto = get_protocol(cfg.protocol, epochs=epochs)
    out: dict[str, np.ndarray] = {}
    if pipeline == "full":
        x, labels, lr = shadow.train_x, Labels(shadow.train_y), proto.lr
    else:
        method = synth.method if pipeline == "set" else "random"
        made = distil_shadow(method, synth.config, shadow, seed_for(f"shadow_{pipeline}", ctx.seed, s), cfg,
                             ctx.device)
        images, targets = made.decode()
        labels, _ = labels_for(made, targets, proto, shadow, ctx.device)
        x = images.detach().to(ctx.device)
        lr = float(made.lr) if (made.lr is not None and proto.use_learned_lr) else proto.lr
        canaries01 = data.denormalize(data.train_x[torch.as_tensor(canary_idx, device=data.train_x.device)])
        out["distance"] = A.distance_scores(canaries01.cpu().numpy(), data.denormalize(x).clamp(0, 1).cpu().numpy())
    model, acc = _train_eval_model(x, labels, shadow, cfg, seed_for("shadow_model", ctx.seed, s), lr, proto)
    out["canary_logits"] = _logits(model, data.train_x[torch.as_tensor(canary_idx, device=data.train_x.device)])
    out["population_logits"] = _logits(model, pop_x)
    out["test_accuracy"] = np.array(acc)
    out["seconds"] = np.array(time.perf_counter() - t0)
    return out


# ---- attacks over leave-one-out targets ------------------------------------------------------
def attack_scores(canary_logits: np.ndarray, pop_logits: np.ndarray, canary_y: np.ndarray, pop_y: np.ndarray,
                  member: np.ndarray, distances: Optional[np.ndarray] = None, gamma: float = 1.0,
                  rmia_a: Optional[float] = None) -> tuple[dict[str, np.ndarray], np.ndarray, list[float]]:
    """Pooled leave-one-out scores per attack: each of the S models is the target once.

    ``canary_logits`` (S, C, K), ``pop_logits`` (S, Z, K), ``member`` (S, C), ``distances`` (S, C)
    = −min distance of each canary to shadow s's released set. Returns ({attack: (S·C,)},
    member (S·C,), offline a per target).
    """
    s_count = len(member)
    phi = A.logit_confidence(canary_logits, canary_y)
    logp = A.true_class_logprob(canary_logits, canary_y)
    p_x, p_z = np.exp(logp), np.exp(A.true_class_logprob(pop_logits, pop_y))
    scores: dict[str, list[np.ndarray]] = {k: [] for k in ATTACKS if k != "distance" or distances is not None}
    a_used = []
    for t in range(s_count):
        refs = [i for i in range(s_count) if i != t]
        ref_in = member[refs]
        scores["lira_online"].append(A.lira_scores(phi[t], phi[refs], ref_in, online=True))
        scores["lira_offline"].append(A.lira_scores(phi[t], phi[refs], ref_in, online=False))
        scores["rmia_online"].append(A.rmia_scores(p_x[t], p_x[refs], ref_in, p_z[t], p_z[refs], gamma))
        a = rmia_a if rmia_a is not None else A.rmia_choose_a(p_x[refs], ref_in, p_z[refs], gamma)  # references only
        a_used.append(float(a))
        scores["rmia_offline"].append(A.rmia_scores(p_x[t], p_x[refs], ref_in, p_z[t], p_z[refs], gamma, a=a))
        scores["loss"].append(A.loss_scores(logp[t]))
        if distances is not None:
            scores["distance"].append(distances[t])
    return {k: np.concatenate(v) for k, v in scores.items()}, member.reshape(-1), a_used


# ---- the check -------------------------------------------------------------------------------
# Settings that change what a shadow computes. Attack-only options (rmia_gamma, ...) are left out,
# so changing them re-uses the cached shadows; so is ``shadows``: with the Bernoulli design the
# first S rows of the membership draw are the same for any larger S, and each file name carries
# its shadow's membership hash, so raising --shadows re-uses the shadows already run.
_SHADOW_FIELDS = ("canaries", "protocol", "epochs", "full_epochs", "iterations", "model_args",
                  "eval_model", "eval_model_args", "population", "design")


def _cache_dir(ctx: AuditContext, cfg: MIAConfig, canary_idx: np.ndarray, pop_idx: np.ndarray) -> str:
    key = {"cfg": {k: getattr(cfg, k) for k in _SHADOW_FIELDS},
           "synth": ctx.synth.config, "method": ctx.synth.method, "seed": ctx.seed,
           "points": hashlib.sha256(canary_idx.tobytes() + pop_idx.tobytes()).hexdigest()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    root = cfg.cache_dir or ((os.path.splitext(ctx.set_path)[0] + "_mia_cache") if ctx.set_path
                             else os.path.join(ctx.out_dir, "mia_cache"))
    return os.path.join(root, digest)


def shadow_file(cache: str, pipeline: str, s: int, member_row: np.ndarray) -> str:
    return os.path.join(cache, f"{pipeline}_shadow{s:03d}_{hashlib.sha256(member_row.tobytes()).hexdigest()[:10]}.npz")


def _load_or_run(path: str, fn) -> dict[str, np.ndarray]:
    """A shadow's cached result, or a fresh run (also when the cached file cannot be read: it is only a cache)."""
    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass
    out = fn()
    write_npz(path, **out)
    return out


def _fmt_tpr(r: dict) -> str:
    lo, hi = r["ci"]
    return f"{100 * r['tpr']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"


@register_check("mia", MIAConfig, "membership inference on the whole pipeline (LiRA, RMIA, loss, data-level), "
                                  "with random-subset and full-data baselines")
def run(ctx: AuditContext, cfg: MIAConfig) -> CheckResult:
    data, synth = ctx.data, ctx.synth
    if synth.zca_matrix is not None:
        raise CondenseError("The mia check does not support ZCA-whitened sets yet; audit a set distilled "
                            "without --zca.")
    if synth.method.startswith("imported:") and "set" in cfg.pipeline_list():
        raise CondenseError(f"The mia check re-runs the method that made a set on every shadow's data, which condense "
                            f"cannot do for an imported set ({synth.method}); audit it with --checks memorization or "
                            f"reconstruction, or the baselines alone with --set pipelines=random,full.")
    rng = np.random.default_rng(ctx.seed_for(17))
    canary_idx = choose_canaries(len(data.train_y), cfg.canaries, rng)
    member = membership(cfg.design, cfg.shadows, len(canary_idx), rng)
    pop_n = min(cfg.population, len(data.test_y))
    # Own stream: the population must not depend on how many membership rows were drawn before it.
    pop_idx = np.sort(np.random.default_rng(ctx.seed_for(18)).choice(len(data.test_y), size=pop_n, replace=False))
    pop_x = data.test_x[torch.as_tensor(pop_idx, device=data.test_x.device)]
    canary_y = data.train_y.cpu().numpy()[canary_idx]
    pop_y = data.test_y.cpu().numpy()[pop_idx]
    cache = check_output(_cache_dir(ctx, cfg, canary_idx, pop_idx), folder=True)
    pipelines = cfg.pipeline_list()
    runs: dict[str, list[dict[str, np.ndarray]]] = {p: [] for p in pipelines}
    for s in range(cfg.shadows):  # shadow-major: a kill leaves every pipeline equally advanced
        for p in pipelines:
            path = shadow_file(cache, p, s, member[s])
            ctx.log(f"mia: shadow {s + 1}/{cfg.shadows}, {p}")
            runs[p].append(_load_or_run(path, lambda p=p, s=s: run_shadow(ctx, cfg, p, s, canary_idx, member[s],
                                                                           pop_x)))

    rows, metrics, figures = [], {}, []
    for p in pipelines:
        r = runs[p]
        distances = np.stack([x["distance"] for x in r]) if "distance" in r[0] else None
        scores, flat_member, a_used = attack_scores(np.stack([x["canary_logits"] for x in r]),
                                                    np.stack([x["population_logits"] for x in r]), canary_y, pop_y,
                                                    member, distances, cfg.rmia_gamma, cfg.rmia_a)
        accs = np.array([float(x["test_accuracy"]) for x in r]) * 100
        secs = np.array([float(x["seconds"]) for x in r])
        metrics[p] = {"attacks": {k: summary(v, flat_member) for k, v in scores.items()},
                      "shadow_test_accuracy": {"mean": float(accs.mean()), "std": float(accs.std())},
                      "seconds_per_shadow": float(secs.mean()), "rmia_offline_a": a_used}
        for k in scores:
            m = metrics[p]["attacks"][k]
            rows.append(f"| {_label(p, synth)} | {ATTACK_NAMES[k]} | {_fmt_tpr(m['tpr@0.001'])} | "
                        f"{_fmt_tpr(m['tpr@0.01'])} | {m['auc']:.3f} | {m['trials']} |")
        fname = f"mia_roc_{p}.png"
        write_roc_png(ctx.path(fname), [(ATTACK_NAMES[k], v, flat_member) for k, v in scores.items()],
                      title=f"{_label(p, synth)}: {cfg.shadows} leave-one-out targets × {len(canary_idx)} canaries")
        figures.append((f"Log-log ROC, {_label(p, synth)}", fname))

    settings = {**dataclasses.asdict(cfg), "canaries_used": int(len(canary_idx)), "population_used": pop_n,
                "target": "leave-one-out over shadows (each shadow is the target once, the others its references)",
                "set_method": synth.method, "set_config": synth.config.get("method_config", {}),
                "shadow_distillation_iterations": cfg.iterations if cfg.iterations is not None
                else synth.config.get("method_config", {}).get("iterations"),
                "shadow_distillation_model_args": {**synth.config.get("run", {}).get("model_args", {}),
                                                   **(cfg.model_args or {})},
                "cache": cache}
    cost = ", ".join(f"{_label(p, synth)} {metrics[p]['seconds_per_shadow']:.1f} s" for p in pipelines)
    accs = ", ".join(f"{_label(p, synth)} {metrics[p]['shadow_test_accuracy']['mean']:.1f} ± "
                     f"{metrics[p]['shadow_test_accuracy']['std']:.1f}%" for p in pipelines)
    md = ["Membership inference on the whole pipeline (distil → train). Each of the "
          f"{cfg.shadows} shadows is the target once and the other {cfg.shadows - 1} are its references; "
          f"{len(canary_idx)} canaries, each IN a shadow with probability ½ ({cfg.design} design), so every row pools "
          f"{cfg.shadows * len(canary_idx)} trials (about half members). TPR at a fixed FPR with Clopper–Pearson "
          "95% intervals; trials share canaries and models, so the intervals are optimistic.", "",
          "| pipeline | attack | TPR @ 0.1% FPR [95% CI] | TPR @ 1% FPR [95% CI] | AUC | trials |",
          "|---|---|---|---|---|---|", *rows, "",
          f"Shadow model test accuracy: {accs}. CPU seconds per shadow (distil + train + score): {cost}.",
          "The data-level attack scores the shadow's released set (−min L2 distance in [0, 1] pixel space); "
          "it does not apply to the full-data pipeline, which releases a model only."]
    verdict, flagged = _verdict(metrics, pipelines, synth)
    metrics["canaries"] = int(len(canary_idx))
    metrics["shadows"] = cfg.shadows
    return CheckResult(name="mia", verdict=verdict, markdown="\n".join(md), figures=figures, settings=settings,
                       metrics=metrics, flagged=flagged)


def _label(p: str, synth) -> str:
    return {"set": f"{synth.method} set", "random": "random subset", "full": "full data"}[p]


def _verdict(metrics: dict, pipelines: list[str], synth) -> tuple[str, bool]:
    parts, flagged = [], False
    for p in pipelines:
        attacks = metrics[p]["attacks"]
        best = max(attacks, key=lambda k: attacks[k]["tpr@0.01"]["tpr"])
        r = attacks[best]["tpr@0.01"]
        parts.append(f"{_label(p, synth)} {100 * r['tpr']:.1f}% ({ATTACK_NAMES[best]})")
        if p == "set" and r["ci"][0] > 0.01:  # the interval excludes chance (TPR = FPR = 1%)
            flagged = True
    return "best TPR@1% FPR: " + ", ".join(parts), flagged
