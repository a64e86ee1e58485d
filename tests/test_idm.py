"""Fast convergence: multi-formation sets, the network pool, the class-aware regulariser, IDM, validation splits."""
import os

import pytest
import torch

from condense.cli import main
from condense.data import ValidationSpec, load_dataset
from condense.errors import CondenseError
from condense.evaluation import Protocol, evaluate
from condense.store import SynthSet
from condense.synth import distill, prepare
from condense.synth.init import grids

TINY = {"model_args": {"width": 16}, "device": "cpu"}
POOL = {"pool": 3, "pool_interval": 2, "pool_train_nets": 1, "pool_steps": 2, "pool_batch": 32}


def test_multi_formation_init_holds_f2_real_thumbnails_that_decode_back():
    x = torch.rand(8, 3, 32, 32)
    stored = grids(x, 2)  # 2 stored images, each 4 thumbnails
    s = SynthSet(images=stored, labels=torch.tensor([0, 1]), dataset="t", num_classes=2, class_names=["a", "b"],
                 mean=(0.0,) * 3, std=(1.0,) * 3, method="t", decoder={"kind": "multi_formation", "factor": 2})
    images, labels = s.decode()
    small = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    again = torch.nn.functional.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    for n in range(2):
        for q in range(4):  # decoded image q·N + n is thumbnail q of stored image n
            assert torch.allclose(images[q * 2 + n], again[n * 4 + q], atol=1e-6)
    assert labels.tolist() == [0, 1] * 4
    assert s.storage_bytes()["images"] == stored.numel() * 4  # storage counts stored pixels, not decoded ones


def test_a_factor_2_set_distils_and_trains_through_the_evaluator(tmp_path):
    synth = distill("dm", "digits", 2, iterations=3, factor=2, **TINY)
    assert synth.decoder == {"kind": "multi_formation", "factor": 2} and synth.images.shape[0] == 20
    path = synth.save(str(tmp_path / "f2.h5"))
    again = SynthSet.load(path)
    assert again.decode()[0].shape[0] == 80 and again.ipc == 2
    report = evaluate(again, protocol=Protocol(epochs=3, batch_size=16, checkpoints=1), runs=1, device="cpu",
                      model_args={"width": 8})
    assert report.images == 20 and 0 <= report.results["ConvNet"].mean <= 100
    code = main(["show", path, "--png", str(tmp_path / "g.png")])
    assert code == 0 and os.path.getsize(tmp_path / "g_decoded.png") > os.path.getsize(tmp_path / "g.png")


@pytest.mark.parametrize("method", ["dm", "datadam", "idm"])
def test_pool_resume_is_bit_exact(tmp_path, method):
    opts = {**TINY, **POOL, "ce_weight": 0.5, "batch_real": 32}
    straight = distill(method, "digits", 2, iterations=6, **opts)
    out = str(tmp_path / "r.h5")

    def interrupt(it, stats):
        if it == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(method, "digits", 2, iterations=6, out=out, checkpoint_every=3, on_step=interrupt, **opts)
    resumed = distill(method, "digits", 2, iterations=6, out=out, resume=True, checkpoint_every=3, **opts)
    assert torch.equal(resumed.images, straight.images)


def test_pool_members_learn_and_switch_the_regulariser_on():
    method = prepare("dm", "digits", 2, **TINY, batch_real=32, pool=3, pool_interval=50, pool_train_nets=3,
                     pool_steps=5, pool_batch=64, pool_lr=0.05, ce_weight=0.5)
    method.synth = method.init()
    pool = method.pool
    assert len(pool.members) == 3 and all(m.accuracy == 0 for m in pool.members)
    first = method.step(0)  # iteration 0: a fourth network joins, the oldest leaves (pool 3)
    assert [m.index for m in pool.members] == [1, 2, 3] and "ce" not in first  # nobody trained yet: term off
    stats = [method.step(it) for it in range(1, 12)]
    assert sum(m.accuracy for m in pool.members) / 3 > 25  # trained on real data: well above chance (10%)
    assert all("ce" in s for s in stats)


def test_idm_beats_dm_at_equal_iterations():
    """mnist5k (capped), IPC 1, 30 iterations, the same fixed protocol and seeds: IDM's multi-formation set
    trains better networks than DM's."""
    common = dict(model_args={"width": 16}, device="cpu", max_per_class=60, iterations=30, batch_real=32)
    dm = distill("dm", "mnist5k", 1, **common)
    idm = distill("idm", "mnist5k", 1, **common, pool=4, pool_interval=5, pool_steps=3, pool_batch=64)
    proto = Protocol(name="tiny", epochs=60, checkpoints=1)
    a = evaluate(dm, protocol=proto, runs=3, device="cpu", model_args={"width": 16}).results["ConvNet"]
    b = evaluate(idm, protocol=proto, runs=3, device="cpu", model_args={"width": 16}).results["ConvNet"]
    assert b.mean > a.mean + 2.0, (a.runs, b.runs)


def test_validation_split_is_held_out_of_distillation_and_scores_selections(tmp_path):
    synth = distill("dm", "digits", 2, iterations=2, validation=ValidationSpec(0.2, 1), **TINY)
    held = synth.config["validation"]
    full = load_dataset("digits")
    assert sum(held["per_class"]) + len(load_dataset("digits", validation=ValidationSpec(0.2, 1)).train_y) \
        == len(full.train_y)
    proto = Protocol(epochs=2, checkpoints=1)
    rep = evaluate(synth, protocol=proto, runs=1, device="cpu", split="validation", model_args={"width": 8})
    assert rep.split == "validation" and rep.validation == held and rep.to_json()["split"] == "validation"
    with pytest.raises(CondenseError, match="whole training split"):
        evaluate(distill("random", "digits", 2, device="cpu"), protocol=proto, runs=1, device="cpu",
                 split="validation")


@pytest.mark.parametrize("options, needle", [
    ({"factor": 0}, "'factor' must be an integer ≥ 1"),
    ({"factor": 2, "min_distance": 1.0}, "does not combine with a multi-formation factor"),
    ({"pool": 2, "pool_steps": 0}, "pool_steps"),
    ({"pool": 2, "pool_lr": -1.0}, "'pool_lr' must be a finite number > 0"),
])
def test_bad_fast_convergence_options_are_one_sentence(options, needle):
    with pytest.raises(CondenseError, match=needle):
        distill("dm", "digits", 2, iterations=1, **TINY, **options)


def test_ipc_times_factor_squared_must_fit_the_smallest_class():
    with pytest.raises(CondenseError, match=r"factor 4 \(\d+ real images per class\)"):
        distill("dm", "digits", 10, iterations=1, factor=4, **TINY)
