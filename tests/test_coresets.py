import numpy as np
import pytest
import torch

from condense.cli import main
from condense.errors import CondenseError
from condense.synth import distill, prepare
from condense.synth.coresets import herding, kcenter

FAST = {"model_args": {"width": 8}, "device": "cpu", "feature_epochs": 1, "max_per_class": 40}

# Toy class: a=(0,0), b=(4,0), c=(0,3), d=(8,9); mean μ = (3,3).
TOY = np.array([[0, 0], [4, 0], [0, 3], [8, 9]], dtype=np.float32)


def test_herding_picks_the_hand_computed_points():
    # t=1: nearest to μ: |c−μ|²=9 < |b−μ|²=10 < 18 < 61            -> c
    # t=2: nearest to 2μ − c = (6,3): b 13 < d 40 < a 45            -> b
    # t=3: nearest to 3μ − (b+c) = (5,6): d 18 < a 61               -> d
    assert herding(TOY, 3) == [2, 1, 3]
    assert herding(TOY, 4) == [2, 1, 3, 0]


def test_kcenter_picks_the_hand_computed_points():
    # start at the point nearest μ (c), then farthest-first: d (100 from c), then b (min 25 vs a's 9)
    assert kcenter(TOY, 3) == [2, 3, 1]


@pytest.mark.parametrize("method", ["herding", "kcenter", "kmeans"])
def test_coreset_returns_ipc_real_images_per_class(method):
    ipc = 3
    m = prepare(method, "digits", ipc, **FAST)
    synth = m.init()
    data = m.ctx.dataset
    assert synth.images.shape[0] == ipc * data.num_classes
    assert torch.equal(torch.bincount(synth.labels, minlength=data.num_classes),
                       torch.full((data.num_classes,), ipc))
    rows = synth.source_indices
    assert len(set(rows.tolist())) == len(rows)  # distinct images
    assert torch.equal(synth.images, data.train_x[rows])  # drawn from the real set, untouched
    assert torch.equal(synth.labels, data.train_y[rows])  # with their own labels
    again = distill(method, "digits", ipc, **FAST)  # same seed, same picks
    assert torch.equal(again.images, synth.images) and again.method == method


def test_features_from_a_named_network(tmp_path):
    from condense.models import create_model

    torch.manual_seed(0)
    net = create_model("ConvNet", 1, 10, (8, 8), width=8)
    path = str(tmp_path / "feat.pt")
    torch.save(net.state_dict(), path)
    a = distill("herding", "digits", 2, feature_weights=path, **FAST)
    b = distill("herding", "digits", 2, feature_weights=path, **{**FAST, "seed": 5})
    assert torch.equal(a.images, b.images)  # fixed weights: the seed no longer matters
    with pytest.raises(CondenseError, match="does not exist"):
        distill("herding", "digits", 2, feature_weights=str(tmp_path / "none.pt"), **FAST)
    torch.save(create_model("ConvNet", 1, 10, (8, 8), width=16).state_dict(), path)
    with pytest.raises(CondenseError, match="needs"):
        distill("herding", "digits", 2, feature_weights=path, **FAST)


@pytest.mark.parametrize("argv, needles", [
    (["--method", "herding", "--flip"], ["--flip is not supported by method 'herding'"]),
    (["--method", "kcenter", "--ipc", "5000"], ["IPC 5000", "smallest class"]),
    (["--method", "datadam", "--set", "power=0", "--iterations", "1"], ["option 'power' must be a finite number > 0"]),
    (["--method", "dc", "--set", "distance=l1", "--iterations", "1"], ["Unknown gradient distance 'l1'"]),
])
def test_bad_input_is_exit_2_and_one_sentence(capsys, tmp_path, argv, needles):
    code = main(["distill", "--dataset", "digits", "--model-args", '{"width": 8}', "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "x.h5"), *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle.lower() in err.lower(), err
