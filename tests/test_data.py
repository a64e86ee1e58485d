import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from condense.data import RealSampler, ValidationSpec, carve_validation, fit_zca, load_dataset, zca_dataset
from condense.data.registry import cap_per_class
from condense.data.torchvision_sets import SPECS
from condense.errors import CondenseError


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


def test_mnist5k_split_is_fixed_and_balanced(mnist5k):
    assert mnist5k.image_shape == (1, 28, 28) and mnist5k.num_classes == 10
    assert mnist5k.class_counts() == [400] * 10
    assert torch.bincount(mnist5k.test_y, minlength=10).tolist() == [100] * 10
    again = load_dataset("mnist5k")
    assert torch.equal(again.train_x, mnist5k.train_x) and torch.equal(again.test_y, mnist5k.test_y)
    # train and test are disjoint images
    train_keys = {hash(x.numpy().tobytes()) for x in mnist5k.train_x[:2000]}
    assert not train_keys & {hash(x.numpy().tobytes()) for x in mnist5k.test_x}
    # normalised with the MNIST statistics: pixel 0 maps to -mean/std
    assert mnist5k.train_x.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-4)
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(mnist5k.denormalize(mnist5k.normalize(x)), x, atol=1e-6)


def test_digits_shape_and_names():
    ds = load_dataset("digits")
    assert ds.image_shape == (1, 8, 8) and ds.class_names == [str(i) for i in range(10)]
    assert len(ds.test_x) > 0 and 0 < min(ds.class_counts())


def test_cap_per_class_keeps_a_fixed_subset(mnist5k):
    capped = cap_per_class(mnist5k, 7)
    assert capped.class_counts() == [7] * 10
    rows = {x.numpy().tobytes() for x in mnist5k.train_x}
    assert all(x.numpy().tobytes() in rows for x in capped.train_x)
    assert torch.equal(cap_per_class(mnist5k, 7).train_x, capped.train_x)
    with pytest.raises(CondenseError, match="positive"):
        cap_per_class(mnist5k, 0)


def test_sampler_draws_each_class_from_that_class(mnist5k):
    small = cap_per_class(mnist5k, 20)
    sampler = RealSampler(small, "cpu")
    x, y = sampler.sample_classes(5, torch.Generator().manual_seed(0))
    assert x.shape == (50, 1, 28, 28) and y.tolist() == sum(([c] * 5 for c in range(10)), [])
    by_class = [{r.numpy().tobytes() for r in small.train_x[small.train_y == c]} for c in range(10)]
    assert all(img.numpy().tobytes() in by_class[c] for img, c in zip(x, y.tolist()))
    allx = sampler.sample(3, 100, torch.Generator().manual_seed(1))  # more than the class holds: all, once
    assert len(allx) == 20 and len({r.numpy().tobytes() for r in allx}) == 20


def _write_tree(root, sizes=None):
    rng = np.random.default_rng(0)
    truth = {}
    for split, n in (("train", 4), ("test", 2)):
        for c in ("cat", "dog"):
            os.makedirs(root / split / c)
            for i in range(n):
                size = (sizes or {}).get((split, c, i), (6, 5))
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
                truth[(split, c, i)] = pixels
    return truth


def test_imagefolder_loads_exact_pixels_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    truth = _write_tree(tmp_path / "data")
    ds = load_dataset(f"imagefolder:{tmp_path / 'data'}")
    assert ds.class_names == ["cat", "dog"] and ds.image_shape == (3, 6, 5)
    assert ds.class_counts() == [4, 4] and len(ds.test_x) == 4
    first = ds.denormalize(ds.train_x[:1])[0].permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()
    assert np.array_equal(first, truth[("train", "cat", 0)])
    assert len(os.listdir(tmp_path / "cache")) == 1
    again = load_dataset(f"imagefolder:{tmp_path / 'data'}")
    assert torch.equal(again.train_x, ds.train_x)


def test_imagefolder_bad_trees(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CondenseError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nothing'}")
    _write_tree(tmp_path / "mixed", sizes={("train", "dog", 1): (7, 7)})
    with pytest.raises(CondenseError, match="one size"):
        load_dataset(f"imagefolder:{tmp_path / 'mixed'}")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_missing_root_names_the_expected_files(name, tmp_path):
    with pytest.raises(CondenseError) as err:
        load_dataset(name, root=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message and "never downloads" in message
    with pytest.raises(CondenseError, match="--data-root"):
        load_dataset(name)


def _idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_format_is_read(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 2051)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, 2049)
    ds = load_dataset("mnist", root=str(tmp_path))
    assert ds.image_shape == (1, 28, 28) and ds.class_counts() == [3] * 10 and len(ds.test_y) == 10


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(CondenseError, match="mnist5k"):
        load_dataset("imagenet")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_fingerprint_identifies_the_data_not_its_name(digits, mnist5k):
    fp = digits.fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert load_dataset("digits").fingerprint() == fp and replace(digits, name="elsewhere").fingerprint() == fp
    assert mnist5k.fingerprint() != fp
    y = digits.train_y.clone()
    y[-1] = (y[-1] + 1) % 10
    assert replace(digits, train_y=y).fingerprint() != fp


@pytest.mark.parametrize("channels", [1, 3])
def test_channel_stats_ignore_the_thread_count_and_keep_the_serial_values(channels):
    """Grey statistics under 2 threads are the 1-thread ones (torch's 2-thread mean of one channel differs in the
    last bit); RGB ones are torch's own per-channel values, which the recorded CIFAR-10 fingerprint used."""
    from condense.data.dataset import channel_stats

    x = torch.rand(5000, channels, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.7 + 0.1
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist())
        torch.set_num_threads(2)
        assert channel_stats(x) == serial and torch.get_num_threads() == 2  # the caller's count is restored
    finally:
        torch.set_num_threads(previous)


def _indexed(ds):
    """The dataset with image i replaced by the constant i, so split membership can be read off the pixels."""
    n = len(ds.train_y)
    return replace(ds, train_x=torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1))


def test_carve_validation_is_a_fixed_disjoint_cover(digits):
    ds = _indexed(digits)
    spec = ValidationSpec(0.2, 1)
    carved = carve_validation(ds, spec)
    val, train = carved.val_x.flatten().long(), carved.train_x.flatten().long()
    assert torch.equal(val, val.sort().values) and torch.equal(train, train.sort().values)
    assert torch.equal(torch.cat([val, train]).sort().values, torch.arange(len(ds.train_y)))
    assert torch.equal(carved.val_y, ds.train_y[val]) and torch.equal(carved.train_y, ds.train_y[train])
    want = [max(1, round(0.2 * n)) for n in digits.class_counts()]
    assert torch.bincount(carved.val_y, minlength=10).tolist() == want
    assert carved.validation == {"fraction": 0.2, "seed": 1, "per_class": want,
                                 "indices_sha256": carved.validation["indices_sha256"]}
    assert json.loads(json.dumps(carved.validation)) == carved.validation
    assert len(carved.validation["indices_sha256"]) == 16
    again = carve_validation(ds, spec)
    assert torch.equal(again.val_x, carved.val_x) and again.validation == carved.validation
    other = carve_validation(ds, ValidationSpec(0.2, 2))
    assert not torch.equal(other.val_x, carved.val_x)
    assert other.validation["indices_sha256"] != carved.validation["indices_sha256"]
    assert torch.equal(carved.test_x, ds.test_x)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), "0.1", True])
def test_bad_validation_fractions_are_refused(fraction):
    with pytest.raises(CondenseError, match="between 0 and 1"):
        ValidationSpec(fraction)


def test_carve_validation_keeps_a_training_image_per_class(digits):
    assert carve_validation(cap_per_class(digits, 2), ValidationSpec(0.1)).class_counts() == [1] * 10
    with pytest.raises(CondenseError, match="too few") as err:
        carve_validation(cap_per_class(digits, 1), ValidationSpec(0.1))
    assert "\n" not in str(err.value)


def test_load_dataset_carries_the_validation_split(digits):
    ds = load_dataset("digits", validation=ValidationSpec(0.2, 1))
    assert ds.val_x.shape[1:] == ds.train_x.shape[1:]
    assert len(ds.val_x) == len(ds.val_y) == sum(ds.validation["per_class"])
    assert len(ds.train_y) + len(ds.val_y) == len(digits.train_y)
    assert ds.validation == carve_validation(digits, ValidationSpec(0.2, 1)).validation
    transform = fit_zca(ds.denormalize(ds.train_x))  # whitening then carving == carving then whitening
    whitened_first = carve_validation(zca_dataset(digits, *transform), ValidationSpec(0.2, 1))
    assert torch.allclose(zca_dataset(ds, *transform).val_x, whitened_first.val_x, atol=1e-5)
