"""Soft labels end to end: sets that store them (logits, probabilities, a relabel reference, INFER's compensators)
round-trip and count them in storage; the soft-label protocols take them or a given teacher's; a set that names
its teacher refuses another; and every soft-label report splits soft labels / argmax labels / a random subset of
the same storage with the same soft labels."""
import json
import os

import pytest
import torch

from condense.cli import main
from condense.data import load_dataset
from condense.errors import CondenseError
from condense.evaluation import evaluate, get_protocol, run_grid
from condense.evaluation.grid import storage_match
from condense.evaluation.tables import markdown
from condense.store import SynthSet
from condense.synth import distill
from condense.teachers import Ensemble, load_teachers, reference_of, static_logits

DIGITS = load_dataset("digits", device="cpu")
CPU = {"device": "cpu"}


def teachers_of(folder):
    return load_teachers(folder, dataset="digits", fingerprint=DIGITS.fingerprint(), num_classes=10,
                         image_shape=(1, 8, 8), device=torch.device("cpu"))


@pytest.fixture(scope="module")
def sets(digits_teachers, tmp_path_factory):
    d = tmp_path_factory.mktemp("soft")
    paths = {"random": str(d / "random.h5"), "infer": str(d / "infer.h5"), "infer_dyn": str(d / "infer_dyn.h5")}
    distill("random", "digits", 2, out=paths["random"], **CPU)
    distill("infer", "digits", 5, teacher=digits_teachers, iterations=3, out=paths["infer"], **CPU)
    distill("infer_dyn", "digits", 5, teacher=digits_teachers, iterations=3, out=paths["infer_dyn"], **CPU)
    return paths


# ---- the set format -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["logits", "probabilities", "relabel"])
def test_soft_label_sets_round_trip(tmp_path, tiny_set, kind):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 3, generator=g)
    s = tiny_set
    if kind == "logits":
        s.labels, s.label_kind, s.label_temperature = logits, "logits", 4.0
    elif kind == "probabilities":
        s.labels, s.label_kind = logits.softmax(1), "probabilities"
    else:
        s.label_kind, s.relabel_network = "relabel", {"architecture": "ConvNetBN", "checksum": "ab" * 32,
                                                      "members": [{"checksum": "ab" * 32}]}
    back = SynthSet.load(s.save(str(tmp_path / "s.h5")))
    assert back.label_kind == kind and torch.equal(back.labels, s.labels)
    assert (back.label_temperature, back.relabel_network) == (s.label_temperature, s.relabel_network)
    per_label = 3 * 4 if kind != "relabel" else 8
    assert back.storage_bytes()["labels"] == 6 * per_label  # soft labels are stored bytes too


def test_compensator_sets_round_trip_and_their_layout_is_checked(sets, tmp_path):
    s = SynthSet.load(sets["infer"])
    path = s.save(str(tmp_path / "again.h5"))
    back = SynthSet.load(path)
    for name in ("compensators", "labels"):
        assert torch.equal(back.decoder_arrays[name], s.decoder_arrays[name])
    assert torch.equal(back.decode()[0], s.decode()[0])
    bad = back.detached()
    bad.decoder_arrays["labels"] = bad.decoder_arrays["labels"][:-1]
    with pytest.raises(CondenseError, match="compensators decoder whose arrays"):
        bad.save(str(tmp_path / "bad.h5"))
    bad = back.detached()
    bad.decoder_arrays["compensators"] = bad.decoder_arrays["compensators"][:1]
    with pytest.raises(CondenseError, match="no float32 'compensators' array"):
        bad.save(str(tmp_path / "bad.h5"))
    import h5py
    with h5py.File(path, "r+") as f:  # a compensator edited on disk: the checksum covers decoder arrays
        f["decoder/compensators"][0, 0, 0, 0, 0] += 1.0
    with pytest.raises(CondenseError, match="fails its checksum"):
        SynthSet.load(path)


def test_storage_match_counts_images_compensators_and_labels_as_trained(sets):
    s = SynthSet.load(sets["infer"])  # IPC 5, 2 teachers, 10 classes: 4 naturals per class, 4 × 2 compensators
    image, k = 64 * 4, 10
    stored = 40 * image + 8 * image
    soft = storage_match(s, soft=True)
    assert soft["set_bytes"] == stored + 120 * k * 4  # 120 decoded images, one soft label each
    assert soft["ipc"] == soft["set_bytes"] // (k * (image + k * 4)) == 5  # 17,088 bytes: 5 per class, not 6
    assert soft["random_bytes"] == 5 * k * (image + k * 4) <= soft["set_bytes"]
    hard = storage_match(s, soft=False)  # relabelled every batch: the stored logits go unused, argmax labels count
    assert hard["set_bytes"] == stored + 120 * 8 and hard["ipc"] == hard["set_bytes"] // (k * (image + 8))
    rnd = SynthSet.load(sets["random"])
    assert storage_match(rnd, soft=False)["ipc"] == 2 == storage_match(rnd, soft=True)["ipc"]


# ---- protocols ------------------------------------------------------------------------------------
def test_soft_labels_beat_argmax_labels_on_a_fixed_tiny_case(digits_teachers):
    """20 real digits labelled by the teachers' logits: the same recipe and seeds with the soft labels, then with
    their argmax. (A one-block ConvNet: a depth-3 one shrinks 8×8 digits to one pixel and barely moves its logits
    in 100 steps, which KD at T = 4 needs.)"""
    rnd = distill("random", "digits", 2, **CPU)
    kw = {"epochs": 100, "lr": 0.01, "temperature": 4.0, "mixup": 0.0, "batch_size": 10}
    args = {"models": ["ConvNetD1"], "runs": 3, "model_args": {"width": 16}, **CPU}
    soft = evaluate(rnd, protocol=get_protocol("soft", **kw), teacher=digits_teachers, **args)
    hard = evaluate(rnd, protocol=get_protocol("soft", labels="hard", **kw), **args)
    assert soft.labels.startswith("soft (static logits of ConvNetBN+ConvNetBN")
    assert soft.teacher["checksum"] == reference_of(teachers_of(digits_teachers))["checksum"]
    assert soft.results["ConvNetD1"].mean > hard.results["ConvNetD1"].mean + 2, (soft.results, hard.results)


def test_relabel_protocol_uses_the_named_teacher_and_refuses_another(sets, digits_teachers, tmp_path):
    dyn = SynthSet.load(sets["infer_dyn"])
    one = os.path.join(digits_teachers, "digits_ConvNetBN_s0.h5")
    proto = get_protocol("relabel", epochs=1)
    with pytest.raises(CondenseError, match="relabelled by ConvNetBN\\+ConvNetBN.*give the set's own teacher"):
        evaluate(dyn, protocol=proto, runs=1, teacher=one, **CPU)
    with pytest.raises(CondenseError, match="not in .*give it with --teacher"):
        evaluate(dyn, protocol=proto, runs=1, **CPU)  # the default folder does not hold the test's teachers
    rep = evaluate(dyn, protocol=proto, runs=1, teacher=digits_teachers, model_args={"width": 8}, **CPU)
    assert rep.labels.startswith("relabel (ConvNetBN+ConvNetBN")
    assert rep.teacher["checksum"] == dyn.relabel_network["checksum"]
    with pytest.raises(CondenseError, match="names none; give --teacher"):
        evaluate(SynthSet.load(sets["random"]), protocol=proto, runs=1, **CPU)


def test_every_soft_label_report_splits_soft_argmax_and_random_with_the_same_labels(sets, digits_teachers, tmp_path,
                                                                                  capsys):
    grid = run_grid([sets["infer"], sets["random"]], protocol=get_protocol("soft", epochs=2), runs=2,
                    teacher=digits_teachers, model_args={"width": 8}, **CPU)
    for rep in grid.sets:
        assert set(rep.argmax) == {"ConvNet"} and len(rep.argmax["ConvNet"]["runs"]) == 2
        r = rep.ranking["ConvNet"]
        assert len(r["random_runs"]) == 2 and r["ior"] == pytest.approx(rep.results["ConvNet"].mean - r["random_mean"])
        assert rep.storage["random_bytes"] <= rep.storage["set_bytes"]
    infer, rnd = grid.sets
    assert infer.storage["ipc"] == 5 and rnd.storage["ipc"] == 2
    assert rnd.labels.startswith("soft (static logits") and infer.labels == "soft (logits)"
    text = markdown(grid)
    assert "### Soft labels vs images" in text and "random, same soft labels" in text
    out = str(tmp_path / "e.json")
    argv = ["eval", sets["infer"], "--protocol", "soft", "--epochs", "1", "--runs", "1", "--model-args",
            '{"width": 8}', "--teacher", digits_teachers, "--device", "cpu", "--quiet", "--json", out]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "soft labels" in printed and "argmax labels" in printed and "random, same soft labels" in printed
    saved = json.load(open(out))
    assert set(saved["argmax"]) == {"ConvNet"} and saved["storage"]["ipc"] == 5 and "ranking" in saved


def test_a_static_soft_set_finds_its_own_teachers_for_the_random_subset(sets, digits_teachers, monkeypatch):
    """Without --teacher, the random subset is labelled by the teachers recorded in the set's config, found by
    checksum in the default teacher folder."""
    monkeypatch.setenv("CONDENSE_TEACHERS", digits_teachers)
    grid = run_grid([sets["infer"]], protocol=get_protocol("soft", epochs=1), runs=1, model_args={"width": 8},
                    **CPU)
    rep = grid.sets[0]
    assert rep.ranking is not None and rep.argmax is not None
    monkeypatch.setenv("CONDENSE_TEACHERS", os.path.dirname(digits_teachers) + "/nowhere")
    grid = run_grid([sets["infer"]], protocol=get_protocol("soft", epochs=1), runs=1, model_args={"width": 8},
                    **CPU)
    assert grid.sets[0].ranking is None and grid.sets[0].argmax is not None  # no labeller: no IOR, still the split


def test_static_teacher_labels_are_the_ensembles_logits_on_the_decoded_images(sets, digits_teachers):
    from condense.evaluation import labels_for
    from condense.evaluation.soft_labels import resolve_teachers

    s = SynthSet.load(sets["random"])
    teachers = resolve_teachers(s, digits_teachers, torch.device("cpu"), "random")
    images, targets = s.decode()
    labels, info = labels_for(s, targets, get_protocol("soft"), DIGITS, torch.device("cpu"), images=images,
                              teachers=teachers)
    want = static_logits(Ensemble([t.net for t in teachers_of(digits_teachers)]), images)
    assert torch.allclose(labels.soft_logits, want) and torch.equal(labels.hard, s.labels)
    assert info["teacher"]["members"][0]["file"] == "digits_ConvNetBN_s0.h5"


def test_the_random_subset_is_labelled_by_the_teachers_that_labelled_the_set(digits_teachers):
    from condense.evaluation.grid import labeller_of

    s = distill("sre2l", "digits", 1, teacher=digits_teachers, iterations=1, **CPU)  # labelled by teacher s0 alone
    both = teachers_of(digits_teachers)
    s0, s1 = (t.info.path for t in both)
    assert labeller_of(s, both, digits_teachers) == s0  # a folder: searched for the set's own teachers
    assert labeller_of(s, both[1:], s1) == s1  # files named on the command line win
    rnd = distill("random", "digits", 1, **CPU)
    assert labeller_of(rnd, both, digits_teachers) == f"{s0},{s1}"  # a hard set: the teachers given
    assert labeller_of(rnd, None, None) is None
