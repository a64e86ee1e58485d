"""Membership inference: attack statistics on toy problems with known answers, the CLI guard, an end-to-end smoke."""
import json
import os

import numpy as np
import pytest
from scipy.stats import norm

from condense.audit import mia_attacks as A
from condense.audit.mia import attack_scores, balanced_membership, membership
from condense.audit.mia_stats import auc, clopper_pearson, roc_curve, tpr_at_fpr


def _toy(shadows, canaries, population, delta, sigma, tau, seed, design="bernoulli"):
    """Per-model logit-scaled confidences: φ = μ_i + δ·member + σ·ε, per-point difficulty μ_i ~ N(−6, τ).

    Two-class logits (φ, 0) with label 0 give exactly this φ; at φ ≈ −6 the probability p ≈ e^φ, so
    RMIA's p/Pr(x) is monotone in φ − μ_i like the optimal test.
    """
    rng = np.random.default_rng(seed)
    member = membership(design, shadows, canaries, rng)
    mu = rng.normal(-6, tau, canaries)
    phi = mu[None] + delta * member + sigma * rng.normal(size=(shadows, canaries))
    phi_z = rng.normal(-6, tau, population)[None] + sigma * rng.normal(size=(shadows, population))
    as_logits = lambda f: np.stack([f, np.zeros_like(f)], -1)  # noqa: E731
    return as_logits(phi), as_logits(phi_z), member


def test_lira_and_rmia_reach_the_optimal_auc_on_a_gaussian_toy():
    """48 models x 500 canaries: with ~23 references per side the per-point means are good enough that
    calibrated attacks sit within 0.02 of the Neyman–Pearson AUC, and the loss attack at its own."""
    delta, sigma, tau = 1.0, 1.0, 1.0
    cl, pl, member = _toy(48, 500, 400, delta, sigma, tau, seed=0)
    scores, flat, _ = attack_scores(cl, pl, np.zeros(500, int), np.zeros(400, int), member, rmia_a=1.0)
    optimal = norm.cdf(delta / (sigma * np.sqrt(2)))                          # 0.760: the Neyman–Pearson test
    uncalibrated = norm.cdf(delta / np.sqrt(2 * (sigma ** 2 + tau ** 2)))     # 0.691: the loss attack
    for name in ("lira_online", "lira_offline", "rmia_online", "rmia_offline"):
        assert abs(auc(scores[name], flat) - optimal) < 0.02, name
    assert abs(auc(scores["loss"], flat) - uncalibrated) < 0.02


def test_rmia_offline_a_grid_search_finds_the_right_end():
    """Here Pr(x) is the OUT mean (a = 1); a = 0 drops calibration and falls to the loss attack's AUC."""
    cl, pl, member = _toy(12, 500, 300, 1.0, 1.0, 1.0, seed=2)
    p_x = np.exp(A.true_class_logprob(cl, np.zeros(500, int)))
    p_z = np.exp(A.true_class_logprob(pl, np.zeros(300, int)))
    assert A.rmia_choose_a(p_x, member, p_z) >= 0.8
    flat = member[0]
    at = {a: auc(A.rmia_scores(p_x[0], p_x[1:], member[1:], p_z[0], p_z[1:], a=a), flat) for a in (0.0, 1.0)}
    assert at[1.0] > at[0.0] + 0.03


def test_no_signal_gives_chance_auc():
    """Models that ignore membership: every attack sits at 0.5 (the Bernoulli design leaks nothing)."""
    cl, pl, member = _toy(8, 1000, 300, 0.0, 1.0, 1.0, seed=1)
    scores, flat, _ = attack_scores(cl, pl, np.zeros(1000, int), np.zeros(300, int), member, rmia_a=0.5)
    for name, s in scores.items():
        assert abs(auc(s, flat) - 0.5) < 0.025, name


def test_balanced_design_has_half_in_per_canary():
    m = balanced_membership(6, 50, np.random.default_rng(0))
    assert (m.sum(0) == 3).all()
    m = balanced_membership(5, 50, np.random.default_rng(0))
    assert set(m.sum(0).tolist()) == {2, 3}


def test_logit_confidence_is_stable():
    logits = np.array([[50.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    phi = A.logit_confidence(logits, np.array([0, 2]))
    assert phi[0] == pytest.approx(50 - np.log(2))          # naive log(p/(1-p)) would be inf
    assert phi[1] == pytest.approx(np.log(1 / 3) - np.log(2 / 3))


def test_auc_roc_and_tpr_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    member = np.array([1, 0, 1, 1, 0, 0], bool)
    # member-beats-non-member pairs: 0.9 beats 3, 0.7 beats 2, 0.6 beats 2 -> 7 of 9
    assert auc(scores, member) == pytest.approx(7 / 9)
    fpr, tpr, _ = roc_curve(scores, member)
    assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1
    r = tpr_at_fpr(scores, member, 0.0)
    assert r.tpr == pytest.approx(1 / 3) and r.true_positives == 1 and r.members == 3
    assert auc(np.zeros(6), member) == pytest.approx(0.5)  # all tied: chance, not 0 or 1


def test_clopper_pearson_known_values():
    # Closed forms: k = 0 -> [0, 1 − (α/2)^{1/n}]; k = n -> [(α/2)^{1/n}, 1].
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0 and hi == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-9)   # 0.3085
    lo, hi = clopper_pearson(10, 10)
    assert hi == 1 and lo == pytest.approx(0.025 ** (1 / 10), abs=1e-9)
    lo, hi = clopper_pearson(5, 10)  # textbook value: [0.1871, 0.8129]
    assert lo == pytest.approx(0.18709, abs=1e-4) and hi == pytest.approx(0.81291, abs=1e-4)


def test_distance_attack_is_minus_the_nearest_distance():
    released = np.array([[0.0, 0.0], [3.0, 4.0]])
    canaries = np.array([[0.0, 0.0], [3.0, 0.0], [6.0, 8.0]])
    assert A.distance_scores(canaries, released).tolist() == [0.0, -3.0, -5.0]


def test_shadows_below_two_exit_2_with_one_sentence(tmp_path, capsys):
    from condense.cli import main

    out = str(tmp_path / "r.h5")
    assert main(["distill", "--method", "random", "--dataset", "digits", "--ipc", "2", "--out", out,
                 "--device", "cpu", "--quiet"]) == 0
    capsys.readouterr()
    code = main(["audit", out, "--checks", "mia", "--shadows", "1", "--report", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "at least 2 shadow" in err


def test_end_to_end_smoke_on_a_random_coreset(tmp_path):
    """Audit a `random` subset of digits with 4 shadows: report, PNGs, cache, and two exact properties:
    the data-level attack gives 0 exactly to canaries the shadow's subset contains, and the full-data
    loss attack's AUC equals a hand computation from the cached logits."""
    from condense.audit import run_audit
    from condense.synth import distill

    set_path = str(tmp_path / "rand.h5")
    distill("random", "digits", 5, out=set_path, device="cpu", model_args={"width": 8})
    report = str(tmp_path / "rep")
    results = run_audit(set_path, "mia", report, options={
        "shadows": 4, "canaries": 200, "epochs": 2, "population": 100, "model_args": {"width": 8}}, device="cpu")
    r = results[0]
    text = open(os.path.join(report, "index.md")).read()
    assert "| pipeline | attack | TPR @ 0.1% FPR" in text and "| full data | LiRA online |" in text
    for p in ("set", "random", "full"):
        assert os.path.getsize(os.path.join(report, f"mia_roc_{p}.png")) > 1000
    summary = json.load(open(os.path.join(report, "audit.json")))["checks"]["mia"]["metrics"]
    assert summary["set"]["attacks"]["lira_online"]["trials"] == 4 * 200

    from condense.audit.mia import MIAConfig, distil_shadow, shadow_data, choose_canaries, shadow_file
    from condense.data import load_dataset
    from condense.seeding import seed_for
    from condense.store import SynthSet

    data = load_dataset("digits", device="cpu")
    cache = r.settings["cache"]
    rng = np.random.default_rng(seed_for("audit", 0, 17))  # the check's own draw order: canaries, then membership
    canary_idx = choose_canaries(len(data.train_y), 200, rng)
    member = membership("bernoulli", 4, len(canary_idx), rng)
    canaries01 = data.denormalize(data.train_x[canary_idx]).flatten(1)
    y = data.train_y.numpy()[canary_idx]
    synth = SynthSet.load(set_path)
    full_lp, held = [], 0
    for s in range(4):
        # Rebuild shadow s's random subset and find which canaries it holds, pixel for pixel.
        made = distil_shadow("random", synth.config, shadow_data(data, canary_idx, member[s]),
                             seed_for("shadow_set", 0, s), MIAConfig(), "cpu")
        subset01 = data.denormalize(made.images).flatten(1)
        in_set = (canaries01[:, None, :] == subset01[None]).all(-1).any(1).numpy()
        held += int(in_set.sum())
        d = np.load(shadow_file(cache, "set", s, member[s]))["distance"]
        assert not in_set[~member[s]].any()                 # an OUT canary can never be released
        assert (d[in_set] == 0).all()                         # a released canary scores exactly 0
        assert (d[~in_set] < -1e-2).all()                    # every other canary is visibly farther
        logits = np.load(shadow_file(cache, "full", s, member[s]))["canary_logits"]
        full_lp.append(logits[np.arange(len(y)), y] - np.log(np.exp(logits).sum(1)))
    assert held > 0
    full_lp, m = np.concatenate(full_lp), member.reshape(-1)
    pos, neg = full_lp[m], full_lp[~m]
    wins = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert summary["full"]["attacks"]["loss"]["auc"] == pytest.approx(wins, abs=1e-9)


def test_dm_set_shadows_rerun_dm_with_the_budget_override(tmp_path):
    """The shadows re-run the set's own method (here DM) with the `iterations` override, and say so."""
    from condense.audit import run_audit
    from condense.synth import distill

    set_path = str(tmp_path / "dm.h5")
    distill("dm", "digits", 2, out=set_path, device="cpu", model_args={"width": 8}, iterations=3)
    results = run_audit(set_path, "mia", str(tmp_path / "rep"), options={
        "shadows": 2, "canaries": 40, "epochs": 2, "population": 50, "pipelines": "set", "iterations": 1},
        device="cpu")
    r = results[0]
    assert r.settings["shadow_distillation_iterations"] == 1 and r.settings["set_method"] == "dm"
    assert set(r.metrics) >= {"set"} and "full" not in r.metrics
    assert r.metrics["set"]["attacks"]["distance"]["trials"] == 80
    assert "| dm set | RMIA offline |" in open(tmp_path / "rep" / "index.md").read()
    # Raising --shadows re-uses the shadows already run (same membership rows) and adds the new one.
    cache = r.settings["cache"]
    before = {f: os.path.getmtime(os.path.join(cache, f)) for f in os.listdir(cache)}
    more = run_audit(set_path, "mia", str(tmp_path / "rep3"), options={
        "shadows": 3, "canaries": 40, "epochs": 2, "population": 50, "pipelines": "set", "iterations": 1},
        device="cpu")[0]
    after = {f: os.path.getmtime(os.path.join(cache, f)) for f in os.listdir(cache)}
    assert more.settings["cache"] == cache and len(before) == 2 and len(after) == 3
    assert all(after[f] == t for f, t in before.items())


def test_rmia_tie_break_keeps_the_paper_counts_and_orders_within_them():
    ref = np.array([0.0, 1.0, 2.0, 2.0, 5.0])
    x = np.array([-3.0, 0.0, 0.5, 1.5, 2.0, 4.0, 5.0, 9.0, 20.0])
    s = A.smooth_fraction_below(ref, x)
    counts = (ref[None, :] <= x[:, None]).sum(1)
    assert (np.floor(s * (len(ref) + 1) + 1e-9) == counts).all()  # the paper's count is the integer part
    assert (np.diff(s) > 0).all()                                 # and ties inside a count are ordered
