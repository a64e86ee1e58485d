"""Transfer evaluation (condense.evaluation.transfer) and dataset views (condense.data.views), on digits."""
import json
import os

import pytest
import torch

from condense.cli import main
from condense.data import load_dataset, split_view
from condense.errors import CondenseError
from condense.evaluation.transfer import TransferConfig, epochs_for, evaluate_transfer, labelled_rows
from condense.ssl import SSLConfig, train_ssl
from condense.synth import distill

SOURCE, TARGET = "digits@classes=0,1,2,3,4", "digits@classes=5,6,7,8,9"
NET = {"model": "ConvNetBN", "model_args": {"width": 8}}


def test_class_view_keeps_and_relabels_the_chosen_classes():
    full, view = load_dataset("digits"), load_dataset("digits@classes=7,2")
    assert view.name == "digits@classes=7,2" and view.class_names == ["7", "2"]
    assert torch.equal(view.train_x, full.train_x[(full.train_y == 7) | (full.train_y == 2)])
    assert torch.equal(view.train_y, (full.train_y[(full.train_y == 7) | (full.train_y == 2)] == 2).long())
    assert view.fingerprint() != full.fingerprint()


def test_size_and_channel_views_reshape_every_split():
    view = load_dataset("digits@size=16@channels=3")
    assert view.image_shape == (3, 16, 16) and view.test_x.shape[1:] == (3, 16, 16) and len(view.mean) == 3
    assert abs(float(view.train_x.mean())) < 0.05  # still normalised
    grey = load_dataset("digits@channels=3@size=8").train_x  # options apply classes, size, channels, in that order
    assert grey.shape[1:] == (3, 8, 8)
    assert split_view("imagefolder:/data/a@b/cifar@classes=0,1") == ("imagefolder:/data/a@b/cifar", split_view(
        "x@classes=0,1")[1])


@pytest.mark.parametrize("name,needle", [("digits@classes=12", "has no class '12'"),
                                         ("digits@classes=1,one", "has no class 'one'"),
                                         ("digits@classes=3,3", "lists a class twice"),
                                         ("digits@colour=3", "unknown option 'colour'"),
                                         ("digits@size=0", "positive whole number"),
                                         ("digits@channels=2", "must be 1 or 3")])
def test_bad_views_are_one_sentence(name, needle):
    with pytest.raises(CondenseError, match=needle):
        load_dataset(name)


def test_label_budget_and_step_budget():
    y = torch.arange(10).repeat_interleave(50)
    rows = labelled_rows(y, 10, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(torch.bincount(y[rows]), torch.full((10,), 5))
    assert len(labelled_rows(y, 10, 0.001, torch.Generator().manual_seed(0))) == 10  # at least one per class
    assert epochs_for(100, 40, 128) == 100 and epochs_for(100, 1000, 128) == 13


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("transfer")
    ssl = train_ssl(SSLConfig(dataset=SOURCE, model_args={"width": 8}, proj_dim=16, hidden=16, epochs=1),
                    str(d / "ssl.h5"), device="cpu")
    krr = distill("krr_st", SOURCE, 4, iterations=3, target=ssl, pool=1, pool_age=3, batch_real=64, device="cpu",
                  out=str(d / "krr.h5"), **NET)
    rnd = distill("random", SOURCE, 4, device="cpu", out=str(d / "rnd.h5"))
    return {"dir": str(d), "ssl": ssl, "krr": str(d / "krr.h5"), "rnd": str(d / "rnd.h5"), "krr_set": krr,
            "rnd_set": rnd}


@pytest.fixture
def found(sets, monkeypatch):
    """The sets' folder as the teacher folder: where the krr_st set's target is found by its checksum."""
    monkeypatch.setenv("CONDENSE_TEACHERS", sets["dir"])
    return sets


def test_transfer_runs_end_to_end_with_both_baselines(found):
    sets = found
    cfg = TransferConfig(targets=[TARGET, "mnist5k@size=8"], fractions=[0.05, 1.0], runs=2, pretrain_epochs=3,
                         finetune_steps=5, linear_steps=5, **NET)
    report, second = evaluate_transfer([(sets["krr"], sets["krr_set"]), (sets["rnd"], sets["rnd_set"])], cfg,
                                       device="cpu")
    assert second.target == "mnist5k@size=8" and second.labelled["5%"] == 200  # 20 of each class's 400
    assert [r.name for r in second.rows] == [r.name for r in report.rows]
    assert second.rows[2].pretrain_seconds == report.rows[2].pretrain_seconds  # one pre-training serves both
    names = [r.name for r in report.rows]
    assert names == ["no pre-training", "random subset (20)", sets["krr"], sets["rnd"]]
    kinds = {r.name: r.kind for r in report.rows}
    assert kinds["random subset (20)"] == "regression" and kinds[sets["krr"]] == "regression"
    assert kinds[sets["rnd"]] == "labels"
    assert report.columns == ["finetune 5%", "linear 5%", "finetune 100%", "linear 100%"]
    for row in report.rows:
        for col in report.columns:
            assert len(row.results[col]) == 2 and all(0 <= a <= 100 for a in row.results[col])
    assert report.ssl == os.path.abspath(sets["ssl"])  # the random subset regresses on the krr_st set's target
    assert report.labelled["100%"] == len(load_dataset(TARGET).train_y)
    assert "| no pre-training |" in report.markdown() and json.dumps(report.to_json())


def test_same_seed_gives_the_same_scores(found):
    sets = found
    cfg = TransferConfig(targets=[TARGET], fractions=[0.1], modes=["finetune"], baselines=[], runs=1,
                         pretrain_epochs=2, finetune_steps=3, **NET)
    a, = evaluate_transfer([(sets["krr"], sets["krr_set"])], cfg, device="cpu")
    b, = evaluate_transfer([(sets["krr"], sets["krr_set"])], cfg, device="cpu")
    assert a.rows[0].results == b.rows[0].results


def transfer_argv(path, target=TARGET, modes="linear", models="ConvNetBN", *extra):
    return ["eval", path, "--transfer", target, "--models", models, "--model-args", '{"width": 8}', "--runs", "1",
            "--pretrain-epochs", "1", "--finetune-steps", "2", "--transfer-modes", modes, "--label-fractions", "0.1",
            "--device", "cpu", "--quiet", *extra]


def test_cli_writes_the_table_and_refuses_bad_targets(found, capsys):
    sets = found
    out = os.path.join(sets["dir"], "t.json")
    assert main(transfer_argv(sets["krr"], TARGET, "linear", "ConvNetBN", "--json", out)) == 0
    blob = json.load(open(out))
    assert blob["kind"] == "transfer" and blob["reports"][0]["columns"] == ["linear 10%"]
    assert os.path.exists(out[:-5] + ".md")
    capsys.readouterr()
    for args, needle in (((sets["krr"], "mnist5k"), "use a view of the target"),
                         ((sets["krr"], "digits@classes=5,6,99"), "has no class '99'"),
                         ((sets["krr"], TARGET, "finetune,probe"), "Unknown or repeated transfer mode 'probe'"),
                         ((sets["krr"], TARGET, "linear", "ConvNet,MLP"), "exactly one"),
                         ((sets["krr"], TARGET, "linear", "ConvNetBN", "--kernel", "ntk"), "give one")):
        assert main(transfer_argv(*args)) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err


def test_sets_from_different_sources_are_refused(sets, tmp_path):
    other = distill("random", "digits@classes=5,6,7,8,9", 1, device="cpu")
    with pytest.raises(CondenseError, match="different sources"):
        evaluate_transfer([(sets["krr"], sets["krr_set"]), ("other", other)],
                          TransferConfig(targets=[TARGET], runs=1, **NET), device="cpu")
    with pytest.raises(CondenseError, match="Label fractions"):
        TransferConfig(fractions=[1.5]).check()
