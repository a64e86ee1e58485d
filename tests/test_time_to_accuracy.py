"""scripts/time_to_accuracy.py: the screen's ranking and the plot's reference specs (no distillation here)."""
import json
import runpy
import sys

import pytest
import torch

SCRIPT = "scripts/time_to_accuracy.py"


def run_script(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", [SCRIPT, *argv])
    runpy.run_path(SCRIPT, run_name="__main__")


def fake_run(folder, accuracies):
    """A run folder holding validation results of snapshots at 0, 5 and 15 minutes."""
    folder.mkdir()
    rows = [{"file": f"snap_{m}min.h5", "minutes": m + 0.1 * bool(m), "iteration": 10 * m, "mean": a, "std": 0.0,
             **({"mark": float(m)} if m else {})} for m, a in zip((0, 5, 15), accuracies)]
    blob = {"rows": rows, "split": "validation", "method": "dm", "protocol": {"name": "fast"}}
    (folder / "results_fast_validation.json").write_text(json.dumps(blob))
    return str(folder)


def test_rank_orders_runs_by_the_snapshot_at_the_mark(tmp_path, monkeypatch, capsys):
    a = fake_run(tmp_path / "a", (40.0, 50.0, 52.0))
    b = fake_run(tmp_path / "b", (40.0, 55.0, 51.0))
    out = tmp_path / "rank.md"
    run_script(monkeypatch, "rank", a, b, "--minutes", "15", "--protocol", "fast", "--out", str(out))
    lines = out.read_text().splitlines()
    capsys.readouterr()
    assert "a |" in lines[2] and "52.00" in lines[2] and "b |" in lines[3]  # at 15 min, a leads
    run_script(monkeypatch, "rank", a, b, "--minutes", "5", "--protocol", "fast")
    table = capsys.readouterr().out.splitlines()
    assert "b |" in table[2] and "55.00" in table[2]  # at 5 min (the 15-min snapshot is past the mark), b leads


def test_rank_without_results_and_a_bad_reference_spec_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as err:
        run_script(monkeypatch, "rank", str(tmp_path / "empty"), "--minutes", "15")
    assert err.value.code == 2 and "is missing" in capsys.readouterr().err
    run = fake_run(tmp_path / "a", (40.0, 50.0, 52.0))
    with pytest.raises(SystemExit) as err:
        run_script(monkeypatch, "plot", run, "--protocol", "fast", "--out", str(tmp_path / "p.png"),
                   "--point", "zoo=18.4:46.2")
    assert err.value.code == 2 and "LABEL=NUMBER:NUMBER:NUMBER" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_eval_marks_scores_only_the_snapshots_asked_for(tmp_path, monkeypatch):
    from condense.data import load_dataset
    from condense.store import SynthSet

    data = load_dataset("digits", device="cpu")
    idx = torch.cat([torch.nonzero(data.train_y == c).squeeze(1)[:1] for c in range(data.num_classes)])
    synth = SynthSet(images=data.train_x[idx].clone(), labels=data.train_y[idx], dataset="digits",
                     num_classes=data.num_classes, class_names=data.class_names, mean=data.mean, std=data.std,
                     method="random")
    snaps = [{"minutes": 0.0, "iteration": 0, "file": "snap_0min.h5"},
             {"minutes": 5.1, "mark": 5.0, "iteration": 3, "file": "snap_5min.h5"},
             {"minutes": 15.2, "mark": 15.0, "iteration": 9, "file": "snap_15min.h5"}]
    for s in snaps:
        synth.save(str(tmp_path / s["file"]))
    (tmp_path / "progress.json").write_text(json.dumps({"snapshots": snaps, "steps": {}}))
    run_script(monkeypatch, "eval", str(tmp_path), "--protocol", "fast", "--epochs", "1", "--runs", "1",
               "--marks", "15", "--device", "cpu")
    rows = json.loads((tmp_path / "results_fast+epochs=1.json").read_text())["rows"]
    assert [r["file"] for r in rows] == ["snap_15min.h5"]
