"""Memorization audit and the --min-distance defence (issue 6, parts 1 and 4)."""
import csv
import json
import os

import pytest
import torch

from condense.audit import run_audit
from condense.audit.similarity import default_window, ssim_pairs
from condense.cli import main
from condense.data import load_dataset
from condense.errors import CondenseError
from condense.store import SynthSet
from condense.synth import distill

FEAT = {"feature_model_args": {"width": 8}, "feature_epochs": 1}
TINY = {"model_args": {"width": 8}, "device": "cpu", "batch_real": 32}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def make_set(ds, images, labels, path) -> str:
    SynthSet(images=images, labels=labels, dataset="digits", num_classes=ds.num_classes,
             class_names=list(ds.class_names), mean=tuple(ds.mean), std=tuple(ds.std), method="test").save(path)
    return path


def pixels01(x: torch.Tensor, ds) -> torch.Tensor:
    return ds.denormalize(x).clamp(0, 1).double().flatten(1)


def test_ssim_is_one_on_copies(digits):  # the exact kNN half lives in test_neighbours.py
    x = digits.denormalize(digits.train_x[:200]).clamp(0, 1)
    assert default_window(8, 8) == 3 and default_window(28, 28) == 11 and default_window(16, 16) == 7
    s = ssim_pairs(x[:4], x[:4].clone())
    assert torch.allclose(s, torch.ones(4)) and (ssim_pairs(x[:4], x[4:8]) < 1).all()


def test_copies_are_flagged_near_copy_and_noise_is_not(digits, tmp_path):
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(digits.train_x), generator=g)[:40]
    copies = make_set(digits, digits.train_x[pick].clone(), digits.train_y[pick].clone(), str(tmp_path / "copies.h5"))
    noise = make_set(digits, torch.randn(40, 1, 8, 8, generator=g), digits.train_y[pick].clone(),
                     str(tmp_path / "noise.h5"))
    report = str(tmp_path / "rep")
    (res,) = run_audit(copies, "memorization", report, options=FEAT)
    assert res.metrics["near_copy"] == 40 and res.verdict.startswith("40/40 near-copy")
    assert res.metrics["pixel"]["near_copy"] == 40 and res.metrics["feature"]["near_copy"] == 40
    assert res.flagged
    with open(os.path.join(report, "memorization.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and all(r["flag"] == "near-copy" for r in rows)
    assert [int(r["pixel_nn1"]) for r in rows] == pick.tolist()  # the copied image is found
    assert all(float(r["pixel_d1"]) == 0.0 and float(r["pixel_ssim"]) > 0.999 for r in rows)
    index = open(os.path.join(report, "index.md")).read()
    for png in ("memorization_pairs_pixel.png", "memorization_pairs_feature.png", "memorization_hist.png"):
        assert os.path.getsize(os.path.join(report, png)) > 1000 and f"({png})" in index
    assert json.load(open(os.path.join(report, "audit.json")))["checks"]["memorization"]["settings"]["ssim_window"] == 3
    # the trained feature net is saved; reusing it gives the same feature space
    weights = os.path.join(report, "memorization_feature_net.h5")
    (again,) = run_audit(copies, "memorization", str(tmp_path / "rep_w"),
                         options={**FEAT, "feature_weights": weights, "feature_epochs": 0})
    with open(tmp_path / "rep_w" / "memorization.csv") as f:
        assert [r["feature_d2"] for r in csv.DictReader(f)] == [r["feature_d2"] for r in rows]

    (res,) = run_audit(noise, "memorization", str(tmp_path / "rep2"), options=FEAT)
    assert res.metrics["near_copy"] == 0 and res.metrics["review"] == 0 and not res.flagged
    assert res.metrics["feature"]["near_copy"] == 0
    assert res.verdict.startswith("0/40 near-copy, 0/40 review (pixel space)")


def test_min_distance_keeps_every_image_at_least_d_from_the_training_set(digits, tmp_path, capsys):
    d = 1.0  # about the median NN distance of a real digits test image to the training set
    train = pixels01(digits.train_x, digits)
    free = distill("dm", "digits", 2, iterations=3, **TINY)
    assert torch.cdist(pixels01(free.images, digits), train).min() < d  # real init: copies, so the test can fail
    out = str(tmp_path / "md.h5")
    code = main(["distill", "--method", "dm", "--dataset", "digits", "--ipc", "2", "--iterations", "3",
                 "--min-distance", str(d), "--model-args", '{"width": 8}', "--batch-real", "32", "--device", "cpu",
                 "--quiet", "--out", out])
    assert code == 0, capsys.readouterr().err
    synth = SynthSet.load(out)
    assert synth.config["method_config"]["min_distance"] == d
    clamped = pixels01(synth.images, digits)
    unclamped = (synth.images * synth.images.new_tensor(synth.std).view(1, -1, 1, 1)
                 + synth.images.new_tensor(synth.mean).view(1, -1, 1, 1)).double().flatten(1)
    assert torch.cdist(clamped, train).min() >= d  # brute force, independent of faiss
    assert torch.cdist(unclamped, train).min() >= d
    # datadam goes through the same descent step
    dam = distill("datadam", "digits", 2, iterations=2, min_distance=d, **TINY)
    assert torch.cdist(pixels01(dam.images, digits), train).min() >= d


def test_min_distance_resume_is_bit_exact(tmp_path):
    out = str(tmp_path / "r.h5")
    opts = dict(TINY, min_distance=1.0)
    straight = distill("dm", "digits", 2, iterations=4, **opts)

    def interrupt(it, stats):
        if it == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill("dm", "digits", 2, iterations=4, out=out, checkpoint_every=2, on_step=interrupt, **opts)
    resumed = distill("dm", "digits", 2, iterations=4, out=out, resume=True, checkpoint_every=2, **opts)
    assert torch.equal(resumed.images, straight.images)


@pytest.mark.parametrize("d", [-1.0, float("nan"), float("inf")])
def test_min_distance_bad_values(d):
    with pytest.raises(CondenseError, match="'min_distance' must be a finite number ≥ 0"):
        distill("dm", "digits", 2, iterations=1, min_distance=d, **TINY)


@pytest.mark.parametrize("method", ["dc", "random", "mtt"])
def test_min_distance_on_a_method_without_the_defence(method):
    with pytest.raises(CondenseError, match=r"supported by datadam, dm, idm, kip, rkip, not by"):
        distill(method, "digits", 2, iterations=1, min_distance=1.0, model_args={"width": 8}, device="cpu")


@pytest.fixture
def digits_set(tmp_path, capsys):
    out = str(tmp_path / "ok.h5")
    assert main(["distill", "--method", "random", "--dataset", "digits", "--ipc", "2", "--out", out,
                 "--device", "cpu", "--quiet"]) == 0
    capsys.readouterr()
    return out


def _one_sentence(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle.lower() in err.lower(), err


@pytest.mark.parametrize("extra, needles", [
    (["--checks", "nosuchcheck"], ["Unknown audit check 'nosuchcheck'"]),
    (["--dataset", "mnist5k"], ["distilled from 'digits'", "own training data"]),
    (["--set", "k=1"], ["'k' must be an integer ≥ 2"]),
    (["--set", "flag_space=colour"], ["flag_space"]),
    (["--set", "ssim_window=4"], ["odd"]),
    (["--feature-weights", "/nonexistent/w.pt", "--set", "feature_model_args={\"width\": 8}"], ["does not exist"]),
])
def test_audit_bad_input_exits_2_with_one_sentence(capsys, digits_set, tmp_path, extra, needles):
    _one_sentence(capsys, ["audit", digits_set, "--report", str(tmp_path / "rep"), "--device", "cpu", "--quiet",
                           *extra], *needles)
    assert not os.path.exists(tmp_path / "rep")


def test_audit_refuses_a_set_whose_shape_does_not_match_its_dataset(capsys, digits, tmp_path):
    bad = make_set(digits, torch.zeros(10, 1, 28, 28), torch.arange(10), str(tmp_path / "shape.h5"))
    _one_sentence(capsys, ["audit", bad, "--report", str(tmp_path / "rep"), "--device", "cpu", "--quiet"],
                  "but dataset digits has (1, 8, 8)")
