"""Dataset Quantization (condense.synth.dq, .bins, .saliency): bins partition every class, bin 0 is the GraphCut
selection, sampling is class-balanced, the same fraction of every bin and bit-exact for a seed, bins are cached
and re-used at another IPC, bin files of other data are refused, pixel quantisation stores only kept
patches that come back bit for bit, and the set names its masked autoencoder by checksum (found in the teacher
folder, a missing or tampered one refused in one sentence)."""
import json
import os

import h5py
import numpy as np
import pytest
import torch

from condense.cli import main
from condense.data import load_dataset
from condense.errors import CondenseError
from condense.models import create_model, read_network_info, save_network
from condense.patches import patchify
from condense.store import SynthSet
from condense.synth import bins as bins_module
from condense.synth import distill
from condense.synth.bins import Bins, allocate, bin_sizes, generate_bins, load_bins, sample_bins, save_bins
from condense.synth.grad_embed import GradEmbedding
from condense.synth.saliency import class_activation, patch_scores
from condense.synth.submodular import greedy_graphcut
from condense.teachers import CATALOG, write_catalog

FAST = {"model_args": {"width": 8}, "device": "cpu", "embed_epochs": 1, "max_per_class": 40}
MAE_ARGS = {"patch": 2, "dim": 8, "depth": 1, "heads": 2, "decoder_dim": 8, "decoder_depth": 1, "mlp_ratio": 1.0}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))


def tiny_mae(path):
    """A tiny untrained masked autoencoder of digits (2-px patches) saved as a network file, role autoencoder."""
    torch.manual_seed(0)
    return save_network(str(path), create_model("MAE", 1, 1, (8, 8), **MAE_ARGS), architecture="MAE",
                        model_args=MAE_ARGS, channels=1, num_classes=1, image_size=(8, 8), role="autoencoder",
                        dataset="digits", dataset_fingerprint=load_dataset("digits", max_per_class=40).fingerprint())


def toy_embedding(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GradEmbedding(torch.randn(n, 4, generator=g), torch.randn(n, 6, generator=g).abs())


def test_bins_partition_every_class_and_bin_0_is_the_graphcut_selection():
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0] * 23 + [1] * 17 + [2] * 10)[order]
    emb = toy_embedding(50)
    bins = generate_bins(emb, labels, 3, 4)
    assert bins.bin.min() == 0 and bins.bin.max() == 3  # every row in exactly one bin
    for c, n in enumerate((23, 17, 10)):
        members = torch.nonzero(labels == c).squeeze(1)
        sizes = torch.bincount(bins.bin[members], minlength=4).tolist()
        assert sizes == bin_sizes(n, 4) and sum(sizes) == n
        for b in range(4):  # ranks are the greedy order within each bin
            assert sorted(bins.rank[members][bins.bin[members] == b].tolist()) == list(range(sizes[b]))
        first = greedy_graphcut(emb.rows(members), sizes[0], 1.0, "naive")
        by_rank = members[bins.bin[members] == 0][bins.rank[members][bins.bin[members] == 0].argsort()]
        assert by_rank.tolist() == members[first].tolist()
        # bin 1 is the selection over what bin 0 left
        free = np.ones(n, dtype=bool)
        free[first] = False
        second = greedy_graphcut(emb.rows(members), sizes[1], 1.0, "naive", pool=free)
        assert sorted(members[second].tolist()) == sorted(members[bins.bin[members] == 1].tolist())
    assert len(bins.meta["seconds_per_class"]) == 3 and bins.meta["similarity_bytes_per_class"][0] == 4 * 23 ** 2
    assert torch.equal(generate_bins(emb, labels, 3, 4, greedy="lazy").bin, bins.bin)


def test_allocation_takes_the_same_fraction_of_every_bin():
    assert allocate(10, [50] * 10) == [1] * 10
    assert allocate(1, [50] * 10) == [1] + [0] * 9  # equal remainders: the earlier (more representative) bin
    assert allocate(5, [3, 3, 2, 2]) == [2, 1, 1, 1]  # half of each: 1.5, 1.5, 1, 1; the one left to bin 0
    assert allocate(10, [3, 3, 2, 2]) == [3, 3, 2, 2]
    assert sum(allocate(7, [5, 4, 4, 4])) == 7


def test_sampling_is_class_balanced_uniform_within_bins_and_bit_exact_for_a_seed():
    labels = torch.arange(3).repeat_interleave(40)
    bins = Bins(torch.arange(10).repeat(12), torch.zeros(120, dtype=torch.long))  # 4 per (class, bin)
    rows = sample_bins(bins, labels, 3, [10, 10, 20], seed=0)
    assert torch.bincount(labels[rows]).tolist() == [10, 10, 20] and len(set(rows.tolist())) == 40
    for c, per_bin in ((0, 1), (2, 2)):  # the same fraction of every bin
        assert torch.bincount(bins.bin[rows[labels[rows] == c]], minlength=10).tolist() == [per_bin] * 10
    assert torch.equal(rows, sample_bins(bins, labels, 3, [10, 10, 20], seed=0))
    assert not torch.equal(rows, sample_bins(bins, labels, 3, [10, 10, 20], seed=1))
    counts = torch.zeros(120)
    for seed in range(200):  # uniform within a bin: each of the 4 images of a bin about equally often
        counts[sample_bins(bins, labels, 3, [10, 10, 20], seed=seed)] += 1
    assert counts[labels == 0].min() > 25 and counts[labels == 0].max() < 75


def test_bins_file_round_trips_and_refuses_other_data(tmp_path):
    expect = {"dataset_fingerprint": "a" * 16, "network": "n", "num_bins": 3, "lam": 1.0, "greedy": "naive"}
    bins = Bins(torch.tensor([0, 1, 2, 0, 1]), torch.tensor([0, 0, 0, 1, 1]), {**expect, "seconds_per_class": [0.1]})
    path = save_bins(str(tmp_path / "b.h5"), bins)
    back = load_bins(path, expect, 5)
    assert torch.equal(back.bin, bins.bin) and torch.equal(back.rank, bins.rank) and back.meta == bins.meta
    with pytest.raises(CondenseError) as err:
        load_bins(path, {**expect, "dataset_fingerprint": "b" * 16}, 5)
    assert "not of this run's data" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CondenseError, match="for each of the 6 training rows"):
        load_bins(path, expect, 6)
    with pytest.raises(CondenseError, match="made with num_bins 3, not this run's 4"):
        load_bins(path, {**expect, "num_bins": 4}, 5)
    with h5py.File(path, "r+") as f:
        f["bin"][0] = 2
    with pytest.raises(CondenseError, match="fails its checksum"):
        load_bins(path, expect, 5)
    with pytest.raises(CondenseError, match="does not exist"):
        load_bins(str(tmp_path / "none.h5"), expect, 5)


def test_dq_samples_the_cached_bins_again_at_another_ipc(monkeypatch):
    a = distill("dq", "digits", 4, pixel=False, **FAST)
    data = load_dataset("digits", max_per_class=40)
    assert a.decoder == {"kind": "identity"} and torch.equal(a.images, data.train_x[a.source_indices])
    assert torch.bincount(a.labels, minlength=10).tolist() == [4] * 10

    def no_binning(*args, **kwargs):
        raise AssertionError("the cached bins should have been used")

    monkeypatch.setattr(bins_module, "generate_bins", no_binning)
    monkeypatch.setattr("condense.synth.dq.generate_bins", no_binning)
    b = distill("dq", "digits", 8, pixel=False, **FAST)
    assert torch.bincount(b.labels, minlength=10).tolist() == [8] * 10 and b.config["bins"] == a.config["bins"]
    again = distill("dq", "digits", 4, pixel=False, **FAST)
    assert torch.equal(again.source_indices, a.source_indices)  # bit-exact for a seed
    ratio = distill("dq", "digits", 1, pixel=False, ratio=0.25, **FAST)
    assert torch.bincount(ratio.labels, minlength=10).tolist() == [10] * 10  # a quarter of 40 per class


def test_pixel_quantisation_stores_kept_patches_that_decode_bit_exact(tmp_path, monkeypatch):
    data = load_dataset("digits", max_per_class=40)
    mae = tiny_mae(tmp_path / "mae.h5")
    synth = distill("dq", "digits", 3, mae=mae, mask_ratio=0.25, out=str(tmp_path / "dq.h5"), **FAST)
    plain = distill("dq", "digits", 3, pixel=False, **FAST)
    assert torch.equal(synth.source_indices, plain.source_indices)  # the same images, with and without drop
    keep = synth.decoder_arrays["keep"].reshape(30, 16).bool()
    assert keep.sum(1).tolist() == [12] * 30 and synth.images.shape == (30, 1, 2, 24)
    back = SynthSet.load(str(tmp_path / "dq.h5"))
    decoded, labels = back.decode()
    original = data.train_x[back.source_indices]
    assert torch.equal(patchify(decoded, 2)[keep], patchify(original, 2)[keep])
    assert torch.equal(labels, data.train_y[back.source_indices]) and back.decoder["mae"]["model_args"] == MAE_ARGS
    sizes = back.storage_bytes()
    assert sizes["images"] == 30 * 12 * 4 * 4 and sizes["decoder_network"] > 0
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "fresh"))  # nothing cached: network, bins, all again
    fresh = distill("dq", "digits", 3, mae=mae, mask_ratio=0.25, **FAST)
    assert torch.equal(fresh.images, back.images)
    assert torch.equal(fresh.decoder_arrays["keep"], back.decoder_arrays["keep"])
    zero = distill("dq", "digits", 3, fill="zero", mask_ratio=0.25, patch=2, **FAST)
    assert torch.equal(zero.decoder_arrays["keep"], synth.decoder_arrays["keep"])
    assert zero.storage_bytes()["decoder_network"] == 0


def test_patches_are_ranked_by_the_class_activation_map():
    torch.manual_seed(0)
    net = create_model("ConvNet", 1, 10, (8, 8), width=8, depth=2)
    x = torch.randn(5, 1, 8, 8)
    for method in ("gradcam++", "gradcam"):
        cam = class_activation(net, x, method)
        assert cam.shape == (5, 2, 2) and (cam >= 0).all()  # the last map larger than 1×1
        assert patch_scores(net, x, (4, 4), method).shape == (5, 16)
    # by hand, on the last block's pooled map A: GradCAM weighs channels by the mean gradient of the top-1 logit,
    # GradCAM++ by Σ α·ReLU(G) with α = G² / (2G² + Σ A·G³)
    a = net.blocks[1](net.blocks[0](x.clone().requires_grad_(True))[1])[1]
    logits = net.classifier(a.flatten(1))
    g = torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), a)[0]
    a = a.detach()
    want = torch.relu((g.mean((2, 3))[:, :, None, None] * a).sum(1))
    assert torch.allclose(class_activation(net, x, "gradcam"), want, atol=1e-6)
    denom = 2 * g ** 2 + (a * g ** 3).sum((2, 3), keepdim=True)
    alpha = torch.nan_to_num(g ** 2 / denom, nan=0.0, posinf=0.0, neginf=0.0)
    want = torch.relu(((alpha * torch.relu(g)).sum((2, 3))[:, :, None, None] * a).sum(1))
    assert torch.allclose(class_activation(net, x, "gradcam++"), want, atol=1e-6)
    with pytest.raises(CondenseError, match="no spatial feature map"):
        class_activation(create_model("MLP", 1, 10, (8, 8), width=8), x)


@pytest.fixture
def teachers(tmp_path, monkeypatch):
    """An empty catalogued teacher folder, made $CONDENSE_TEACHERS."""
    folder = str(tmp_path / "teachers")
    os.makedirs(folder)
    write_catalog(folder)
    monkeypatch.setenv("CONDENSE_TEACHERS", folder)
    return folder


def dq_argv(mae, out):
    return ["distill", "--method", "dq", "--dataset", "digits", "--ipc", "1", "--max-per-class", "40", "--model-args",
            '{"width": 8}', "--device", "cpu", "--quiet", "--set", "embed_epochs=1", "--set", "mask_ratio=0.25",
            "--set", f"mae={mae}", "--out", out]


def one_sentence(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert all(n in err for n in needles) and len(err.splitlines()) == 1, err
    return err


def test_the_set_names_its_mae_by_checksum_and_a_rerun_finds_it_in_the_teacher_folder(teachers, tmp_path):
    mae = tiny_mae(os.path.join(teachers, "digits_mae.h5"))
    checksum = read_network_info(mae).checksum
    out = str(tmp_path / "dq.h5")
    distill("dq", "digits", 1, mae=mae, mask_ratio=0.25, out=out, **FAST)
    back = SynthSet.load(out)
    ref = back.config["mae"]
    assert (ref["checksum"], ref["file"], ref["role"], ref["architecture"]) == (checksum, "digits_mae.h5",
                                                                                "autoencoder", "MAE")
    assert back.config["method_config"]["mae"] == checksum and "path" not in ref
    assert str(tmp_path) not in json.dumps(back.config) + json.dumps(back.decoder)  # no path anywhere
    write_catalog(teachers)
    (row,) = json.load(open(os.path.join(teachers, CATALOG)))["teachers"]
    assert (row["file"], row["role"], row["checksum"], row["num_classes"]) == ("digits_mae.h5", "autoencoder",
                                                                               checksum, None)
    moved = os.path.join(teachers, "renamed.h5")
    os.replace(mae, moved)
    again = distill("dq", "digits", 1, **{**FAST, **back.config["method_config"]})  # a re-run from the set
    assert again.config["mae"]["file"] == "renamed.h5" and torch.equal(again.images, back.images)
    assert torch.equal(again.decoder_arrays["keep"], back.decoder_arrays["keep"])
    old = distill("dq", "digits", 1, mae=str(tmp_path / "gone" / "renamed.h5"), mask_ratio=0.25, **FAST)
    assert old.config["mae"]["checksum"] == checksum  # an older set's path, gone: its file name in the folder
    decoded, _ = back.decode()
    os.remove(moved)
    assert torch.equal(SynthSet.load(out).decode()[0], decoded)  # decoding needs no MAE file
    write_catalog(teachers)
    (row,) = json.load(open(os.path.join(teachers, CATALOG)))["teachers"]
    assert row["file"] == "digits_mae.h5"  # an absent MAE's row is kept, as an SSL target's


def test_a_missing_mae_is_one_sentence_with_the_rebuild_command(teachers, tmp_path, capsys):
    out = str(tmp_path / "dq.h5")
    one_sentence(capsys, dq_argv("ab" * 32, out), "dq's option mae names", "which is not in",
                 f"condense mae --dataset digits --out {os.path.join(teachers, 'NAME.h5')}")
    one_sentence(capsys, dq_argv(str(tmp_path / "gone" / "m.h5"), out), "does not exist",
                 f"condense mae --dataset digits --out {os.path.join(teachers, 'm.h5')}")
    assert not os.path.exists(out)


def test_a_tampered_mae_is_refused(teachers, tmp_path, capsys):
    mae = tiny_mae(os.path.join(teachers, "digits_mae.h5"))
    checksum = read_network_info(mae).checksum
    with h5py.File(mae, "r+") as f:  # the weights no longer match the recorded checksum
        name = next(k for k in sorted(f["state"]) if k.endswith("weight"))
        f["state"][name][...] = f["state"][name][()] + 1.0
    one_sentence(capsys, dq_argv(checksum, str(tmp_path / "dq.h5")), "fails its checksum")
    one_sentence(capsys, dq_argv(mae, str(tmp_path / "dq.h5")), "fails its checksum")
