"""Sets that travel: `condense export` (pt, npz, image folder) and `condense import` (the official DC/DSA/DM, MTT and
DataDAM layouts, image folders, .npz) on tiny digits sets, round trips, and `SynthSet.as_dataset()`."""
import json
import os

import numpy as np
import pytest
import torch

from condense.cli import main
from condense.data import load_dataset
from condense.store import SynthSet
from condense.synth import distill

TINY = {"model_args": {"width": 8}, "device": "cpu"}
EVAL = ["--epochs", "1", "--runs", "1", "--no-ior", "--device", "cpu", "--quiet", "--model-args", '{"width": 8}']


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """A DM set, a multi-formation (factor 2) set, and a set with soft labels and a learned lr, all on digits."""
    d = tmp_path_factory.mktemp("sets")
    dm = distill("dm", "digits", 2, iterations=2, out=str(d / "dm.h5"), **TINY)
    mf = distill("dm", "digits", 1, iterations=1, factor=2, out=str(d / "mf.h5"), **TINY)
    g = torch.Generator().manual_seed(0)
    soft = SynthSet(images=dm.images.clone(), labels=torch.softmax(torch.randn(20, 10, generator=g), 1),
                    dataset="digits", num_classes=10, class_names=list(dm.class_names), mean=dm.mean, std=dm.std,
                    method="test", lr=torch.tensor(0.02), label_kind="probabilities",
                    dataset_fingerprint=dm.dataset_fingerprint)
    soft.save(str(d / "soft.h5"))
    return {"dir": d, "dm": str(d / "dm.h5"), "mf": str(d / "mf.h5"), "soft": str(d / "soft.h5")}


def _class_blocked(labels: torch.Tensor) -> bool:
    return bool((labels[1:] >= labels[:-1]).all())


@pytest.mark.parametrize("fmt", ["pt", "npz", "imagefolder"])
def test_round_trip_gives_the_same_training_set(sets, fmt, tmp_path, capsys):
    """Export, import back: the decoded images and labels again (bit for bit in pt and npz; PNG within half a
    grey level of the clamped pixels), with provenance."""
    out = tmp_path / ("a_dir" if fmt == "imagefolder" else f"a.{fmt}")
    run(capsys, "export", sets["dm"], "--format", fmt, "--out", out)
    run(capsys, "import", out, "--dataset", "digits", "--out", tmp_path / "back.h5")
    orig, back = SynthSet.load(sets["dm"]), SynthSet.load(str(tmp_path / "back.h5"))
    x, y = orig.decode()
    order = torch.sort(y, stable=True).indices
    assert torch.equal(back.labels, y[order]) and _class_blocked(back.labels)
    if fmt == "imagefolder":
        gap = (back.denormalized() - orig.denormalized(x[order])).abs().max()
        assert gap <= 0.5 / 255 + 1e-6
    else:
        assert torch.equal(back.images, x[order])
    assert back.method == f"imported:{fmt}" and back.dataset == "digits"
    assert back.dataset_fingerprint == load_dataset("digits").fingerprint()
    prov = back.config["imported"]
    assert prov["layout"] == fmt and len(prov["files"][0]["sha256"]) == 64
    assert prov["exported_from"]["method"] == "dm"


def test_pt_export_is_the_official_layout(sets, tmp_path, capsys):
    """data[-1] = [images, labels] as the official scripts save them, loadable with weights_only=True, normalised
    with the set's mean/std, class by class; a multi-formation set exports its decoded images."""
    out = tmp_path / "mf.pt"
    run(capsys, "export", sets["mf"], "--format", "pt", "--out", out)
    blob = torch.load(out, weights_only=True)
    images, labels = blob["data"][-1]
    mf = SynthSet.load(sets["mf"])
    assert len(images) == 4 * len(mf.images) and torch.equal(images, blob["images"])  # factor 2: 4 per stored
    assert labels.dtype == torch.int64 and _class_blocked(labels)
    assert torch.bincount(labels).tolist() == [4] * 10
    x, y = mf.decode()
    assert torch.equal(images, x[torch.sort(y, stable=True).indices])
    assert blob["condense"]["mean"] == list(mf.mean) and blob["condense"]["pixels"] == "normalised"
    # renormalised with other constants, the [0, 1] pixels stay the same
    run(capsys, "export", sets["mf"], "--format", "pt", "--out", tmp_path / "m2.pt", "--mean", "0.5", "--std", "0.5")
    other = torch.load(tmp_path / "m2.pt", weights_only=True)["images"]
    assert torch.allclose(other * 0.5 + 0.5, images * mf.std[0] + mf.mean[0], atol=1e-5)


def test_soft_labels_and_learned_lr_travel(sets, tmp_path, capsys):
    soft = SynthSet.load(sets["soft"])
    for fmt in ("npz", "pt", "imagefolder"):
        out = tmp_path / ("s_dir" if fmt == "imagefolder" else f"s.{fmt}")
        run(capsys, "export", sets["soft"], "--format", fmt, "--out", out)
        run(capsys, "import", out, "--dataset", "digits", "--out", tmp_path / f"{fmt}.h5")
        back = SynthSet.load(str(tmp_path / f"{fmt}.h5"))
        order = torch.sort(soft.labels.argmax(1), stable=True).indices
        assert back.label_kind == "probabilities" and torch.equal(back.labels, soft.labels[order])
        assert float(back.lr) == pytest.approx(0.02)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert z["soft_labels"].shape == (20, 10) and float(z["lr"]) == pytest.approx(0.02)
        assert json.loads(str(z["meta"]))["label_kind"] == "probabilities"


def test_as_dataset_feeds_a_dataloader(sets):
    soft = SynthSet.load(sets["soft"])
    loader = torch.utils.data.DataLoader(soft.as_dataset(), batch_size=8, shuffle=True)
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 8, 8) and y.shape == (8, 10)  # soft label rows
    hard = soft.as_dataset(hard=True)
    assert hard[0][1].dim() == 0 and int(hard[0][1]) == int(soft.labels[0].argmax())
    mf = SynthSet.load(sets["mf"])
    ds = mf.as_dataset(pixels=True)
    assert len(ds) == 4 * len(mf.images) and float(ds[0][0].min()) >= 0 and float(ds[0][0].max()) <= 1


def _official_files(root, real: torch.Tensor, labels: torch.Tensor) -> dict[str, tuple[str, list[str]]]:
    """Files in the layouts the official codes write (shapes and types as they save them), from real digits."""
    os.makedirs(root, exist_ok=True)
    accs = {"ConvNet": [np.float64(0.61), np.float64(0.62)]}  # their accuracies are numpy floats
    noisy = real + 0.05 * torch.randn(real.shape, generator=torch.Generator().manual_seed(1))
    files = {}
    for method in ("DC", "DSA", "DM"):  # main.py / main_DM.py: res_<method>_<dataset>_<model>_<ipc>ipc.pt
        path = os.path.join(root, f"res_{method}_digits_ConvNet_2ipc.pt")
        torch.save({"data": [[noisy.clone(), labels.clone()], [real.clone(), labels.clone()]], "accs_all_exps": accs},
                   path)
        files[method] = (path, ["--entry", "0"] if method == "DSA" else [])
    mtt = os.path.join(root, "logged_files", "digits", "run")  # distill.py: images_best.pt, labels_best.pt
    os.makedirs(mtt)
    torch.save(real.clone(), os.path.join(mtt, "images_best.pt"))
    torch.save(labels.clone(), os.path.join(mtt, "labels_best.pt"))
    torch.save(torch.tensor(0.013), os.path.join(root, "syn_lr.pt"))
    files["MTT"] = (mtt, ["--syn-lr", os.path.join(root, "syn_lr.pt")])
    dam = os.path.join(root, "res_DataDAM_digits_ConvNet_2ipc_.pt")  # appended with every new best
    torch.save({"data": [[noisy.clone(), labels.clone()], [real.clone(), labels.clone()]], "accs_all_exps": accs}, dam)
    files["DataDAM"] = (dam, [])
    pair = os.path.join(root, "DIGITS_IPC2_images.pt")  # DataDAM's images/labels pair
    torch.save(real.clone(), pair)
    torch.save(labels.clone(), os.path.join(root, "DIGITS_IPC2_labels.pt"))
    files["DataDAM pair"] = (pair, [])
    return files


def test_official_layouts_import_and_evaluate(tmp_path, capsys):
    """Each official layout, built here in its documented shapes from real digits images normalised as the official
    scripts do, is imported (weights_only) and evaluated; provenance names the layout and the file's checksum."""
    data = load_dataset("digits")
    idx = torch.cat([torch.nonzero(data.train_y == c).squeeze(1)[:2] for c in range(10)])
    real, labels = data.train_x[idx].clone(), data.train_y[idx].clone()  # class-blocked, 2 per class
    folder = tmp_path / "png"
    for i, (img, c) in enumerate(zip(data.denormalize(real), labels.tolist())):
        os.makedirs(folder / str(c), exist_ok=True)
        from PIL import Image
        Image.fromarray((img[0] * 255).round().byte().numpy(), "L").save(folder / str(c) / f"{i}.png")
    np.savez(tmp_path / "plain.npz", images=data.denormalize(real).numpy(), labels=labels.numpy())
    files = _official_files(str(tmp_path / "official"), real, labels)
    files["ImageFolder"] = (str(folder), [])
    files["npz"] = (str(tmp_path / "plain.npz"), ["--pixels", "unit"])
    layouts = {"DC": "dc", "DSA": "dc", "DM": "dc", "MTT": "mtt", "DataDAM": "datadam", "DataDAM pair": "datadam",
               "ImageFolder": "imagefolder", "npz": "npz"}
    outs = []
    for name, (path, extra) in files.items():
        out = tmp_path / f"{name.replace(' ', '_')}.h5"
        run(capsys, "import", path, "--dataset", "digits", "--out", out, *extra)
        s = SynthSet.load(str(out))
        assert s.method == f"imported:{layouts[name]}", name
        assert torch.equal(s.labels, labels) and s.ipc == 2
        tol = 0.5 / 255 / min(data.std) + 1e-6 if layouts[name] == "imagefolder" else 1e-5
        expect = real  # the last entry of a result file, or the pair / folder / arrays
        if name == "DSA":  # --entry 0: the first experiment's images
            expect = real + 0.05 * torch.randn(real.shape, generator=torch.Generator().manual_seed(1))
        assert (s.images - expect).abs().max() <= tol, name
        assert s.config["imported"]["files"][0]["sha256"]
        outs.append(out)
    assert float(SynthSet.load(str(tmp_path / "MTT.h5")).lr) == pytest.approx(0.013)
    assert SynthSet.load(str(tmp_path / "DSA.h5")).config["imported"]["entry"] == 0
    report = tmp_path / "r.json"
    run(capsys, "eval", *outs, *EVAL, "--json", report)
    grid = json.load(open(report))
    assert len(grid["sets"]) == len(outs) and all(0 <= s["results"]["ConvNet"]["runs"][0] <= 100 for s in grid["sets"])


def test_imported_set_evaluates_like_the_original_and_audits(sets, tmp_path, capsys):
    """The npz round trip is bit-exact, so `condense eval` gives the same numbers; the memorization audit runs."""
    run(capsys, "export", sets["dm"], "--format", "npz", "--out", tmp_path / "a.npz")
    run(capsys, "import", tmp_path / "a.npz", "--dataset", "digits", "--out", tmp_path / "b.h5")
    run(capsys, "eval", sets["dm"], tmp_path / "b.h5", *EVAL, "--json", tmp_path / "r.json")
    a, b = json.load(open(tmp_path / "r.json"))["sets"]
    assert a["results"]["ConvNet"]["runs"] == b["results"]["ConvNet"]["runs"]
    run(capsys, "audit", tmp_path / "b.h5", "--checks", "memorization", "--report", tmp_path / "audit", "--device",
        "cpu", "--quiet", "--set", "feature_epochs=1", "--set", 'feature_model_args={"width": 8}')
    assert os.path.isfile(tmp_path / "audit" / "audit.json")
    code = main(["audit", str(tmp_path / "b.h5"), "--checks", "mia", "--report", str(tmp_path / "mia"), "--quiet"])
    assert code == 2 and "imported set" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["pt", "imagefolder"])
def test_pt_and_image_folder_round_trips_evaluate_as_their_pixels_say(sets, fmt, tmp_path, capsys):
    """pt is bit-exact, so `condense eval` gives the original's numbers. An image folder holds 8-bit pixels: its
    round trip is bit for bit the original quantised to 8 bits (built here through an npz of [0, 1] pixels rounded
    to 1/255), and evaluates exactly as that quantised set does; the PNG files lose nothing else."""
    out = tmp_path / ("a_dir" if fmt == "imagefolder" else "a.pt")
    run(capsys, "export", sets["dm"], "--format", fmt, "--out", out)
    run(capsys, "import", out, "--dataset", "digits", "--out", tmp_path / "back.h5")
    like = sets["dm"]
    if fmt == "imagefolder":
        run(capsys, "export", sets["dm"], "--format", "npz", "--pixels", "unit", "--out", tmp_path / "u.npz")
        with np.load(tmp_path / "u.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        levels = np.clip(np.round(arrays["images"] * np.float32(255)), 0, 255).astype(np.uint8)
        arrays["images"] = levels.astype(np.float32) / np.float32(255)
        np.savez(tmp_path / "q.npz", **arrays)
        run(capsys, "import", tmp_path / "q.npz", "--dataset", "digits", "--out", tmp_path / "q.h5")
        like = str(tmp_path / "q.h5")
        assert torch.equal(SynthSet.load(like).images, SynthSet.load(str(tmp_path / "back.h5")).images)
        assert not torch.equal(SynthSet.load(like).images, SynthSet.load(sets["dm"]).images)  # quantised: not the original
    run(capsys, "eval", like, tmp_path / "back.h5", *EVAL, "--json", tmp_path / "r.json")
    a, b = json.load(open(tmp_path / "r.json"))["sets"]
    assert a["results"]["ConvNet"]["runs"] == b["results"]["ConvNet"]["runs"]
