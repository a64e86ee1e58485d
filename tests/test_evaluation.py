"""Evaluator suite: protocols as data, vectorised seeds vs sequential, grid/reference, KD, report, torchrun."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from condense.cli import main
from condense.errors import CondenseError
from condense.data import load_dataset
from condense.evaluation import Protocol, evaluate, get_protocol, list_protocols
from condense.evaluation.protocol import protocol_dirs
from condense.store import SynthSet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W16 = {"width": 16}


def _set(n_per_class=2, soft=False, seed=0):
    """A real digits subset (so accuracies mean something), optionally with soft labels."""
    data = load_dataset("digits", device="cpu")
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([torch.nonzero(data.train_y == c).squeeze(1)[torch.randperm(int((data.train_y == c).sum()),
                     generator=g)[:n_per_class]] for c in range(data.num_classes)])
    labels = data.train_y[idx]
    if soft:
        labels = torch.nn.functional.one_hot(labels, data.num_classes).float() * 0.9 + 0.01
    return SynthSet(images=data.train_x[idx].clone(), labels=labels, dataset="digits", num_classes=data.num_classes,
                    class_names=data.class_names, mean=data.mean, std=data.std, method="random")


def test_protocols_are_files_and_results_record_content_and_hash():
    assert {"standard", "long", "fast", "soft", "kd", "datadam"} <= set(list_protocols())
    raw = json.load(open(os.path.join(ROOT, "eval", "protocols", "standard.json")))
    std = get_protocol("standard")
    assert std.to_dict() == {**Protocol().to_dict(), **raw}  # the file is the whole truth
    assert str(protocol_dirs()[0]).endswith(os.path.join("eval", "protocols"))
    assert get_protocol("standard", epochs=7).digest() != std.digest() == get_protocol("standard").digest()
    rep = evaluate(_set(1), protocol="fast", epochs=2, runs=2, device="cpu", model_args=W16)
    assert rep.protocol["hash"] == get_protocol("fast", epochs=2).digest()
    assert rep.protocol["optimizer"] == "sgd" and rep.protocol["epochs"] == 2 and rep.seeds == [0, 1]


def test_protocol_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epochs": 3, "optimiser": "sgd"}))
    with pytest.raises(CondenseError, match="unknown field 'optimiser'"):
        get_protocol(str(bad))
    bad.write_text(json.dumps({"epochs": 3, "labels": "teacher"}))
    with pytest.raises(CondenseError, match="no 'teacher' entry"):
        get_protocol(str(bad))
    ok = tmp_path / "mine.json"
    ok.write_text(json.dumps({"name": "mine", "epochs": 3, "optimizer": "adamw", "lr": 1e-3, "schedule": "cosine"}))
    assert get_protocol(str(ok)).optimizer == "adamw"


def test_vectorised_matches_sequential():
    """Same seeds, same per-seed randomness: per-seed trajectories agree (float rounding aside) and the
    5-seed means agree within the combined std, for a conv net and an MLP."""
    synth = _set(3)
    proto = Protocol(name="t", epochs=20, batch_size=10, lr=0.02, checkpoints=2)
    kw = dict(models=["ConvNet", "MLP"], runs=5, protocol=proto, device="cpu", model_args=W16)
    vec, seq = evaluate(synth, sequential=False, **kw), evaluate(synth, sequential=True, **kw)
    for m in ("ConvNet", "MLP"):
        v, s = vec.results[m], seq.results[m]
        assert v.trainer == "vectorised" and s.trainer.startswith("sequential")
        assert abs(v.mean - s.mean) <= v.std + s.std + 1e-9, (m, v, s)
        assert v.mean > 20, v  # 10 classes on digits: well above chance
        diffs = [abs(a - b) for a, b in zip(v.runs, s.runs)]
        assert max(diffs) < 3.0, (m, v.runs, s.runs)  # same trajectories up to rounding


def test_batchnorm_falls_back_to_sequential():
    rep = evaluate(_set(1), models="ConvNetBN", runs=2, sequential=False, protocol=Protocol(epochs=2, checkpoints=1), device="cpu",
                   model_args={"width": 8})
    assert rep.results["ConvNetBN"].trainer.startswith("sequential (BatchNorm")


def test_soft_and_teacher_protocols(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    proto = get_protocol("soft", epochs=30, batch_size=8, lr=0.01)  # INFER lr 1e-3 needs thousands of steps
    soft = evaluate(_set(3, soft=True), protocol=proto, runs=2, device="cpu", model_args=W16)
    assert soft.labels.startswith("soft (prob") and soft.results["ConvNet"].mean > 30, soft.results
    probs = _set(3, soft=True)
    logits = dataclasses.replace(probs, labels=probs.labels.log() * 10, label_kind="logits")  # the same targets at T = 10
    soft = evaluate(logits, protocol=get_protocol("soft", epochs=30, batch_size=8, lr=0.01, temperature=10.0), runs=2,
                    device="cpu", model_args=W16)
    assert soft.labels == "soft (logits)" and soft.results["ConvNet"].mean > 20, soft.results  # chance: 10
    with pytest.raises(CondenseError, match="hard labels"):
        evaluate(_set(1), protocol="soft", epochs=1, runs=1, device="cpu")
    teacher = {"model": "ConvNet", "model_args": W16, "epochs": 6, "batch_size": 64, "lr": 0.05,
               "augment": "none", "seed": 0}
    kd = get_protocol("kd", epochs=15, teacher=teacher)
    rep = evaluate(_set(2), protocol=kd, runs=2, device="cpu", model_args=W16)
    info = rep.teacher
    assert rep.labels == "teacher" and info["test_accuracy"] > 80 and os.path.isfile(info["cache"])
    again = evaluate(_set(2), protocol=kd, runs=2, device="cpu", model_args=W16)  # cached teacher: same numbers
    assert again.results["ConvNet"].runs == rep.results["ConvNet"].runs


def _cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def two_sets(tmp_path):
    paths = []
    for n in (1, 2):
        p = str(tmp_path / f"s{n}.h5")
        _set(n, seed=n).save(p)
        paths.append(p)
    return paths


@pytest.mark.parametrize("extra, needle", [
    (["--protocol", "nosuch"], "Unknown protocol 'nosuch'"),
    (["--models", "ConvNet,NoSuchNet"], "Unknown model 'NoSuchNet'"),
    (["--protocol", "soft"], "hard labels"),
    (["--dataset", "mnist5k"], "images are (1, 8, 8)"),
    (["--reference", "half"], "Unknown reference 'half'"),
])
def test_eval_bad_input(capsys, two_sets, extra, needle):
    code, _, err = _cli(capsys, "eval", two_sets[0], "--epochs", "1", "--runs", "1", "--device", "cpu", *extra)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and needle.lower() in err.lower(), err


def test_grid_side_by_side_with_reference_and_report(tmp_path, capsys, two_sets):
    js = str(tmp_path / "grid.json")
    code, out, err = _cli(capsys, "eval", *two_sets, "--models", "ConvNet,MLP", "--epochs", "3", "--runs", "2",
                          "--reference", "random", "--json", js, "--model-args", '{"width": 8}', "--device", "cpu",
                          "--quiet")
    assert code == 0, err
    payload = json.load(open(js))
    sets = payload["sets"]
    assert [os.path.basename(s["set"]) for s in sets] == ["s1.h5", "s2.h5"]
    assert sets[0]["seeds"] == sets[1]["seeds"] == payload["reference"]["seeds"]
    assert sets[0]["protocol"] == sets[1]["protocol"] == payload["reference"]["protocol"]
    assert "reference: random" in out and "s2.h5" in out and "MLP" in out
    md = open(js[:-5] + ".md").read()
    assert "| s1.h5 | random | 1 |" in md and payload["protocol"]["hash"] in md
    code, _, err = _cli(capsys, "report", js, "--out", str(tmp_path / "rep"))
    assert code == 0, err
    for png in ("accuracy_vs_ipc.png", "cross_arch.png", "curves.png"):
        blob = open(tmp_path / "rep" / png, "rb").read()
        assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 5000
        assert f"]({png})" in open(tmp_path / "rep" / "README.md").read()
    code, _, err = _cli(capsys, "report", str(tmp_path / "nothere.json"), "--out", str(tmp_path / "x"))
    assert code == 2 and "does not exist" in err


def test_torchrun_two_ranks_match_one_rank(tmp_path, two_sets):
    """(architecture x seed) jobs sharded over 2 gloo ranks give the same per-job results as 1 process."""
    args = ["eval", two_sets[0], "--models", "ConvNet,MLP", "--epochs", "2", "--runs", "3", "--sequential",
            "--model-args", '{"width": 8}', "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = str(tmp_path / "one.json")
    done = subprocess.run([sys.executable, "-m", "condense.cli", *args, "--json", one], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    two = str(tmp_path / "two.json")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29517", "-m", "condense.cli", *args, "--json", two], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = json.load(open(one)), json.load(open(two))
    assert b["world"] == 2 and len(b["jobs"]) == 6
    for m in ("ConvNet", "MLP"):
        assert a["results"][m]["runs"] == b["results"][m]["runs"], m
        assert a["results"][m]["seeds"] == b["results"][m]["seeds"]


def test_the_test_split_is_read_once_per_network_at_the_end(monkeypatch):
    """Checkpoint curves are scored on the selection split; the test images reach only the final accuracy."""
    import condense.evaluation.evaluator as ev

    data = load_dataset("digits")
    test_ptr = data.test_x.data_ptr()
    real_fit, real_acc, events = ev.fit, ev.test_accuracy, []

    def spy_fit(*args, test=None, **kw):
        assert test is not None and test[0].data_ptr() != test_ptr and len(test[0]) != len(data.test_x)
        events.append("fit")
        return real_fit(*args, test=test, **kw)

    def spy_acc(net, x, y, *a, **kw):
        assert x.data_ptr() == test_ptr
        events.append("test")
        return real_acc(net, x, y, *a, **kw)

    monkeypatch.setattr(ev, "fit", spy_fit)
    monkeypatch.setattr(ev, "test_accuracy", spy_acc)
    rep = evaluate(_set(1), protocol=Protocol(epochs=2, checkpoints=2), runs=3, device="cpu", dataset=data,
                   model_args={"width": 8})
    assert events == ["fit", "fit", "fit", "test", "test", "test"]  # every test pass after all training
    assert rep.selection["split"].startswith("a fixed sample of the real training split")
    assert rep.selection["images"] == 1000 and rep.selection["curve_images"] == 300  # curves read 30 per class
    from condense.evaluation.results import GridReport
    from condense.evaluation.tables import markdown
    text = markdown(GridReport(protocol=rep.protocol, models=["ConvNet"], sets=[rep]))
    assert "checkpoint curves: 300 images of a fixed sample of the real training split" in text
    assert [e for e, _ in rep.results["ConvNet"].curves[0]] == [1, 2]


def test_a_large_validation_split_is_sampled_per_class_for_the_checkpoints():
    """Every checkpoint is a pass over the selection split, so a big validation split is capped per class."""
    import condense.evaluation.evaluator as ev

    data = load_dataset("digits")
    big = dataclasses.replace(data, val_x=data.train_x[::3], val_y=data.train_y[::3])
    x, y, info = ev.selection_split(big, 5)
    assert torch.bincount(y, minlength=10).tolist() == [5] * 10 and "5 per class" in info["split"]
    rows = [int((big.val_x == xi).flatten(1).all(1).nonzero()[0]) for xi in x]
    assert rows == sorted(rows) and torch.equal(big.val_y[rows], y)  # drawn from the validation split
    assert torch.equal(ev.selection_split(big, 5)[0], x)  # the same sample every time
    few = ev.selection_split(big, 2)[0]
    assert len(few) == 20 and all((x == xi).flatten(1).all(1).any() for xi in few)  # the curves' share: a subset
    small = dataclasses.replace(data, val_x=data.train_x[::60], val_y=data.train_y[::60])
    assert ev.selection_split(small, 5)[0] is small.val_x  # under the cap: the whole split


def test_overridden_protocols_get_a_derived_name_and_description():
    base = get_protocol("standard")
    short = get_protocol("standard", epochs=2)
    assert short.name == "standard+epochs=2" and "300" not in short.description and "2 epochs" in short.description
    assert short.digest() != base.digest() and get_protocol("standard", epochs=300) == base  # no change, same name
    rep = evaluate(_set(1), protocol="fast", epochs=1, runs=1, device="cpu", model_args={"width": 8})
    assert rep.protocol["name"] == "fast+epochs=1" and "1 epoch," in rep.protocol["description"]


def test_models_all_skips_what_does_not_fit_with_a_note(tmp_path, capsys):
    path = str(tmp_path / "s.h5")
    _set(1).save(path)
    code, _, err = _cli(capsys, "eval", path, "--models", "all", "--epochs", "1", "--runs", "1", "--device", "cpu",
                        "--quiet", "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    rep = json.load(open(tmp_path / "r.json"))
    assert set(rep["skipped"]) == {"LeNet", "VGG11"} and "16×16" in rep["skipped"]["LeNet"]
    assert "LeNet" not in rep["results"] and "ConvNet" in rep["results"]
    assert "skipped (images do not fit): LeNet" in open(tmp_path / "r.md").read()
    code, _, err = _cli(capsys, "eval", path, "--models", "LeNet", "--epochs", "1", "--runs", "1", "--device", "cpu")
    assert code == 2 and "16×16" in err  # named explicitly: refused, not skipped


def test_dd_ranking_metrics_by_hand():
    from math import e, exp

    from condense.evaluation.metrics import ars, lrs, ranking

    r = ranking([50.0, 52.0], [40.0, 44.0], full_accuracy=80.0)
    assert r["ior"] == 9.0 and r["ior_std"] == 1.0 and r["random_mean"] == 42.0 and r["hlr"] == 29.0
    assert r["lrs"] == lrs(9.0, 29.0) == (exp(0.5 * 0.09 - 0.5 * 0.29) - exp(-1)) / (e - exp(-1))  # fractions
    assert lrs(100.0, 0.0, w=1.0) == 1.0 and lrs(0.0, 100.0, w=0.0) == 0.0  # the normalisation's ends
    assert ars(4.0, 2.0) == (exp(0.5 * 0.04 + 0.5 * 0.02) - exp(-1)) / (e - exp(-1))
    assert ranking([50.0], [40.0])["hlr"] is None and ranking([50.0], [40.0])["lrs"] is None


def test_eval_reports_ior_against_fresh_random_subsets_and_hlr_from_a_stored_reference(tmp_path, monkeypatch):
    from condense.evaluation import run_grid
    from condense.evaluation.references import build_reference, full_accuracy

    monkeypatch.setenv("CONDENSE_REFERENCES", str(tmp_path / "refs"))
    data = load_dataset("digits")
    assert full_accuracy(data, "ConvNet", W16) is None
    path = build_reference(data, "ConvNet", W16)
    assert build_reference(data, "ConvNet", W16) == path  # built once, then reused
    full = full_accuracy(data, "ConvNet", W16)
    assert full > 50  # 30 epochs on the whole digits training split (chance: 10)
    s = str(tmp_path / "s.h5")
    _set(2).save(s)
    grid = run_grid([s], protocol=Protocol(epochs=4, batch_size=10, checkpoints=1), runs=2, device="cpu",
                    model_args=W16)
    r = grid.sets[0].ranking["ConvNet"]
    assert len(r["random_runs"]) == 2 and r["random_runs"][0] != r["random_runs"][1]  # a fresh subset per run
    assert r["full_accuracy"] == full and r["hlr"] == pytest.approx(full - grid.sets[0].results["ConvNet"].mean)
    assert r["ior"] == pytest.approx(grid.sets[0].results["ConvNet"].mean - r["random_mean"])
    assert run_grid([s], protocol=Protocol(epochs=1, checkpoints=1), runs=1, device="cpu", model_args=W16,
                    ior=False).sets[0].ranking is None


def test_lr_grid_chooses_on_the_selection_split(monkeypatch):
    import condense.evaluation.evaluator as ev

    calls = []
    real = ev.train_seeds

    def spy(build, seeds, x, labels, select, proto, lr, *a, **kw):
        calls.append((lr, len(seeds)))
        return real(build, seeds, x, labels, select, proto, lr, *a, **kw)

    monkeypatch.setattr(ev, "train_seeds", spy)
    rep = evaluate(_set(2), protocol=Protocol(epochs=20, batch_size=10, checkpoints=1), runs=2, device="cpu",
                   model_args=W16, lr_grid=[1e-4, 0.05])
    pick = rep.lr_selected["ConvNet"]
    assert calls == [(1e-4, 1), (0.05, 1), (pick["chosen"], 2)]  # one run per candidate, then the runs
    assert pick["chosen"] == 0.05 and pick["selection_accuracy"][1] > pick["selection_accuracy"][0]
    with pytest.raises(CondenseError, match="positive finite"):
        evaluate(_set(1), protocol="fast", epochs=1, runs=1, device="cpu", lr_grid=[0.01, -1.0])
