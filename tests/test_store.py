import os
import re

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from condense.errors import CondenseError
from condense.grids import save_grid
from condense.store import DECODERS, LABEL_KINDS, SynthSet, checksum, decode_images, validate


def test_round_trip_is_bit_exact(tmp_path, tiny_set):
    tiny_set.lr = torch.tensor(0.0123)
    tiny_set.zca_matrix, tiny_set.zca_mean = torch.randn(64, 64), torch.randn(64)
    path = tiny_set.save(str(tmp_path / "s.h5"))
    back = SynthSet.load(path)
    for name in ("images", "labels", "lr", "zca_matrix", "zca_mean"):
        a, b = getattr(tiny_set, name), getattr(back, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    for name in ("dataset", "num_classes", "class_names", "mean", "std", "method", "config", "seed", "iterations_done"):
        assert getattr(back, name) == getattr(tiny_set, name), name
    assert back.image_shape == (1, 8, 8) and back.created and "torch" in back.versions


def test_saved_files_follow_the_umask_not_mkstemp(tmp_path, tiny_set):
    old = os.umask(0o022)
    try:
        path = tiny_set.save(str(tmp_path / "s.h5"))
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644  # readable by the group and others, like any new file


def test_soft_labels_round_trip(tmp_path, tiny_set):
    tiny_set.labels = torch.softmax(torch.randn(6, 3), 1)
    tiny_set.label_kind = "probabilities"  # inferred at construction only: a reassignment states it
    back = SynthSet.load(tiny_set.save(str(tmp_path / "soft.h5")))
    assert back.soft_labels and torch.equal(back.labels, tiny_set.labels)


def test_truncated_file_is_rejected(tmp_path, tiny_set):
    path = tiny_set.save(str(tmp_path / "s.h5"))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(CondenseError, match="corrupt or truncated"):
        SynthSet.load(path)


def test_modified_pixels_fail_the_checksum(tmp_path, tiny_set):
    path = tiny_set.save(str(tmp_path / "s.h5"))
    with h5py.File(path, "r+") as f:
        f["images"][0, 0, 0, 0] = 42.0
    with pytest.raises(CondenseError, match="checksum"):
        SynthSet.load(path)


def test_garbage_file_is_rejected(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(CondenseError, match="not a readable HDF5"):
        SynthSet.load(str(path))


def test_missing_attribute_and_version(tmp_path, tiny_set):
    path = tiny_set.save(str(tmp_path / "s.h5"))
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CondenseError, match="format version 99"):
        SynthSet.load(path)
    with h5py.File(path, "r+") as f:
        del f.attrs["format_version"]
    with pytest.raises(CondenseError, match="'format_version' is missing"):
        SynthSet.load(path)


def test_nan_pixels_rejected_on_save_and_load(tmp_path, tiny_set):
    tiny_set.images[0, 0, 0, 0] = float("nan")
    with pytest.raises(CondenseError, match="NaN"):
        tiny_set.save(str(tmp_path / "nan.h5"))
    # A file written by another tool with a consistent checksum but NaN pixels.
    tiny_set.images[0, 0, 0, 0] = 0.0
    path = tiny_set.save(str(tmp_path / "ok.h5"))
    with h5py.File(path, "r+") as f:
        images = f["images"][()]
        images[1, 0, 2, 2] = np.nan
        f["images"][...] = images
        f.attrs["checksum"] = checksum({"images": images, "labels": f["labels"][()]})
    with pytest.raises(CondenseError, match="NaN"):
        SynthSet.load(path)


def test_wrong_shapes_rejected(tiny_set):
    tiny_set.labels = tiny_set.labels[:4]
    with pytest.raises(CondenseError, match="6 images but 4 labels"):
        tiny_set.save("unused.h5")


def test_failed_save_keeps_the_earlier_file(tmp_path, tiny_set, monkeypatch):
    path = str(tmp_path / "s.h5")
    tiny_set.save(path)
    before = open(path, "rb").read()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(CondenseError, match="Cannot write .*s.h5: disk full"):
        tiny_set.save(path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["s.h5"]  # no temp file left behind


def test_grid_png(tmp_path, tiny_set):
    from PIL import Image

    from condense.grids import HEADER, PAD

    path = save_grid(tiny_set, str(tmp_path / "g.png"), max_per_class=2, min_cell=32)
    img = Image.open(path)
    # a title line, then 3 rows (classes) of 32-px cells (8 px upscaled ×4) with 2-px padding, class names left
    assert img.size[1] == HEADER + 3 * 34 + PAD and img.size[0] > 2 * 34 + PAD


# ---- format version 2: extension points ---------------------------------------------------------
ZOO_V1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "synth_sets", "zoo", "mnist5k_dm_ipc10.h5")
MF2 = {"kind": "multi_formation", "factor": 2}
ZCA = dict(zca_matrix=torch.eye(64), zca_mean=torch.zeros(64))
V2_ATTRS = ("label_kind", "label_temperature", "relabel_network", "decoder", "dataset_fingerprint")


def assert_one_sentence(err):
    text = str(err.value)
    assert "\n" not in text and text.endswith(".") and "Traceback" not in text, text


def labels_of(kind):
    g = torch.Generator().manual_seed(1)
    hard = torch.arange(3).repeat_interleave(2)
    return {"hard": dict(labels=hard),
            "probabilities": dict(labels=torch.softmax(torch.randn(6, 3, generator=g), 1)),
            "logits": dict(labels=torch.randn(6, 3, generator=g), label_temperature=4.0),
            "relabel": dict(labels=hard, relabel_network={"checksum": "ab12", "architecture": "ResNet18", "top": 1}),
            "regression": dict(labels=torch.randn(6, 5, generator=g))}[kind]  # D = 5 targets, K = 3 classes


def setattrs(s, **changes):
    for key, value in changes.items():
        setattr(s, key, value)
    return s


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_every_label_kind_round_trips_bit_exact(tmp_path, tiny_set, kind):
    setattrs(tiny_set, label_kind=kind, **labels_of(kind), source_indices=torch.tensor([5, 0, 17, 3, 9, 2]),
             decoder=dict(MF2), dataset_fingerprint="sha256:abc",
             decoder_arrays={"scale": torch.randn(2, 3), "codes": torch.arange(4, dtype=torch.uint8)})
    path = tiny_set.save(str(tmp_path / "s.h5"))
    back = SynthSet.load(path)
    for name in ("images", "labels", "source_indices"):
        a, b = getattr(tiny_set, name), getattr(back, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert back.decoder_arrays.keys() == tiny_set.decoder_arrays.keys()
    for name, a in tiny_set.decoder_arrays.items():
        assert a.dtype == back.decoder_arrays[name].dtype and torch.equal(a, back.decoder_arrays[name]), name
    for name in V2_ATTRS:
        assert getattr(back, name) == getattr(tiny_set, name), name
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 2 and sorted(f["decoder"]) == ["codes", "scale"]
        assert (f.attrs["relabel_network"] == "null") == (kind != "relabel")
    images, labels = back.decode()
    assert images.shape == (24, 1, 8, 8) and torch.equal(labels[6:12], back.labels)  # labels tiled as blocks


def test_version_1_zoo_file_loads_and_its_checksum_verifies(tmp_path):
    before = open(ZOO_V1, "rb").read()
    with h5py.File(ZOO_V1, "r") as f:
        assert f.attrs["format_version"] == 1 and "label_kind" not in f.attrs
        stored = f.attrs["checksum"]
        assert checksum({n: f[n][()] for n in ("images", "labels")}) == stored
    synth = SynthSet.load(ZOO_V1)  # verifies the checksum
    assert synth.label_kind == "hard" and synth.ipc == 10 and synth.decoder == {"kind": "identity"}
    assert synth.source_indices is None and synth.decoder_arrays == {} and synth.dataset_fingerprint == ""
    # A set using no extension hashes exactly as in version 1, so re-saving keeps the catalog checksum.
    with h5py.File(synth.save(str(tmp_path / "v2.h5")), "r") as f:
        assert f.attrs["format_version"] == 2 and f.attrs["checksum"] == stored
    assert open(ZOO_V1, "rb").read() == before


@pytest.mark.parametrize("kind", ["probabilities", "logits"])
def test_version_1_files_infer_the_label_kind_from_the_labels(tmp_path, tiny_set, kind):
    setattrs(tiny_set, label_kind=kind, labels=labels_of(kind)["labels"])
    path = tiny_set.save(str(tmp_path / "s.h5"))
    with h5py.File(path, "r+") as f:  # rewrite as the version-1 writer left it
        f.attrs["format_version"] = 1
        for key in V2_ATTRS:
            del f.attrs[key]
        del f["decoder"]
    assert SynthSet.load(path).label_kind == kind


def test_label_kind_inference_and_properties(tiny_set):
    def make(labels, **kw):
        return SynthSet(**{**tiny_set.__dict__, "label_kind": "", "labels": labels, **kw})

    hard = torch.tensor([0, 0, 0, 1, 1, 2])
    assert make(hard).label_kind == "hard" and make(hard).ipc == 3 and not make(hard).soft_labels
    probs = torch.softmax(torch.randn(6, 3), 1)
    s = make(probs)
    assert s.label_kind == "probabilities" and s.soft_labels and torch.equal(s.hard_labels, probs.argmax(1))
    assert make(probs.log()).label_kind == "logits" and make(probs.log()).soft_labels
    rel = make(hard, label_kind="relabel", relabel_network={"checksum": "x", "architecture": "ConvNet"})
    assert rel.hard_labels is hard and rel.ipc == 3 and not rel.soft_labels
    reg = make(torch.rand(6, 5), label_kind="regression")  # rows of rand(6, 5) do not sum to 1
    assert reg.ipc == 2 and not reg.soft_labels
    with pytest.raises(CondenseError, match="regression targets") as err:
        reg.hard_labels
    assert_one_sentence(err)


def test_multi_formation_matches_a_hand_computed_decode():
    x = torch.arange(32.0).view(2, 1, 4, 4)
    out, labels = decode_images(x, torch.tensor([0, 1]), MF2, (0.5,), (0.25,))
    # Bilinear 2 -> 4 with align_corners=False samples at -0.25, 0.25, 0.75, 1.25 (edges clamp).
    w = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    crops = [x[..., :2, :2], x[..., :2, 2:], x[..., 2:, :2], x[..., 2:, 2:]]  # row-major
    expected = torch.cat([w @ c @ w.T for c in crops])  # crop-major: crop q of every image, then q + 1
    assert out.shape == (8, 1, 4, 4) and torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(labels, torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]))
    soft = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    assert torch.equal(decode_images(x, soft, MF2, (0.5,), (0.25,))[1], soft.repeat(4, 1))
    assert set(DECODERS) == {"identity", "multi_formation", "compensators", "patches"}  # compensators:
    # tests/test_decoupled.py; patches: tests/test_dq_store.py


def test_multi_formation_pads_with_pixel_one_half_per_channel():
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.5)
    half = ((0.5 - torch.tensor(mean)) / torch.tensor(std)).view(1, 3, 1, 1)
    x = torch.randn(1, 3, 3, 5)  # neither side divisible by 2: padded to 4×6, crops 2×3
    out, _ = decode_images(x, torch.tensor([0]), MF2, mean, std)
    last = torch.cat([torch.cat([x[..., 2:, 3:], half.expand(1, 3, 1, 1)], 3), half.expand(1, 3, 1, 3)], 2)
    assert out.shape == (4, 3, 3, 5)
    assert torch.allclose(out[3:], F.interpolate(last, size=(3, 5), mode="bilinear", align_corners=False))
    flat, _ = decode_images(half.expand(1, 3, 3, 5), torch.tensor([0]), MF2, mean, std)
    assert torch.allclose(flat, half.expand(4, 3, 3, 5))  # pixel 0.5 everywhere stays 0.5 everywhere


def test_multi_formation_refuses_to_pad_in_zca_space(tiny_set):
    setattrs(tiny_set, **ZCA, decoder={"kind": "multi_formation", "factor": 3})
    with pytest.raises(CondenseError, match="ZCA space") as err:
        tiny_set.decode()
    assert_one_sentence(err)
    tiny_set.decoder["factor"] = 2  # 8 = 2 × 4: no padding needed
    assert tiny_set.decode()[0].shape == (24, 1, 8, 8)


def test_decode_is_differentiable_and_identity_returns_the_stored_tensors(tiny_set):
    x = torch.randn(2, 1, 5, 5, requires_grad=True)
    out, _ = decode_images(x, torch.tensor([0, 1]), MF2, (0.5,), (0.25,))
    out.sum().backward()
    assert (x.grad > 0).all()  # every stored pixel feeds some decoded pixel
    images, labels = tiny_set.decode()
    assert images is tiny_set.images and labels is tiny_set.labels


def test_storage_bytes_counts_every_item_and_keeps_zca_apart(tmp_path, tiny_set):
    assert tiny_set.storage_bytes() == {"images": 6 * 64 * 4, "labels": 6 * 8, "lr": 0, "decoder": 0,
                                        "decoder_network": 0, "source_indices": 0, "preprocessing": 0,
                                        "total": 1536 + 48}
    setattrs(tiny_set, lr=torch.tensor(0.01, dtype=torch.float64),  # stored as float32
             source_indices=torch.arange(6), zca_matrix=torch.eye(64), zca_mean=torch.zeros(64),
             decoder_arrays={"w": torch.zeros(2, 3), "codes": torch.zeros(5, dtype=torch.uint8)})
    sizes = tiny_set.storage_bytes()
    assert sizes == {"images": 1536, "labels": 48, "lr": 4, "decoder": 24 + 5, "decoder_network": 0,
                     "source_indices": 48, "preprocessing": 64 * 64 * 4 + 64 * 4, "total": 1536 + 48 + 4 + 29 + 48}
    on_disk = {}
    with h5py.File(tiny_set.save(str(tmp_path / "s.h5")), "r") as f:
        f.visititems(lambda n, o: on_disk.update({n: o.id.get_storage_size()}) if isinstance(o, h5py.Dataset) else None)
    assert sum(v for n, v in on_disk.items() if not n.startswith("zca")) == sizes["total"]
    assert on_disk["zca_matrix"] + on_disk["zca_mean"] == sizes["preprocessing"]


@pytest.mark.parametrize("changes, attr, forged", [
    (dict(decoder=dict(MF2)), "decoder", '{"factor": 4, "kind": "multi_formation"}'),
    ({}, "decoder", '{"factor": 2, "kind": "multi_formation"}'),  # a plain set given a decoder
    (dict(labels=torch.softmax(torch.randn(6, 3), 1), label_kind="logits"), "label_kind", "probabilities"),
    (dict(labels=torch.randn(6, 3), label_kind="logits", label_temperature=4.0), "label_temperature", 2.0),
    (dict(label_kind="relabel", relabel_network={"checksum": "ab", "architecture": "ConvNet"}), "relabel_network",
     '{"architecture": "ResNet18", "checksum": "ab"}'),
])
def test_tampered_label_or_decoder_attributes_fail_the_checksum(tmp_path, tiny_set, changes, attr, forged):
    path = setattrs(tiny_set, **changes).save(str(tmp_path / "s.h5"))
    with h5py.File(path, "r+") as f:
        f.attrs[attr] = forged
    with pytest.raises(CondenseError, match="fails its checksum") as err:
        SynthSet.load(path)
    assert_one_sentence(err)


@pytest.fixture
def no_array_reads(monkeypatch):
    """Make any read of an HDF5 array fail the test: the checks before it must use metadata only."""
    def read(*args, **kwargs):
        raise AssertionError("an array was read")

    def arm():
        monkeypatch.setattr(h5py.Dataset, "__getitem__", read)
        monkeypatch.setattr(h5py.Dataset, "read_direct", read)
    return arm


def test_oversized_claim_is_refused_without_reading(tmp_path, tiny_set, no_array_reads):
    good = tiny_set.save(str(tmp_path / "good.h5"))
    path = str(tmp_path / "huge.h5")
    with h5py.File(good, "r") as src, h5py.File(path, "w") as f:
        f.attrs.update(src.attrs)
        f.attrs["image_shape"] = "[1, 512, 512]"
        f.create_dataset("images", shape=(3000, 1, 512, 512), dtype="float32")  # 3 GB declared, none written
        f.create_dataset("labels", data=np.arange(3000, dtype=np.int64) % 3)
        f.create_group("decoder")
    assert os.path.getsize(path) < 100_000
    no_array_reads()
    with pytest.raises(CondenseError, match=r"declares 'images' of shape \(3000, 1, 512, 512\)") as err:
        SynthSet.load(path)
    assert_one_sentence(err)


def _replace(name, data):
    def edit(f):
        if name in f:
            del f[name]
        f[name] = data
    return edit


@pytest.mark.parametrize("edit, words", [
    (lambda f: f.attrs.__setitem__("image_shape", "[1, 8, 9]"), "declares image_shape [1, 8, 9] but stores [1, 8, 8]"),
    (lambda f: f.attrs.__setitem__("label_kind", "logits"), "labels for label_kind 'logits' of dtype int64"),
    (lambda f: f.attrs.__setitem__("label_kind", "soft"), "label_kind 'soft'"),
    (_replace("labels", np.arange(5)), "6 images but 5 labels"),
    (_replace("source_indices", np.arange(5)), "6 images but 5 source indices"),
    (_replace("images", np.zeros((6, 1, 8, 8))), "images of dtype float64"),
    (_replace("decoder", np.zeros(3, dtype=np.float32)), "'decoder' is not a group"),
    (_replace("decoder/w", np.zeros(3)), "decoder array 'w' of dtype float64"),
    (lambda f: f.attrs.__setitem__("decoder", "{not json"), "metadata cannot be parsed"),
])
def test_bad_layouts_are_refused_from_metadata_before_reading(tmp_path, tiny_set, no_array_reads, edit, words):
    tiny_set.source_indices = torch.arange(6)
    path = tiny_set.save(str(tmp_path / "s.h5"))
    with h5py.File(path, "r+") as f:
        edit(f)
    no_array_reads()
    with pytest.raises(CondenseError, match=re.escape(words)) as err:
        SynthSet.load(path)
    assert_one_sentence(err)


BAD_SETS = [  # (changes to the tiny set, words of its one-sentence error)
    (dict(label_kind="soft"), "label_kind 'soft'"),
    (dict(labels=torch.zeros(6)), "labels for label_kind 'hard' of dtype float32"),
    (dict(labels=torch.tensor([0, 1, 2, 0, 1, 3])), "labels outside 0..2"),
    (dict(labels=torch.zeros(4, dtype=torch.long)), "6 images but 4 labels"),
    (dict(label_kind="probabilities", labels=torch.full((6, 3), 0.5)), "sums to 1"),
    (dict(label_kind="probabilities", labels=torch.tensor([[1.5, -0.5, 0.0]] * 6)), "non-negative"),
    (dict(label_kind="logits", labels=torch.randn(6, 4)), "expected N×3"),
    (dict(label_kind="logits", labels=torch.randn(6, 3), label_temperature=0.0), "label_temperature 0.0"),
    (dict(label_kind="logits", labels=torch.randn(6, 3), label_temperature=float("inf")), "finite number > 0"),
    (dict(label_kind="logits", labels=torch.randn(6, 3), label_temperature="2"), "label_temperature '2'"),
    (dict(label_temperature=2.0), "only logits take one"),
    (dict(label_kind="relabel"), "no relabel_network dict"),
    (dict(label_kind="relabel", relabel_network={"checksum": "ab"}), "'architecture'"),
    (dict(label_kind="relabel", relabel_network={"checksum": "", "architecture": "ConvNet"}), "non-empty"),
    (dict(relabel_network={"checksum": "ab", "architecture": "ConvNet"}), "only 'relabel' sets name one"),
    (dict(label_kind="regression"), "labels for label_kind 'regression' of dtype int64"),
    (dict(label_kind="regression", labels=torch.randn(6)), "expected float32 with 2 dimensions"),
    (dict(decoder={"kind": "vae"}), "'kind' is one of"),
    (dict(decoder="identity"), "'kind' is one of"),
    (dict(decoder={"kind": "multi_formation"}), "factor None"),
    (dict(decoder={"kind": "multi_formation", "factor": 0}), "factor 0"),
    (dict(decoder={"kind": "multi_formation", "factor": 2.0}), "factor 2.0"),
    (dict(decoder={"kind": "multi_formation", "factor": True}), "factor True"),
    (dict(decoder={"kind": "multi_formation", "factor": 3}, **ZCA), "ZCA space"),
    (dict(decoder={"kind": "identity", "note": {1, 2}}), "not plain JSON"),
    (dict(relabel_network={"checksum": float("nan")}, label_kind="relabel"), "relabel_network"),
    (dict(decoder_arrays={"a/b": torch.zeros(2)}), "names free of '/'"),
    (dict(decoder_arrays={"w": [1.0]}), "dict of tensors"),
    (dict(decoder_arrays={"w": torch.zeros(2, dtype=torch.float64)}), "decoder array 'w' of dtype float64"),
    (dict(decoder_arrays={"w": torch.tensor([float("nan")])}), "NaN or infinite values in 'decoder/w'"),
    (dict(source_indices=torch.arange(5)), "6 images but 5 source indices"),
    (dict(source_indices=torch.arange(6).view(6, 1)), "source_indices of dtype int64 and shape (6, 1)"),
    (dict(source_indices=torch.arange(6.0)), "source_indices of dtype float32"),
    (dict(source_indices=torch.tensor([0, 1, 2, 3, 4, -1])), "negative source_indices"),
    (dict(dataset_fingerprint=None), "dataset_fingerprint"),
    (dict(images=torch.zeros(6, 8, 8)), "images of dtype float32 and shape (6, 8, 8)"),
    (dict(images=torch.zeros(6, 1, 8, 8, dtype=torch.float64)), "images of dtype float64"),
    (dict(images=torch.zeros(0, 1, 8, 8), labels=torch.zeros(0, dtype=torch.long)), "holds no images"),
    (dict(class_names=["a"]), "names 1 classes"),
    (dict(std=(0.2, 0.3)), "mean/std for 1 channels"),
    (dict(zca_matrix=torch.eye(64)), "half of its ZCA"),
    (dict(lr=torch.tensor([0.1, 0.2])), "lr of dtype float32 and shape (2,)"),
    (dict(lr=torch.tensor(float("nan"))), "NaN or infinite values in 'lr'"),
]


@pytest.mark.parametrize("changes, words", BAD_SETS)
def test_every_validation_rule_refuses_with_one_sentence(tmp_path, tiny_set, changes, words):
    setattrs(tiny_set, **changes)
    with pytest.raises(CondenseError, match=re.escape(words)) as err:
        validate(tiny_set)
    assert_one_sentence(err)
    with pytest.raises(CondenseError):
        tiny_set.save(str(tmp_path / "bad.h5"))
    assert not (tmp_path / "bad.h5").exists()


def test_detached_copies_the_new_tensors(tiny_set):
    setattrs(tiny_set, source_indices=torch.arange(6), decoder_arrays={"w": torch.zeros(2, requires_grad=True)})
    copy = tiny_set.detached()
    assert copy.source_indices.data_ptr() != tiny_set.source_indices.data_ptr()
    assert copy.decoder_arrays["w"].data_ptr() != tiny_set.decoder_arrays["w"].data_ptr()
    assert not copy.decoder_arrays["w"].requires_grad and copy.label_kind == "hard"
