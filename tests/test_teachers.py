"""Teachers as artifacts: `condense teachers` (resumable, checksummed checkpoints), network files that round-trip
and refuse tampering, the checks every consumer applies, and the checksum references sets keep."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from condense.data import load_dataset
from condense.errors import CondenseError
from condense.models import create_model, load_network, read_network_info, save_network
from condense.teachers import (TeacherRecipe, check_reference, find_reference, load_teachers, reference_of,
                               train_teachers)
from condense.teachers.checkpoint import checkpoint_path

DIGITS = load_dataset("digits", device="cpu")
CHECKS = {"dataset": "digits", "fingerprint": DIGITS.fingerprint(), "num_classes": 10, "image_shape": (1, 8, 8),
          "device": torch.device("cpu")}
W8 = {"width": 8}


def save_teacher(path, model="ConvNetBN", classes=10, fingerprint=None, role="teacher"):
    """An untrained network file standing in for a teacher (the checks read metadata, not skill)."""
    torch.manual_seed(0)
    net = create_model(model, 1, classes, (8, 8), **W8)
    return save_network(path, net, architecture=model, model_args=W8, channels=1, num_classes=classes,
                        image_size=(8, 8), role=role, dataset="digits",
                        dataset_fingerprint=DIGITS.fingerprint() if fingerprint is None else fingerprint)


def test_teacher_files_round_trip_and_the_catalog_lists_them(digits_teachers):
    teachers = load_teachers(digits_teachers, **CHECKS)
    assert [os.path.basename(t.info.path) for t in teachers] == ["digits_ConvNetBN_s0.h5", "digits_ConvNetBN_s1.h5"]
    for t in teachers:
        again, info = load_network(t.info.path)
        for (k, a), b in zip(t.net.state_dict().items(), again.state_dict().values()):
            assert torch.equal(a, b), k
        assert (info.role, info.dataset, info.dataset_fingerprint) == ("teacher", "digits", DIGITS.fingerprint())
        assert info.metrics["test_accuracy"] > 80 and info.training["epochs"] == 8 and not t.net.training
        assert not os.path.exists(checkpoint_path(t.info.path))  # removed once the file is written
    catalog = json.load(open(os.path.join(digits_teachers, "catalog.json")))["teachers"]
    assert [(r["file"], r["checksum"], r["seed"]) for r in catalog] == \
        [(os.path.basename(t.info.path), t.info.checksum, i) for i, t in enumerate(teachers)]
    assert len(load_teachers(digits_teachers, count=1, **CHECKS)) == 1
    with pytest.raises(CondenseError, match="3 teachers are needed"):
        load_teachers(digits_teachers, count=3, **CHECKS)


def test_a_tampered_teacher_is_refused(digits_teachers, tmp_path):
    path = str(tmp_path / "t.h5")
    shutil.copy(os.path.join(digits_teachers, "digits_ConvNetBN_s0.h5"), path)
    with h5py.File(path, "r+") as f:
        weight = f["state/classifier.weight"]
        weight[0, 0] = weight[0, 0] + 1.0
    with pytest.raises(CondenseError, match="fails its checksum") as err:
        load_teachers(path, **CHECKS)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, words", [
    ({"fingerprint": "deadbeefdeadbeef"}, "was not trained on this run's data"),
    ({"classes": 3}, "predicts 3 classes but digits has 10"),
    ({"model": "ConvNet"}, "has no BatchNorm layer"),
    ({"role": "reference"}, "is a 'reference' network, not a teacher"),
])
def test_every_consumer_check_is_one_sentence(tmp_path, kwargs, words):
    path = save_teacher(str(tmp_path / "t.h5"), **kwargs)
    with pytest.raises(CondenseError, match=words) as err:
        load_teachers(path, need_batchnorm="sre2l", **CHECKS)
    assert "\n" not in str(err.value)


def test_a_folder_gives_only_this_datas_teachers(tmp_path, digits_teachers):
    save_teacher(str(tmp_path / "other.h5"), fingerprint="deadbeefdeadbeef")
    with pytest.raises(CondenseError, match="holds no teacher for this data.*deadbeefdeadbeef"):
        load_teachers(str(tmp_path), **CHECKS)
    shutil.copy(os.path.join(digits_teachers, "digits_ConvNetBN_s1.h5"), tmp_path / "mine.h5")
    (only,) = load_teachers(str(tmp_path), **CHECKS)
    assert only.info.path.endswith("mine.h5")
    assert load_teachers(str(tmp_path / "mine.h5"), **CHECKS)[0].info.checksum == only.info.checksum


def test_references_name_teachers_by_checksum_in_any_order(digits_teachers):
    a, b = load_teachers(digits_teachers, **CHECKS)
    assert reference_of([a])["checksum"] == a.info.checksum
    pair = reference_of([a, b])
    assert pair["checksum"] == reference_of([b, a])["checksum"] not in (a.info.checksum, b.info.checksum)
    assert [m["file"] for m in pair["members"]] == ["digits_ConvNetBN_s0.h5", "digits_ConvNetBN_s1.h5"]
    check_reference(pair, [b, a], "the set")
    with pytest.raises(CondenseError, match="give the set's own teacher"):
        check_reference(pair, [a], "the set")
    found = find_reference(pair, digits_teachers).split(",")
    assert sorted(found) == sorted([a.info.path, b.info.path])
    assert find_reference({"checksum": "0" * 64, "architecture": "ConvNetBN"}, digits_teachers) is None


def _train(out, epochs=4, on_epoch=None):
    return train_teachers("digits", ["ConvNetBN"], out, model_args=W8, recipe=TeacherRecipe(epochs=epochs),
                          quiet=True, on_epoch=on_epoch)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    (straight,) = _train(str(tmp_path / "a"))

    def stop(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    out = str(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        _train(out, on_epoch=stop)
    ckpt = checkpoint_path(os.path.join(out, "digits_ConvNetBN_s0.h5"))
    assert os.path.exists(ckpt) and not os.path.exists(ckpt.replace(".ckpt.pt", ".h5"))
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    seen = []
    (resumed,) = _train(out, on_epoch=seen.append)
    assert seen == [3, 4] and not os.path.exists(ckpt)
    assert read_network_info(resumed).checksum == read_network_info(straight).checksum  # bit-identical weights
    assert _train(out, on_epoch=seen.append) == [resumed] and seen == [3, 4]  # trained: kept, not retrained
    with pytest.raises(CondenseError, match="trained with other settings"):
        _train(out, epochs=5)


def test_a_damaged_or_foreign_checkpoint_is_refused(tmp_path):
    out = str(tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        _train(out, on_epoch=lambda e: (_ for _ in ()).throw(KeyboardInterrupt))
    ckpt = checkpoint_path(os.path.join(out, "digits_ConvNetBN_s0.h5"))
    payload = torch.load(ckpt, weights_only=True)
    with pytest.raises(CondenseError, match="other settings"):
        _train(out, epochs=6)
    payload["epoch"] = 3  # edited without its checksum
    torch.save(payload, ckpt)
    with pytest.raises(CondenseError, match="fails its checksum"):
        _train(out)
    open(ckpt, "wb").write(b"not a checkpoint")
    with pytest.raises(CondenseError, match="corrupt or truncated"):
        _train(out)


def test_kill_9_then_rerun_completes(tmp_path):
    out = str(tmp_path / "k")
    cmd = [sys.executable, "-m", "condense.cli", "teachers", "--dataset", "digits", "--models", "ConvNetBN",
           "--model-args", '{"width": 8}', "--epochs", "60", "--device", "cpu", "--quiet", "--out", out]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    ckpt = checkpoint_path(os.path.join(out, "digits_ConvNetBN_s0.h5"))
    deadline, reached = time.time() + 600, 0  # a guard against a hang, not a timing (a busy machine took >120 s)
    while time.time() < deadline and proc.poll() is None and reached < 3:
        time.sleep(0.05)
        try:
            reached = torch.load(ckpt, weights_only=True)["epoch"]
        except Exception:  # not written yet (it only ever appears whole, via os.replace)
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 3 <= reached < 60, proc.stderr.read()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    info = read_network_info(os.path.join(out, "digits_ConvNetBN_s0.h5"))
    assert info.training["epochs"] == 60 and not os.path.exists(ckpt)
    assert np.isfinite(info.metrics["test_accuracy"])
