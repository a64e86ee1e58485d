"""Evaluation users can trust: per-seed progress with the checkpoint accuracy, and the "still rising" flag (the
protocol was too short) from the checkpoint curves, in the result JSON and the report tables."""
import json
import os

import pytest
import torch

from condense.cli import main
from condense.data import load_dataset
from condense.evaluation import Protocol, evaluate
from condense.evaluation.results import RISING_MARK, RISING_NOTE, GridReport, ModelResult, still_rising
from condense.evaluation.tables import markdown, rich_table
from condense.models import create_model
from condense.store import SynthSet
from condense.train import Labels, checkpoint_epochs

W8 = {"width": 8}


def _set(n_per_class=1, seed=0):
    """A real digits subset, as tests/test_evaluation.py makes it."""
    data = load_dataset("digits", device="cpu")
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([torch.nonzero(data.train_y == c).squeeze(1)[torch.randperm(int((data.train_y == c).sum()),
                     generator=g)[:n_per_class]] for c in range(data.num_classes)])
    return SynthSet(images=data.train_x[idx].clone(), labels=data.train_y[idx], dataset="digits",
                    num_classes=data.num_classes, class_names=data.class_names, mean=data.mean, std=data.std,
                    method="random")


def _curve(*accs, epochs=40):
    """Checkpoints spread evenly over ``epochs`` (as ``checkpoint_epochs``), with these accuracies."""
    at = sorted(checkpoint_epochs(epochs, len(accs)))
    return list(zip(at, accs))


# ---- the rule on hand-made curves ----------------------------------------------------------------------------
def test_rising_flat_noisy_and_one_seed():
    # 4 checkpoints of 40 epochs: 10, 20, 30, 40; 75% is epoch 30, so d = acc(40) - acc(30)
    rising = [_curve(40, 50, 55, 60), _curve(42, 51, 56, 59), _curve(41, 49, 54, 58.5)]
    r = still_rising(rising)
    assert r["rising"] and r["from_epoch"] == 30 and r["gain"] == pytest.approx((5 + 3 + 4.5) / 3)
    flat = [_curve(40, 50, 60, 60.5), _curve(40, 50, 61, 60.8), _curve(40, 50, 59, 59.9)]
    assert not still_rising(flat)["rising"]  # mean gain 0.4: under the 1-point floor
    noisy = [_curve(40, 50, 55, 63), _curve(40, 50, 60, 54), _curve(40, 50, 55, 59)]  # d = 8, -6, 4: mean 2
    n = still_rising(noisy)
    assert n["gain"] == pytest.approx(2.0) and 2 * n["gain_sem"] > 2.0 and not n["rising"]  # not significant
    assert still_rising([_curve(50, 60, 70, 71.5)])["rising"]  # one seed: only the floor, 1.5 > 1
    assert not still_rising([_curve(50, 60, 70, 70.5)])["rising"]
    assert not still_rising([_curve(50, 60, 70, 71.0)])["rising"]  # strictly above the floor
    # a consistent small gain above the floor is rising; a large but spread one is not
    assert still_rising([_curve(50, 60, 70, 71.2), _curve(50, 60, 70, 71.3)])["rising"]
    assert not still_rising([_curve(50, 60, 70, 60), _curve(50, 60, 70, 84)])["rising"]


def test_rising_cannot_tell_without_an_early_enough_checkpoint():
    assert still_rising([]) is None
    assert still_rising([[(50, 80.0)], [(50, 81.0)]]) is None  # one checkpoint: the final one only
    assert still_rising([[(40, 70.0), (50, 80.0)]]) is None  # nothing at or before epoch 37.5
    two = still_rising([[(25, 70.0), (50, 80.0)]])  # two checkpoints (fast): the span is the second half
    assert two["rising"] and two["from_epoch"] == 25
    assert ModelResult(runs=[50.0]).trend is None and not ModelResult(runs=[50.0]).rising


# ---- the progress callback ------------------------------------------------------------------------------------
@pytest.mark.parametrize("vectorised", [True, False])
def test_checkpoint_accuracies_reach_the_caller_per_seed(vectorised):
    import condense.evaluation.evaluator as ev

    data = load_dataset("digits")
    synth = _set(2)
    x, y, _ = ev.selection_split(data, ev.CURVE_PER_CLASS)
    proto = Protocol(epochs=4, batch_size=10, checkpoints=2, augment="none")
    seen = []
    out = ev.train_seeds(lambda: create_model("ConvNet", 1, 10, (8, 8), **W8), [0, 1, 2], synth.images,
                         Labels(synth.labels), (x, y), proto, 0.01, None, vectorised=vectorised,
                         on_checkpoint=lambda i, e, a: seen.append((i, e, a)))
    assert out[0][1]["vectorised"] is vectorised
    assert sorted({e for _, e, _ in seen}) == sorted(checkpoint_epochs(4, 2)) == [2, 4]
    assert all(0.0 <= a <= 1.0 for _, _, a in seen)
    for i, (_, outcome) in enumerate(out):  # the callback saw exactly each seed's curve
        assert [(e, a) for j, e, a in seen if j == i] == outcome["curve"]


def test_eval_progress_bars_show_the_checkpoint_accuracy(monkeypatch):
    import condense.evaluation.evaluator as ev

    fields = []

    class Spy(ev.Progress):
        def update(self, task_id, **kw):
            if "acc" in kw:
                fields.append(kw["acc"])
            return super().update(task_id, **kw)

    monkeypatch.setattr(ev, "Progress", Spy)
    evaluate(_set(1), protocol=Protocol(epochs=2, checkpoints=2), runs=2, device="cpu", model_args=W8,
             progress=True)
    assert len(fields) == 4 and all(f.endswith("%") and 0 <= float(f[:-1]) <= 100 for f in fields)
    assert ev._bar_label({"split": "validation, held out of distillation"}) == "val acc"
    assert ev._bar_label({"split": "a fixed sample of the real training split (30 per class)"}) == "train-sample acc"


# ---- the flag in the JSON and the reports ---------------------------------------------------------------------
def test_eval_json_holds_the_flag_and_the_reports_render_it(tmp_path, capsys):
    rep = evaluate(_set(1), protocol=Protocol(epochs=4, checkpoints=4), runs=2, device="cpu", model_args=W8)
    blob = rep.to_json()["results"]["ConvNet"]
    assert isinstance(blob["still_rising"], bool) and isinstance(blob["late_gain"], float)
    assert blob["late_gain_from_epoch"] == 3  # checkpoints 1..4: the last at or before 75% of 4 epochs
    # force a clear rise, so the tables must carry the mark and its note
    rep.results["ConvNet"].curves = [[(1, 10.0), (2, 20.0), (3, 30.0), (4, 40.0)]] * 2
    grid = GridReport(protocol=rep.protocol, models=["ConvNet"], sets=[rep])
    text = markdown(grid)
    assert f" {RISING_MARK} |" in text and RISING_NOTE in text
    assert rich_table(grid).caption == RISING_NOTE
    path = tmp_path / "r.json"
    path.write_text(json.dumps(grid.to_json()))
    assert json.loads(path.read_text())["results"]["ConvNet"]["still_rising"] is True
    assert main(["report", str(path), "--out", str(tmp_path / "rep")]) == 0
    page = open(tmp_path / "rep" / "README.md").read()
    assert f"(n=2) {RISING_MARK}" in page and RISING_NOTE in page


def test_results_without_the_field_still_load_and_render(tmp_path):
    old = {"dataset": "digits", "method": "dm", "ipc": 1, "protocol": {"name": "fast", "hash": "abc", "epochs": 50,
           "description": "x"}, "seeds": [0, 1], "set": "old.h5",
           "results": {"ConvNet": {"mean": 50.0, "std": 0.0, "runs": [50.0, 50.0]},
                       "LeNet": {"mean": 40.0, "std": 0.0, "runs": [40.0, 40.0],
                                 "curves": [[[25, 30.0], [50, 40.0]], [[25, 31.0], [50, 40.0]]]}}}
    grid = GridReport.from_json(old)
    conv, lenet = grid.sets[0].results["ConvNet"], grid.sets[0].results["LeNet"]
    assert conv.trend is None and not conv.rising and lenet.rising  # derived from the stored curves
    assert conv.to_json()["still_rising"] is None
    text = markdown(grid)
    assert "| 50.00 ± 0.00 | 40.00 ± 0.00 ↑ |" in text and RISING_NOTE in text
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert main(["report", str(path), "--out", str(tmp_path / "rep")]) == 0
    assert os.path.isfile(tmp_path / "rep" / "README.md")
