import os

import h5py
import numpy as np
import pytest
import torch

from condense.errors import CondenseError
from condense.store import SynthSet, save_grid


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
    from condense.store import _checksum
    with h5py.File(path, "r+") as f:
        images = f["images"][()]
        images[1, 0, 2, 2] = np.nan
        f["images"][...] = images
        f.attrs["checksum"] = _checksum({"images": images, "labels": f["labels"][()]})
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
    with pytest.raises(OSError):
        tiny_set.save(path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["s.h5"]  # no temp file left behind


def test_grid_png(tmp_path, tiny_set):
    from PIL import Image

    path = save_grid(tiny_set, str(tmp_path / "g.png"), max_per_class=2)
    img = Image.open(path)
    # 3 rows (classes) × 2 columns of 32-px cells (8 px upscaled ×4) with 2-px padding.
    assert img.size == (2 * 34 + 2, 3 * 34 + 2)
