"""Reconstruction audit: greedy matching, the KKT attack on a wide MLP, the check end to end, bad options."""
import json
import os

import pytest
import torch

from condense.audit.gd_target import max_curvature, train_full_batch
from condense.audit.kkt import KKTConfig, reconstruct
from condense.audit.matching import greedy_match, pairwise_l2
from condense.audit.ntk_mlp import NTKMLP
from condense.audit.reconstruction import ReconstructionConfig
from condense.cli import main
from condense.data import load_dataset
from condense.errors import CondenseError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", root=None, max_per_class=None, device="cpu")


def test_greedy_matching_takes_the_global_best_pair_first():
    # Row-wise argmin gives both rows column 0. Greedy takes (1, 0) = 0.5 first, then row 0 gets column 1.
    dist = torch.tensor([[1.0, 2.0, 9.0],
                         [0.5, 10.0, 9.0]])
    assert dist.argmin(1).tolist() == [0, 0]
    m = greedy_match(dist, higher_is_better=False)
    assert list(zip(m.rows.tolist(), m.cols.tolist())) == [(1, 0), (0, 1)]
    assert m.scores.tolist() == [0.5, 2.0]
    # The same matrix read as similarities: (1, 1) = 10 first, then row 0 takes column 2 (9 > 1).
    s = greedy_match(dist, higher_is_better=True)
    assert list(zip(s.rows.tolist(), s.cols.tolist())) == [(1, 1), (0, 2)]
    # More candidates than targets: every target is claimed once; NaN pairs are never matched.
    sim = torch.tensor([[0.9, float("nan")], [0.8, float("nan")], [0.7, 0.1]])
    t = greedy_match(sim, higher_is_better=True)
    assert list(zip(t.rows.tolist(), t.cols.tolist())) == [(0, 0), (2, 1)]
    assert pairwise_l2(torch.zeros(1, 1, 2, 2), torch.ones(2, 1, 2, 2)).tolist() == [[2.0, 2.0]]


def test_kkt_attack_recovers_most_of_ten_training_points(digits):
    """A width-512 NTK MLP trained to convergence on 10 digits leaks them: the attack finds ≥ 8 of 10 within
    L2 1.0 ([0, 1] pixels, 64 of them), where held-out digits match the same images at L2 ≈ 2."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(digits.train_y), generator=g)[:10]
    x, y = digits.train_x[idx], digits.train_y[idx]
    torch.manual_seed(0)
    model = NTKMLP(64, 10, width=512)
    trained = train_full_batch(model, x, y, 10, steps=300, lr=1.0 / max_curvature(model, x), loss="mse")
    assert trained.final_loss < 1e-3 and trained.train_acc == 1.0
    box = (digits.normalize(torch.zeros(1, 1, 1, 1))[0], digits.normalize(torch.ones(1, 1, 1, 1))[0])
    res = reconstruct(model, trained.theta_final, trained.theta_init, 10, (1, 8, 8), box,
                      KKTConfig(iterations=600), torch.Generator().manual_seed(1))
    assert res.images.shape == (20, 1, 8, 8) and res.alpha.shape == (20, 10)
    assert res.residual < 0.1
    rec01 = digits.denormalize(res.images).clamp(0, 1)
    real01 = digits.denormalize(x)
    matched = greedy_match(pairwise_l2(rec01, real01), higher_is_better=False).scores
    assert int((matched < 1.0).sum()) >= 8, matched
    # The control: 20 held-out digits in place of the reconstructions get nowhere near.
    chance = greedy_match(pairwise_l2(digits.denormalize(digits.test_x[:20]), real01), higher_is_better=False).scores
    assert int((chance < 1.0).sum()) == 0


def test_check_end_to_end_writes_report(tmp_path, tiny_set):
    """Tiny budgets: the report has both targets' tables, the three grids and JSON metrics."""
    from condense.data import load_dataset as load

    ds = load("digits", root=None, max_per_class=None, device="cpu")
    tiny_set.images = ds.train_x[:6].clone()
    tiny_set.mean, tiny_set.std = ds.mean, ds.std
    tiny_set.num_classes, tiny_set.class_names = 10, ds.class_names
    path = tiny_set.save(str(tmp_path / "set.h5"))
    report = tmp_path / "rep"
    argv = ["audit", path, "--checks", "reconstruction", "--report", str(report), "--quiet",
            "--set", "target_width=64", "--set", "target_steps=20", "--set", "attack_iterations=20"]
    assert main(argv) == 0
    files = set(os.listdir(report))
    assert {"index.md", "audit.json", "reconstruction_real.png", "reconstruction_synthetic.png",
            "reconstruction_synthetic_vs_real.png"} <= files
    out = json.load(open(report / "audit.json"))["checks"]["reconstruction"]
    assert out["metrics"]["real"]["vs_train"]["num_ref"] == 6
    assert out["metrics"]["synthetic"]["vs_synthetic"]["num_ref"] == 6
    assert out["metrics"]["synthetic"]["candidates"] == 12
    # The set is made of real training images, so the set itself sits at L2 0 from them.
    assert out["metrics"]["synthetic"]["synthetic_vs_real"]["median_l2"] == pytest.approx(0.0, abs=1e-4)
    assert out["settings"]["ssim_window"] == 3


@pytest.mark.parametrize("options, needle", [
    ({"targets": "real,model"}, "targets"),
    ({"attack_iterations": 0}, "attack_iterations"),
    ({"target_width": "wide"}, "target_width"),
    ({"ssim_low": 0.7, "ssim_high": 0.6}, "ssim_low"),
    ({"target_model": "resnet"}, "target_model"),
    ({"ssim_window": 4}, "ssim_window"),
    ({"attack_lr": -1.0}, "attack_lr"),
])
def test_bad_options_raise_one_sentence(options, needle):
    with pytest.raises(CondenseError, match=needle):
        ReconstructionConfig(**options).validate()


def test_bad_attack_config_and_cli_exit_2(tmp_path, tiny_set, capsys):
    with pytest.raises(CondenseError, match="beta_max"):
        KKTConfig(beta_start=50, beta_max=20).validate()
    path = tiny_set.save(str(tmp_path / "set.h5"))
    assert main(["audit", path, "--checks", "reconstruction", "--set", "target_steps=-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "target_steps" in err
