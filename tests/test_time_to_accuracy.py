"""scripts/time_to_accuracy.py: the screen's ranking and the plot's reference specs (no distillation here)."""
import json
import os
import runpy
import subprocess
import sys

import pytest
import torch

SCRIPT = "scripts/time_to_accuracy.py"


def run_script(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", [SCRIPT, *argv])
    runpy.run_path(SCRIPT, run_name="__main__")


def fake_run(folder, accuracies, marks=(0, 5, 15)):
    """A run folder holding validation results of snapshots at 0, 5 and 15 minutes (or ``marks``)."""
    folder.mkdir()
    rows = [{"file": f"snap_{m}min.h5", "minutes": m + 0.1 * bool(m), "iteration": 10 * m, "mean": a, "std": 0.0,
             **({"mark": float(m)} if m else {})} for m, a in zip(marks, accuracies)]
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


def tta_module():
    return runpy.run_path(SCRIPT)  # the functions, without running main


def row(minutes, mean, std=0.0, runs=None, mark=True):
    return {"minutes": minutes + 0.1, **({"mark": float(minutes)} if mark else {}), "iteration": minutes, "mean": mean,
            "std": std, **({"runs": runs} if runs is not None else {})}


def test_still_rising_rule():
    still_rising = tta_module()["still_rising"]
    start = row(0, 40.0, mark=False)
    # one evaluation run per row (std 0): only the 0.5-point floor applies
    assert still_rising([start, row(5, 50.0), row(15, 52.0)]) is True
    assert still_rising([start, row(5, 50.0), row(15, 50.4)]) is False  # flat: under the floor
    assert still_rising([start, row(5, 50.0), row(15, 50.5)]) is False  # the floor itself is not a rise
    assert still_rising([start, row(5, 50.0), row(15, 45.0)]) is False  # falling
    # only the rows at or before the mark count: at 5 min, the start is the previous snapshot
    assert still_rising([start, row(5, 50.0), row(15, 50.0)], 5) is True
    assert still_rising([row(15, 52.0), start, row(5, 50.0)], 15) is True  # order of the rows does not matter
    # a single snapshot at or before the mark: nothing to compare
    assert still_rising([start, row(5, 50.0)], 4.9) is None
    assert still_rising([start], 15) is None
    # several runs per row (eval stores their accuracies as `runs`): the gain must beat 2 standard errors
    noisy = [row(5, 50.0, 3.0, [47.0, 50.0, 53.0]), row(15, 52.0, 3.0, [49.0, 52.0, 55.0])]
    assert still_rising(noisy) is False  # 2 < 2 * sqrt(9/3 + 9/3) = 4.9
    sure = [row(5, 50.0, 0.5, [49.5, 50.0, 50.5]), row(15, 52.0, 0.5, [51.5, 52.0, 52.5])]
    assert still_rising(sure) is True  # 2 > max(0.5, 2 * sqrt(0.25/3 + 0.25/3) = 0.82)
    # rows without a run count are read as one run each (the widest margin)
    assert still_rising([row(5, 50.0, 1.0), row(15, 52.0, 1.0)]) is False  # 2 < 2 * sqrt(2) = 2.83
    assert still_rising([row(5, 50.0, 1.0, 8), row(15, 52.0, 1.0, 8)]) is True  # a bare count: 2 > 1


def test_rank_flags_runs_still_rising_and_keeps_the_run_path_in_the_third_field(tmp_path, monkeypatch, capsys):
    rising = fake_run(tmp_path / "rising", (40.0, 50.0, 53.0))
    flat = fake_run(tmp_path / "flat", (40.0, 52.0, 52.2))
    late = fake_run(tmp_path / "late", (40.0, 45.0), marks=(0, 15))  # no snapshot at 5 min
    out = tmp_path / "rank_15min.md"
    run_script(monkeypatch, "rank", flat, rising, late, "--minutes", "15", "--protocol", "fast", "--split",
               "validation", "--out", str(out))
    lines = out.read_text().splitlines()
    assert capsys.readouterr().out.splitlines() == lines  # the same table on stdout
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["rank", "run", "validation accuracy (%)", "minutes", "iteration", "still rising at the mark"]
    cells = {c[1]: c for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines[2:])}
    assert [line.split("|")[2].strip() for line in lines[2:]] == [os.path.normpath(r) for r in (rising, flat, late)]
    assert cells[os.path.normpath(rising)][2:] == ["53.00 (one run)", "15.1", "150", "yes"]  # one run: no ± 0.00
    assert cells[os.path.normpath(flat)][5] == "no"
    assert cells[os.path.normpath(late)][5] == "yes"  # 40 -> 45 from the start to 15 min
    # at 5 min, the late run has only its start at or before the mark
    run_script(monkeypatch, "rank", flat, rising, late, "--minutes", "5", "--protocol", "fast")
    table = capsys.readouterr().out.splitlines()
    assert table[-1].split("|")[2].strip() == os.path.normpath(late) and table[-1].split("|")[6].strip() == "–"
    assert all(line.split("|")[6].strip() == "yes" for line in table[2:4])  # the start -> 5 min, both rising
    # scripts/pool_screen.sh picks the best two with exactly this pipeline (and word-splits its output)
    picked = subprocess.run(["bash", "-c", f"sed -n '3,4p' '{out}' | cut -d'|' -f3"], capture_output=True, text=True,
                            check=True).stdout.split()
    assert picked == [os.path.normpath(rising), os.path.normpath(flat)]
    assert all(os.path.isdir(p) for p in picked)


def test_plot_table_flags_each_run_on_its_last_row(tmp_path, monkeypatch):
    rising = fake_run(tmp_path / "rising", (40.0, 50.0, 53.0))
    flat = fake_run(tmp_path / "flat", (40.0, 52.0, 52.2))
    run_script(monkeypatch, "plot", rising, flat, "--protocol", "fast", "--out", str(tmp_path / "p.png"),
               "--point", "zoo=18.4:46.2:0.5")
    lines = (tmp_path / "p.md").read_text().splitlines()
    assert lines[0].rstrip().endswith("| still rising |")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert all(len(c) == 8 for c in cells)
    assert [(c[0], c[2], c[7]) for c in cells] == [
        ("rising", "0.0", ""), ("rising", "5.1", ""), ("rising", "15.1", "yes"),
        ("flat", "0.0", ""), ("flat", "5.1", ""), ("flat", "15.1", "no"), ("zoo", "18.4", "")]
