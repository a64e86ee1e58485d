"""Audit check ``reconstruction``: can the training images be recovered from the weights of a released model?

Two targets, both wide MLPs trained with full-batch GD to convergence, θ_init kept (the attacker's
best case, Loo et al. 2024):

- ``real``: trained on a random class-balanced subset of the real training set, of the set's size by
  default. This is the control: the attack should work here, and if it does not, a clean result on the
  other target means nothing.
- ``synthetic``: trained on the distilled set itself (the "release a model trained on distilled data"
  scenario). The attack then recovers distilled images; the question is whether those match real ones.

Scoring: greedy one-to-one matching (``matching.py``) of the reconstructions against the training
images by SSIM (``similarity.py``: kornia, pinned window) and by L2, and the fraction of images
recovered at SSIM ≥ 0.4 and ≥ 0.6. Every number comes with a chance baseline: the same matching with
held-out real test images in place of the reconstructions, because two different handwritten 1s
already share a high SSIM.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..errors import CondenseError
from .base import AuditContext, CheckResult, register_check
from .gd_target import LOSSES, max_curvature, train_full_batch
from .kkt import KKTConfig, reconstruct
from ..models import create_model
from ..neighbours import knn
from .matching import Matching, greedy_match, pairwise_l2
from .memorization import synthetic_pixels
from .ntk_mlp import NTKMLP
from .similarity import default_window, save_pair_grid, ssim_pairs

TARGETS = ("real", "synthetic")
TARGET_MODELS = ("ntk", "mlp")


@dataclass
class ReconstructionConfig:
    targets: str = "real,synthetic"   # which released-model scenarios to attack
    real_size: int = 0                # size of the real-subset target's training set; 0 = the set's size
    target_model: str = "ntk"         # ntk: NTK-parameterised MLP (Loo et al.); mlp: condense's MLP (standard param.)
    target_width: int = 1024
    target_depth: int = 2             # hidden layers (ntk only; condense's MLP has 2)
    target_loss: str = "mse"          # mse on one-hot / soft labels (Loo et al.) or ce
    target_steps: int = 3000          # full-batch GD steps
    target_lr: float = 0.0            # 0 = 1/λ_max of the empirical NTK (J Jᵀ/N) at init
    attack_iterations: int = 3000
    attack_lr: float = 0.02
    candidates_factor: float = 2.0    # 2N candidates
    use_init: bool = True             # the attacker knows θ_init (else matches θ_final alone)
    ssim_low: float = 0.4
    ssim_high: float = 0.6
    ssim_window: int = 0              # odd Gaussian window; 0 = 11, or smaller for tiny images (shared option)
    ssim_shortlist: int = 64          # against large reference sets, SSIM only for the nearest (L2) images
    grid_pairs: int = 32              # pairs per PNG grid (evenly spread over the matched-SSIM ranking)

    def target_list(self) -> list[str]:
        names = [t.strip() for t in str(self.targets).split(",") if t.strip()]
        if not names or any(n not in TARGETS for n in names):
            raise CondenseError(f"targets must be a comma list of {', '.join(TARGETS)}, got '{self.targets}'.")
        return names

    def attack_config(self) -> KKTConfig:
        return KKTConfig(candidates_factor=self.candidates_factor, iterations=self.attack_iterations,
                         lr=self.attack_lr, use_init=self.use_init)

    def validate(self) -> None:
        self.target_list()
        for name in ("real_size", "target_width", "target_depth", "target_steps", "attack_iterations",
                     "ssim_shortlist", "grid_pairs", "ssim_window"):
            v = getattr(self, name)
            low = 0 if name in ("real_size", "ssim_window") else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise CondenseError(f"Reconstruction option {name} must be a whole number >= {low}, got {v!r}.")
        if self.ssim_window and (self.ssim_window < 3 or self.ssim_window % 2 == 0):
            raise CondenseError(f"ssim_window must be an odd number >= 3 (or 0 for auto), got {self.ssim_window}.")
        if self.target_model not in TARGET_MODELS:
            raise CondenseError(f"target_model must be ntk or mlp, got '{self.target_model}'.")
        if self.target_loss not in LOSSES:
            raise CondenseError(f"target_loss must be mse or ce, got '{self.target_loss}'.")
        for name in ("target_lr", "attack_lr", "candidates_factor", "ssim_low", "ssim_high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise CondenseError(f"Reconstruction option {name} must be a non-negative number, got {v!r}.")
        if not 0 < self.ssim_low <= self.ssim_high <= 1:
            raise CondenseError(f"Need 0 < ssim_low <= ssim_high <= 1, got {self.ssim_low} and {self.ssim_high}.")
        if not isinstance(self.use_init, bool):
            raise CondenseError(f"use_init must be true or false, got {self.use_init!r}.")
        self.attack_config().validate()


# ---- scoring ----------------------------------------------------------------------------------------------
def ssim_matrix(rec01: torch.Tensor, ref01: torch.Tensor, window: int, shortlist: int) -> torch.Tensor:
    """(M, R) SSIM of every reconstruction with every reference image, or only with its ``shortlist``
    nearest references in L2 (NaN elsewhere: never matched) when the full matrix would be large."""
    m, r = rec01.shape[0], ref01.shape[0]
    if r <= shortlist or m * r <= 50_000:
        rows = torch.arange(m).repeat_interleave(r)
        cols = torch.arange(r).repeat(m)
    else:
        _, idx = knn(rec01, ref01, shortlist)
        rows = torch.arange(m).repeat_interleave(shortlist)
        cols = torch.from_numpy(idx).flatten()
    out = torch.full((m, r), float("nan"))
    out[rows, cols] = ssim_pairs(rec01[rows], ref01[cols], window)
    return out


@dataclass
class Score:
    matching: Matching           # greedy SSIM matching, rows = candidates, cols = reference images
    num_ref: int
    recovered_low: int           # reference images matched at SSIM ≥ ssim_low
    recovered_high: int
    median_ssim: float           # over the matched pairs
    median_l2: float             # over greedy L2-matched pairs (Loo et al.'s measure), [0, 1] pixels
    l2: torch.Tensor             # the greedy L2-matched distances

    def closer_than(self, distance: float) -> int:
        return int((self.l2 < distance).sum())

    def row(self, label: str, chance_l2: float) -> str:
        n = self.num_ref
        return (f"| {label} | {n} | {self.recovered_low} ({self.recovered_low / n:.1%}) | "
                f"{self.recovered_high} ({self.recovered_high / n:.1%}) | {self.median_ssim:.3f} | "
                f"{self.median_l2:.2f} | {self.closer_than(chance_l2)} |")

    def metrics(self, chance_l2: float) -> dict:
        return {"num_ref": self.num_ref, "recovered_low": self.recovered_low, "recovered_high": self.recovered_high,
                "fraction_low": self.recovered_low / self.num_ref, "fraction_high": self.recovered_high / self.num_ref,
                "median_ssim": self.median_ssim, "median_l2": self.median_l2,
                "closer_than_chance": self.closer_than(chance_l2)}


def score(cand01: torch.Tensor, ref01: torch.Tensor, cfg: ReconstructionConfig, window: int) -> Score:
    sim = ssim_matrix(cand01, ref01, window, cfg.ssim_shortlist)
    match = greedy_match(sim, higher_is_better=True)
    l2 = greedy_match(pairwise_l2(cand01, ref01), higher_is_better=False)
    s = match.scores
    return Score(matching=match, num_ref=ref01.shape[0], recovered_low=int((s >= cfg.ssim_low).sum()),
                 recovered_high=int((s >= cfg.ssim_high).sum()),
                 median_ssim=float(s.median()) if len(s) else float("nan"),
                 median_l2=float(l2.scores.median()) if len(l2) else float("nan"), l2=l2.scores)


TABLE_HEAD = ("| candidates → reference | reference images | recovered ≥ {lo} | recovered ≥ {hi} | "
              "median matched SSIM | median matched L2 | L2-matched closer than any chance match |\n"
              "|---|---|---|---|---|---|---|")


# ---- targets ----------------------------------------------------------------------------------------------
def balanced_subset(labels: torch.Tensor, num_classes: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of a random subset with ``size`` images spread as evenly as the classes allow."""
    labels = labels.cpu()
    picks = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).squeeze(1)
        want = size // num_classes + (1 if c < size % num_classes else 0)
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:want]])
    return torch.cat(picks)


def build_target(cfg: ReconstructionConfig, image_shape: tuple[int, ...], num_classes: int, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.target_model == "ntk":
            return NTKMLP(math.prod(image_shape), num_classes, width=cfg.target_width, depth=cfg.target_depth)
        return create_model("MLP", image_shape[0], num_classes, tuple(image_shape[1:]), width=cfg.target_width)


@dataclass
class AttackRun:
    name: str
    train_x: torch.Tensor        # normalised training images of the target
    rec01: torch.Tensor          # reconstructions in [0, 1]
    train_loss: float
    train_acc: float
    lr: float
    residual: float


def attack_target(ctx: AuditContext, cfg: ReconstructionConfig, name: str, x: torch.Tensor, labels: torch.Tensor,
                  box: tuple[torch.Tensor, torch.Tensor], offset: int) -> AttackRun:
    data = ctx.data
    model = build_target(cfg, data.image_shape, data.num_classes, ctx.seed_for(offset)).to(ctx.device)
    x = x.to(ctx.device)
    lr = cfg.target_lr or 1.0 / max_curvature(model, x)
    ctx.log(f"reconstruction/{name}: training a width-{cfg.target_width} {cfg.target_model} MLP on {len(x)} "
            f"images ({cfg.target_steps} GD steps, lr {lr:.3g})")
    trained = train_full_batch(model, x, labels.to(ctx.device), data.num_classes, steps=cfg.target_steps, lr=lr,
                               loss=cfg.target_loss)
    ctx.log(f"reconstruction/{name}: train loss {trained.final_loss:.3g}, accuracy {trained.train_acc:.1%}; "
            f"attacking ({cfg.attack_iterations} iterations, {round(cfg.candidates_factor * len(x))} candidates)")
    res = reconstruct(model, trained.theta_final, trained.theta_init, len(x), tuple(data.image_shape), box,
                      cfg.attack_config(), ctx.generator(offset + 1), log=ctx.log,
                      log_every=max(1, cfg.attack_iterations // 5))
    rec01 = data.denormalize(res.images.cpu()).clamp(0, 1)
    return AttackRun(name=name, train_x=x.cpu(), rec01=rec01, train_loss=trained.final_loss,
                     train_acc=trained.train_acc, lr=lr, residual=res.residual)


def write_grid(ctx: AuditContext, cand01: torch.Tensor, ref01: torch.Tensor, sc: Score, fname: str,
               titles: tuple[str, str], limit: int) -> str:
    """Matched pairs ranked by SSIM, ``limit`` of them spread evenly over the ranking (best to worst)."""
    m = sc.matching
    order = torch.argsort(m.scores, descending=True)
    if len(order) > limit:
        order = order[torch.linspace(0, len(order) - 1, limit).round().long()]
    captions = [f"SSIM {float(m.scores[i]):.2f}" for i in order]
    save_pair_grid(cand01[m.rows[order]], ref01[m.cols[order]], ctx.path(fname), captions, titles=titles, ncols=4)
    return fname


@register_check("reconstruction", ReconstructionConfig,
                "KKT/NTK reconstruction attack on wide MLPs trained on a real subset and on the set")
def run(ctx: AuditContext, cfg: ReconstructionConfig) -> CheckResult:
    cfg.validate()
    data, synth = ctx.data, ctx.synth
    if synth.zca_matrix is not None:
        raise CondenseError("The reconstruction check does not support ZCA-whitened sets (images are not in "
                            "pixel space).")
    window = cfg.ssim_window or default_window(*data.image_shape[1:])
    images, targets = synth.decode()  # the released set as a model trained on it sees it
    n_set = len(images)
    real_size = cfg.real_size or n_set
    if real_size > len(data.train_y):
        raise CondenseError(f"real_size {real_size} exceeds the {len(data.train_y)} real training images.")
    box = (data.normalize(torch.zeros(1, data.channels, 1, 1))[0], data.normalize(torch.ones(1, data.channels, 1, 1))[0])
    train01 = data.denormalize(data.train_x.cpu()).clamp(0, 1)
    test01 = data.denormalize(data.test_x.cpu()).clamp(0, 1)
    syn01 = synthetic_pixels(synth, images)

    def chance(n: int, offset: int) -> torch.Tensor:
        """``n`` held-out real images (class-balanced): the 'reconstructions' of an attack that learnt nothing."""
        idx = balanced_subset(data.test_y, data.num_classes, min(n, len(data.test_y)), ctx.generator(offset))
        return test01[idx]

    head = TABLE_HEAD.format(lo=cfg.ssim_low, hi=cfg.ssim_high)
    sections, figures, metrics, verdicts = [], [], {}, []
    flagged = False
    for t_i, name in enumerate(cfg.target_list()):
        offset = 100 * (t_i + 1)
        if name == "real":
            idx = balanced_subset(data.train_y, data.num_classes, real_size, ctx.generator(offset))
            run_ = attack_target(ctx, cfg, name, data.train_x[idx], data.train_y[idx], box, offset)
            ref01 = train01[idx]
            m = len(run_.rec01)
            sc = score(run_.rec01, ref01, cfg, window)
            base = score(chance(m, offset + 2), ref01, cfg, window)
            cl2 = float(base.l2.min())
            rows = [sc.row("reconstructions → its training images", cl2),
                    base.row("chance: held-out real images → its training images", cl2)]
            figures.append((f"Target (a), real subset of {real_size}: reconstruction | matched training image",
                            write_grid(ctx, run_.rec01, ref01, sc, "reconstruction_real.png",
                                       ("reconstruction", "training image"), cfg.grid_pairs)))
            metrics[name] = {"vs_train": sc.metrics(cl2), "chance": base.metrics(cl2), "chance_min_l2": cl2}
            verdict = (f"(a) real-subset MLP: {sc.recovered_high}/{real_size} training images recovered at SSIM ≥ "
                       f"{cfg.ssim_high} (chance {base.recovered_high}), {sc.closer_than(cl2)} closer in L2 than "
                       f"any chance match")
            title = f"Target (a): MLP trained on {real_size} real training images"
        else:
            run_ = attack_target(ctx, cfg, name, images.detach(), targets.detach(), box, offset)
            m = len(run_.rec01)
            sc_syn = score(run_.rec01, syn01, cfg, window)
            sc_real = score(run_.rec01, train01, cfg, window)
            base = score(chance(m, offset + 2), train01, cfg, window)
            leak = score(syn01, train01, cfg, window)
            cl2 = float(base.l2.min())
            rows = [sc_syn.row("reconstructions → the synthetic set", cl2),
                    sc_real.row("reconstructions → the real training set", cl2),
                    base.row("chance: held-out real images → the real training set", cl2),
                    leak.row("reference: the synthetic set itself → the real training set", cl2)]
            figures.append(("Target (b), trained on the set: reconstruction | matched synthetic image",
                            write_grid(ctx, run_.rec01, syn01, sc_syn, "reconstruction_synthetic.png",
                                       ("reconstruction", "synthetic image"), cfg.grid_pairs)))
            figures.append(("Target (b): reconstruction | matched real training image",
                            write_grid(ctx, run_.rec01, train01, sc_real, "reconstruction_synthetic_vs_real.png",
                                       ("reconstruction", "real training image"), cfg.grid_pairs)))
            metrics[name] = {"vs_synthetic": sc_syn.metrics(cl2), "vs_real": sc_real.metrics(cl2),
                             "chance": base.metrics(cl2), "synthetic_vs_real": leak.metrics(cl2), "chance_min_l2": cl2}
            leaked = sc_real.closer_than(cl2)
            flagged = flagged or leaked > 0
            verdict = (f"(b) set-trained MLP: {sc_syn.recovered_high}/{n_set} synthetic images recovered at SSIM ≥ "
                       f"{cfg.ssim_high}; {sc_real.recovered_high} real images matched at SSIM ≥ {cfg.ssim_high} "
                       f"(chance {base.recovered_high}), {leaked} closer in L2 than any chance match")
            title = f"Target (b): MLP trained on the {n_set} synthetic images"
        metrics[name].update({"train_loss": run_.train_loss, "train_acc": run_.train_acc, "target_lr": run_.lr,
                              "attack_residual": run_.residual, "candidates": len(run_.rec01)})
        verdicts.append(verdict)
        sections += [f"### {title}", "",
                     f"Target trained to loss {run_.train_loss:.3g} (train accuracy {run_.train_acc:.1%}, lr "
                     f"{run_.lr:.3g}); {len(run_.rec01)} candidates; final relative KKT residual "
                     f"‖Δθ − Σα∇f‖²/‖Δθ‖² = {run_.residual:.3f}.", "", head, *rows, "", f"Verdict: {verdict}.", ""]
    settings = {**asdict(cfg), "ssim_window": window, "ssim_padding": "valid", "real_size": real_size,
                "attack": asdict(cfg.attack_config()),
                "beta_schedule": "min(beta_start + 10^(beta_decades * i / iterations), beta_max)",
                "matching": "greedy one-to-one (globally best pair first) on SSIM; L2 column: greedy on L2, "
                            "[0,1] pixels",
                "flag_rule": "flagged when a reconstruction from target (b), greedily L2-matched to the real "
                             "training set, is closer than every L2 match of the held-out chance baseline"}
    intro = ("KKT/NTK reconstruction (Haim et al. 2022; Loo et al. 2024): candidates x_j and coefficients "
             "α_j ∈ R^K are optimised so that Σ_j Σ_k α_jk ∇θ f_k(x_j) matches θ_final − θ_init of a wide MLP "
             "trained by full-batch GD. 'Recovered' = greedily matched one-to-one at SSIM ≥ threshold; chance rows "
             "match as many held-out real images instead of reconstructions (SSIM between different digits is "
             "often high, so read every count against its chance row). The last column counts L2 matches closer "
             "than the closest chance match.")
    return CheckResult(name="reconstruction", verdict="; ".join(verdicts), markdown="\n".join([intro, "", *sections]),
                       figures=figures, settings=settings, metrics=metrics, flagged=flagged)
