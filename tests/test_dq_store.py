"""DQ's subset form of the set file: patch grids, kept-patch strips, the `patches` decoder with its masked
autoencoder, storage accounting, and subsets refused on other data (condense.patches, condense.store)."""
import h5py
import numpy as np
import pytest
import torch

from condense.errors import CondenseError
from condense.models import create_model
from condense.patches import (grid_patch, keep_top, kept_count, pack, patchify, random_keep, unpack,
                              unpatchify)
from condense.store import SynthSet, check_source, source_images

SHAPE = (3, 8, 8)
MAE_ARGS = {"patch": 2, "dim": 8, "depth": 1, "heads": 2, "decoder_dim": 8, "decoder_depth": 1, "mlp_ratio": 1.0}


def mae():
    torch.manual_seed(0)
    return create_model("MAE", 3, 1, (8, 8), **MAE_ARGS)


def dq_set(fill="mae", n=6, keep_count=12):
    """A DQ-form set: n images of 3×8×8 (a 4×4 grid of 2-px patches), ``keep_count`` patches kept each."""
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n, *SHAPE, generator=g)
    keep = keep_top(torch.rand(n, 16, generator=g), keep_count)
    decoder = {"kind": "patches", "patch": 2, "image_shape": list(SHAPE), "fill": fill}
    arrays = {"keep": keep.reshape(n, 4, 4).to(torch.uint8)}
    if fill == "mae":
        net = mae()
        decoder["mae"] = {"architecture": "MAE", "model_args": dict(MAE_ARGS), "checksum": "x"}
        arrays.update({f"mae.{k}": v.clone() for k, v in net.state_dict().items()})
    synth = SynthSet(images=pack(images, keep, 2), labels=torch.arange(n) % 3, dataset="toy", num_classes=3,
                     class_names=["a", "b", "c"], mean=(0.5,) * 3, std=(0.25,) * 3, method="dq",
                     source_indices=torch.arange(n) * 2, dataset_fingerprint="f" * 16, decoder=decoder,
                     decoder_arrays=arrays)
    return synth, images, keep


@pytest.mark.parametrize("side,patch", [(32, 2), (28, 2), (8, 1), (64, 4), (224, 16), (30, 2)])
def test_grid_patch_is_the_divisor_nearest_dq_14_by_14(side, patch):
    assert grid_patch(side, side) == patch


def test_patchify_pack_and_unpack_are_exact_inverses():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, *SHAPE, generator=g)
    assert torch.equal(unpatchify(patchify(x, 2), 2, SHAPE), x)
    assert patchify(x, 2)[0, 1].tolist() == x[0, :, 0:2, 2:4].reshape(-1).tolist()  # raster order, channel-major
    keep = keep_top(torch.rand(5, 16, generator=g), 10)
    strips = pack(x, keep, 2)
    assert strips.shape == (5, 3, 2, 20)
    holes = unpack(strips, keep, 2, SHAPE)
    tokens = patchify(holes, 2)
    assert torch.equal(tokens[keep], patchify(x, 2)[keep]) and not tokens[~keep].any()


def test_keep_top_keeps_the_highest_scores_and_earlier_patches_on_ties():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.9], [0.0, 0.0, 0.0, 0.0]])
    assert keep_top(scores, 2).tolist() == [[False, True, False, True], [True, True, False, False]]
    assert kept_count(256, 0.2) == 204 and kept_count(64, 0.25) == 48 and kept_count(16, 0.0) == 16
    assert kept_count(4, 0.99) == 1


def test_drop_then_fill_keeps_the_kept_patches_bit_exact():
    synth, images, keep = dq_set()
    decoded, labels = synth.decode()
    assert decoded.shape == (6, *SHAPE) and torch.equal(labels, synth.labels) and synth.image_shape == SHAPE
    got, want = patchify(decoded, 2), patchify(images, 2)
    assert torch.equal(got[keep], want[keep])  # every kept pixel, bit for bit
    net = mae().eval()
    with torch.no_grad():
        pred = net.reconstruct(unpack(synth.images, keep, 2, SHAPE), keep)
    assert torch.equal(got[~keep], pred[~keep])  # the holes are the autoencoder's prediction
    assert torch.equal(net.fill(images, keep), decoded)  # the same as filling the full images
    zero, _ = dq_set("zero")[0].decode()
    assert torch.equal(patchify(zero, 2)[keep], want[keep]) and not patchify(zero, 2)[~keep].any()


def test_the_subset_file_round_trips_bit_exactly(tmp_path):
    synth, _, _ = dq_set()
    path = synth.save(str(tmp_path / "dq.h5"))
    back = SynthSet.load(path)
    for name in ("images", "labels", "source_indices"):
        assert torch.equal(getattr(back, name), getattr(synth, name))
    assert back.decoder == synth.decoder and back.dataset_fingerprint == synth.dataset_fingerprint
    assert set(back.decoder_arrays) == set(synth.decoder_arrays)
    assert all(torch.equal(back.decoder_arrays[k], v) for k, v in synth.decoder_arrays.items())
    assert torch.equal(back.decode()[0], synth.decode()[0]) and back.image_shape == SHAPE
    with h5py.File(path, "r") as f:
        assert f["images"].shape == (6, 3, 2, 24) and f.attrs["image_shape"] == "[3, 8, 8]"
        assert f["decoder/keep"].dtype == np.uint8


def test_storage_counts_kept_pixels_and_the_autoencoder_apart():
    synth, _, _ = dq_set()
    sizes = synth.storage_bytes()
    net_bytes = 4 * sum(v.numel() for v in mae().state_dict().values())
    assert sizes["images"] == 6 * 12 * 3 * 2 * 2 * 4  # only the 12 kept 2×2 patches of each image
    assert sizes["decoder"] == 6 * 16 and sizes["decoder_network"] == net_bytes and sizes["source_indices"] == 48
    assert sizes["total"] == sizes["images"] + sizes["labels"] + sizes["decoder"] + net_bytes + 48
    assert dq_set("zero")[0].storage_bytes()["decoder_network"] == 0


def _broken(change):
    synth, _, _ = dq_set()
    change(synth)
    return synth


@pytest.mark.parametrize("change,fragment", [
    (lambda s: s.decoder_arrays.update(keep=s.decoder_arrays["keep"].long()), "uint8 'keep' mask"),
    (lambda s: s.decoder_arrays.update(keep=s.decoder_arrays["keep"][:, :2]), "uint8 'keep' mask"),
    (lambda s: s.decoder_arrays["keep"].__setitem__((0, 0, 0), 1 - s.decoder_arrays["keep"][0, 0, 0]),
     "same number of kept"),
    (lambda s: setattr(s, "images", s.images[:, :, :, :-2]), "same number of kept"),
    (lambda s: s.decoder.update(patch=3), "patch size 3"),
    (lambda s: s.decoder.update(image_shape=[1, 8, 8]), "image_shape [1, 8, 8]"),
    (lambda s: s.decoder.update(fill="blur"), "fill 'blur'"),
    (lambda s: s.decoder_arrays.pop("mae.head.bias"), "cannot be rebuilt"),
    (lambda s: s.decoder["mae"]["model_args"].update(dim=16), "cannot be rebuilt"),
    (lambda s: s.decoder["mae"]["model_args"].update(heads=3), "cannot be rebuilt"),
    (lambda s: s.decoder.update(fill="zero"), "fill 'zero' neither"),
    (lambda s: setattr(s, "zca_matrix", torch.eye(192)) or setattr(s, "zca_mean", torch.zeros(192)), "ZCA space"),
])
def test_a_broken_patches_set_is_refused_in_one_sentence(tmp_path, change, fragment):
    synth = _broken(change)
    with pytest.raises(CondenseError, match=fragment.replace("[", r"\[").replace("]", r"\]")) as err:
        synth.save(str(tmp_path / "x.h5"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x.h5").exists()


def test_a_file_whose_indices_do_not_match_the_data_is_refused(tmp_path):
    synth, _, _ = dq_set("zero")
    back = SynthSet.load(synth.save(str(tmp_path / "s.h5")))
    train_x = torch.randn(20, *SHAPE)
    assert torch.equal(source_images(back, train_x, "f" * 16), train_x[back.source_indices])
    with pytest.raises(CondenseError) as err:
        check_source(back, "0" * 16, 20, "s.h5")
    assert "fingerprint 0000000000000000" in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).count(". ") == 0  # one sentence
    with pytest.raises(CondenseError, match="names training row 10, but this data has 8 training rows"):
        check_source(back, "f" * 16, 8, "s.h5")
    plain, _, _ = dq_set("zero")
    plain.source_indices = None
    with pytest.raises(CondenseError, match="no source_indices"):
        source_images(plain, train_x, "f" * 16)


def test_mae_random_masking_and_loss_see_only_the_kept_patches():
    g = torch.Generator().manual_seed(0)
    keep = random_keep(4, 16, 5, g)
    assert keep.sum(1).tolist() == [5] * 4
    net = mae()
    x = torch.randn(4, *SHAPE)
    y = x.clone()
    holes = ~keep.view(4, 16, 1).expand(-1, -1, 12)
    tokens = patchify(y, 2)
    tokens[holes] = 100.0  # change only the dropped patches: the prediction must not move
    y = unpatchify(tokens, 2, SHAPE)
    assert torch.allclose(net.reconstruct(x, keep), net.reconstruct(y, keep))
    assert net.loss(x, keep) < net.loss(y, keep)  # the loss compares with the dropped patches' pixels


def test_the_equal_storage_random_subset_pays_for_the_autoencoder_and_fits_the_data():
    from condense.evaluation.grid import storage_match

    synth, _, _ = dq_set()
    sizes = synth.storage_bytes()
    match = storage_match(synth, soft=False)
    assert match["set_bytes"] == sizes["images"] + sizes["decoder"] + sizes["decoder_network"] + sizes["labels"]
    assert match["ipc"] == match["set_bytes"] // (3 * (192 * 4 + 8))  # whole 3×8×8 images with int64 labels
    assert match["ipc"] > 2 and storage_match(synth, soft=False, cap=2)["ipc"] == 2  # the smallest class is the limit
