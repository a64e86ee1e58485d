"""Portable dataset references: a set names its data and records its fingerprint; a data root (--data-root or
$CONDENSE_DATA) holding DIR/NAME/{train,test} resolves it on any machine, old `imagefolder:/path` sets included,
and data with another fingerprint under the same name is refused. Digits written as a PNG tree stand in for
CIFAR-10 (the tests need no download)."""
import json
import os
import shutil

import h5py
import numpy as np
import pytest

from condense.cli import main
from condense.data import load_dataset
from condense.data import refs
from condense.errors import CondenseError
from condense.evaluation import real_data_for
from condense.store import SynthSet

EVAL = ["--epochs", "1", "--runs", "1", "--no-ior", "--device", "cpu", "--quiet", "--model-args", '{"width": 8}']


def png_tree(root: str, flip: bool = False) -> str:
    """sklearn's digits (condense's split) as ROOT/{train,test}/<class>/<i>.png; ``flip`` mirrors every image
    (other data under the same name)."""
    from PIL import Image

    ds = load_dataset("digits")
    for split, x, y in (("train", ds.train_x, ds.train_y), ("test", ds.test_x, ds.test_y)):
        pixels = (ds.denormalize(x)[:, 0] * 255).round().byte().numpy()
        for i, (img, c) in enumerate(zip(pixels, y.tolist())):
            folder = os.path.join(root, split, str(c))
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(img[:, ::-1].copy() if flip else img, "L").save(os.path.join(folder, f"{i:04d}.png"))
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("roots")
    a, b, other = str(base / "machine_a"), str(base / "machine_b"), str(base / "other")
    png_tree(os.path.join(a, "digitspng"))
    shutil.copytree(os.path.join(a, "digitspng"), os.path.join(b, "digitspng"))  # the same data elsewhere
    png_tree(os.path.join(other, "digitspng"), flip=True)
    return {"a": a, "b": b, "other": other, "base": str(base)}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CONDENSE_DATA", raising=False)


def distil(capsys, out, *extra):
    code = main(["distill", "--method", "random", "--ipc", "1", "--device", "cpu", "--quiet", "--out", str(out),
                 *extra])
    assert code == 0, capsys.readouterr().err
    return SynthSet.load(str(out))


def evaluate(capsys, path, *extra):
    code = main(["eval", str(path), *EVAL, *extra])
    return code, capsys.readouterr()


def test_a_set_records_a_name_and_a_fingerprint_not_a_path(roots, tmp_path, capsys):
    s = distil(capsys, tmp_path / "s.h5", "--dataset", "digitspng", "--data-root", roots["a"])
    assert s.dataset == "digitspng" and len(s.dataset_fingerprint) == 16
    assert s.dataset_fingerprint == load_dataset("digitspng", root=roots["a"]).fingerprint()
    # another machine: the data in its own root, named by --data-root or $CONDENSE_DATA
    shutil.copy(tmp_path / "s.h5", tmp_path / "moved.h5")
    with h5py.File(tmp_path / "moved.h5", "r+") as f:  # the recorded root no longer exists there
        config = json.loads(f.attrs["config"])
        config["run"]["data_root"] = "/nonexistent/machine_a"
        f.attrs["config"] = json.dumps(config)
    code, out = evaluate(capsys, tmp_path / "moved.h5", "--data-root", roots["b"])
    assert code == 0, out.err
    os.environ["CONDENSE_DATA"] = roots["b"]
    try:
        code, out = evaluate(capsys, tmp_path / "moved.h5")
        assert code == 0, out.err
    finally:
        del os.environ["CONDENSE_DATA"]
    code, out = evaluate(capsys, tmp_path / "moved.h5")  # no root at all: one sentence naming what to do
    assert code == 2 and "--data-root" in out.err and len(out.err.strip().splitlines()) == 1


def test_other_data_under_the_same_name_is_refused(roots, tmp_path, capsys):
    distil(capsys, tmp_path / "s.h5", "--dataset", "digitspng", "--data-root", roots["a"])
    code, out = evaluate(capsys, tmp_path / "s.h5", "--data-root", roots["other"])
    assert code == 2 and "is not the data the set was made from" in out.err
    code = main(["audit", str(tmp_path / "s.h5"), "--data-root", roots["other"], "--quiet", "--report",
                 str(tmp_path / "aud")])
    assert code == 2 and "is not the data the set was made from" in capsys.readouterr().err
    # scoring on other data on purpose is still possible
    code, out = evaluate(capsys, tmp_path / "s.h5", "--dataset", f"imagefolder:{roots['other']}/digitspng")
    assert code == 0, out.err


def test_old_imagefolder_paths_resolve_by_folder_name(roots, tmp_path, capsys, monkeypatch):
    """A set that recorded `imagefolder:/tmp/...` of the machine that made it (as the first zoo sets did) finds the
    folder of that name, or of its documented new name, in the data root; a known fingerprint is checked."""
    made = distil(capsys, tmp_path / "s.h5", "--dataset", f"imagefolder:{roots['a']}/digitspng")
    assert made.dataset == f"imagefolder:{roots['a']}/digitspng"
    fingerprint = made.dataset_fingerprint
    old = str(tmp_path / "old.h5")
    shutil.copy(tmp_path / "s.h5", old)
    with h5py.File(old, "r+") as f:  # as a format-1 zoo file: another machine's path, no fingerprint
        f.attrs["dataset"] = "imagefolder:/tmp/condense_zoo/digits-jpeg"
        f.attrs["dataset_fingerprint"] = ""
    monkeypatch.setattr(refs, "LEGACY_NAMES", {"digits-jpeg": "digitspng"})
    monkeypatch.setitem(refs.LEGACY_FINGERPRINTS, "digits-jpeg", fingerprint)
    synth = SynthSet.load(old)
    data = real_data_for(synth, data_root=roots["b"])
    assert data.name == f"imagefolder:{roots['b']}/digitspng" and data.fingerprint() == fingerprint
    code, out = evaluate(capsys, old, "--data-root", roots["b"])
    assert code == 0, out.err
    code, out = evaluate(capsys, old, "--data-root", roots["other"])  # same name, other pixels
    assert code == 2 and "fingerprint" in out.err
    code, out = evaluate(capsys, old, "--data-root", roots["base"])  # no such folder there
    assert code == 2 and "not on this machine" in out.err and "digitspng" in out.err


def test_the_zoo_cifar_sets_record_a_name_and_the_jpeg_fingerprint():
    """Every CIFAR-10 zoo set records the name `cifar10` and the fingerprint of the JPEG recoding they were built from
    (scripts/migrate_dataset_refs.py moved the first ones off /tmp/condense_zoo/cifar10-jpeg); the legacy resolver
    stays for users' older files, and synth_sets/README.md says where that data comes from."""
    assert refs.LEGACY_NAMES["cifar10-jpeg"] == "cifar10"
    zoo = os.path.join(os.path.dirname(__file__), "..", "synth_sets", "zoo")
    names = sorted(n for n in os.listdir(zoo) if n.startswith("cifar10_") and n.endswith(".h5"))
    assert len(names) >= 6
    for name in names:
        synth = SynthSet.load(os.path.join(zoo, name))
        assert (synth.dataset, synth.dataset_fingerprint) == ("cifar10", refs.LEGACY_FINGERPRINTS["cifar10-jpeg"])
    readme = open(os.path.join(os.path.dirname(__file__), "..", "synth_sets", "README.md"), encoding="utf-8").read()
    assert "tar xf" in readme and "cifar-10-batches-py" in readme and "CONDENSE_DATA" in readme
    assert refs.LEGACY_FINGERPRINTS["cifar10-jpeg"] in readme


def legacy_copy(src: str, dst: str, dataset: str) -> None:
    """``src`` rewritten as a format-1 file of another machine: that machine's folder, no fingerprint, no
    format-2 attributes, decoder group or source indices (as the first zoo sets were)."""
    from dataclasses import replace

    replace(SynthSet.load(src), source_indices=None).save(dst)
    with h5py.File(dst, "r+") as f:
        for key in ("label_kind", "label_temperature", "relabel_network", "decoder", "dataset_fingerprint"):
            del f.attrs[key]
        del f["decoder"]
        f.attrs["format_version"] = 1
        f.attrs["dataset"] = dataset


def test_the_migration_script_rewrites_only_the_reference(roots, tmp_path, capsys):
    """scripts/migrate_dataset_refs.py: a format-1 file that recorded another machine's folder gets a name and the
    data's fingerprint (computed from --data-root), bit-identical arrays, and then evaluates from that root alone;
    a fingerprint that contradicts the known one is refused in one sentence and the file left as it was."""
    import subprocess
    import sys

    distil(capsys, tmp_path / "s.h5", "--dataset", f"imagefolder:{roots['a']}/digitspng")
    old = str(tmp_path / "old.h5")
    legacy_copy(str(tmp_path / "s.h5"), old, "imagefolder:/tmp/condense_zoo/digitspng")
    with h5py.File(old, "r") as f:
        before = {k: f[k][()] for k in ("images", "labels")}
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "migrate_dataset_refs.py")
    # the script on the machine's thread count, this test on one (conftest.py): the fingerprints must agree
    env = {**os.environ, "CONDENSE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, script, old, "--dataset", "digitspng", "--data-root", roots["b"]],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "bit-identical" in done.stdout and "format 1 -> 2" in done.stdout
    migrated = SynthSet.load(old)
    expected = load_dataset("digitspng", root=roots["b"]).fingerprint()
    assert (migrated.dataset, migrated.dataset_fingerprint) == ("digitspng", expected)
    with h5py.File(old, "r") as f:
        for k, v in before.items():
            assert f[k].dtype == v.dtype and f[k][()].tobytes() == v.tobytes()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".migrate-")]
    code, out = evaluate(capsys, old, "--data-root", roots["b"])
    assert code == 0, out.err
    state = open(old, "rb").read()
    refused = subprocess.run([sys.executable, script, old, "--dataset", "digitspng", "--fingerprint", "0" * 16],
                             capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1 and expected in refused.stderr
    assert open(old, "rb").read() == state


def test_an_image_tree_fingerprint_ignores_the_thread_count(tmp_path):
    """80 grey 24×24 PNGs: enough pixels for torch to split the mean over threads, which used to change the mean's
    last bit, the normalised pixels and so the fingerprint between 1 and 2 threads."""
    import torch
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 4)):
        for c in ("a", "b"):
            os.makedirs(tmp_path / "tree" / split / c)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8), "L").save(
                    tmp_path / "tree" / split / c / f"{i}.png")
    previous = torch.get_num_threads()
    try:
        fingerprints = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fingerprints.append(load_dataset(f"imagefolder:{tmp_path / 'tree'}").fingerprint())
    finally:
        torch.set_num_threads(previous)
    assert fingerprints[0] == fingerprints[1]


def test_a_registry_name_falls_back_to_an_image_tree(roots, tmp_path):
    """`cifar10` without torchvision's files but with DIR/cifar10/{train,test}: the image tree, under the name."""
    tree = os.path.join(str(tmp_path), "root", "mnist")
    shutil.copytree(os.path.join(roots["a"], "digitspng"), tree)
    ds = load_dataset("mnist", root=str(tmp_path / "root"))
    assert ds.name == "mnist" and ds.num_classes == 10 and not ds.hflip_safe  # mnist's flip rule kept
    with pytest.raises(CondenseError, match="image tree"):
        load_dataset("mnist", root=str(tmp_path / "empty"))
    np.testing.assert_equal(ds.image_shape, (1, 8, 8))


def idx_files(raw: str, flip: bool = False) -> None:
    """digits in torchvision's MNIST layout (ROOT/MNIST/raw/*-ubyte, the idx format), ``flip`` mirrored."""
    ds = load_dataset("digits")
    os.makedirs(raw, exist_ok=True)
    for prefix, x, y in (("train", ds.train_x, ds.train_y), ("t10k", ds.test_x, ds.test_y)):
        pixels = (ds.denormalize(x)[:, 0] * 255).round().byte().numpy()
        pixels = pixels[:, :, ::-1] if flip else pixels
        n, h, w = pixels.shape
        with open(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), "wb") as f:
            f.write(np.array([0x803, n, h, w], dtype=">i4").tobytes() + np.ascontiguousarray(pixels).tobytes())
        with open(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
            f.write(np.array([0x801, n], dtype=">i4").tobytes() + y.numpy().astype(np.uint8).tobytes())


def test_a_root_with_both_layouts_gives_each_set_its_own_data(roots, tmp_path):
    """A root holding torchvision's files *and* an image tree of the same name (the original CIFAR-10 batches
    beside the JPEG recoding the zoo was built from): a set gets the layout its fingerprint names, its random
    subsets come from that layout too, and a set made from neither is refused naming both fingerprints."""
    from condense.evaluation.grid import random_like
    from condense.synth import distill

    root = str(tmp_path / "both")
    idx_files(os.path.join(root, "MNIST", "raw"))
    png_tree(os.path.join(root, "mnist"), flip=True)  # other pixels under the same name
    files, tree = load_dataset("mnist", root=root), load_dataset("mnist", root=root, layout="folder")
    assert files.fingerprint() != tree.fingerprint() and tree.name == files.name == "mnist"
    for data in (files, tree):
        made = distill("random", data, 1, device="cpu", seed=0)
        got = real_data_for(made, data_root=root)
        assert got.fingerprint() == data.fingerprint()
        subset = random_like(made, None, root, "cpu", seed=1)
        assert subset.dataset_fingerprint == data.fingerprint()
    made.dataset_fingerprint = "0123456789abcdef"
    with pytest.raises(CondenseError, match=f"Neither.*{files.fingerprint()}.*{tree.fingerprint()}"):
        real_data_for(made, data_root=root)
    with pytest.raises(CondenseError, match="layout"):
        load_dataset("mnist", root=root, layout="batches")
