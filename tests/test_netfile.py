import h5py
import numpy as np
import pytest
import torch

from condense.errors import CondenseError
from condense.models import create_model, load_network, load_state_into, netfile, read_network_info, save_network

ARGS = {"width": 8, "depth": 2}


def _net(seed=0, **args):
    torch.manual_seed(seed)
    net = create_model("ConvNetBN", 1, 10, (8, 8), **{**ARGS, **args})
    net.train()(torch.randn(16, 1, 8, 8))  # one train-mode pass: BatchNorm running stats and counter move
    return net.eval()


def _save(path, net, **kw):
    return save_network(str(path), net, architecture="ConvNetBN", model_args=ARGS, channels=1, num_classes=10,
                        image_size=(8, 8), role="teacher", dataset="digits", dataset_fingerprint="0123abcd",
                        metrics={"test_accuracy": 91.2}, training={"epochs": 3, "lr": 0.01}, **kw)


@pytest.fixture
def saved(tmp_path):
    net = _net()
    return net, _save(tmp_path / "net.h5", net)


def test_round_trip_is_bit_exact(saved):
    net, path = saved
    assert int(net.state_dict()["blocks.0.norm.num_batches_tracked"]) == 1
    loaded, info = load_network(path)
    assert not loaded.training
    want, got = net.state_dict(), loaded.state_dict()
    assert list(got) == list(want)
    assert all(got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]) for k in want)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert (info.architecture, info.model_args, info.image_size, info.role) == ("ConvNetBN", ARGS, (8, 8), "teacher")
    assert info.metrics == {"test_accuracy": 91.2} and info.training == {"epochs": 3, "lr": 0.01}
    assert info.dataset == "digits" and info.dataset_fingerprint == "0123abcd" and info.created.endswith("+00:00")
    assert set(info.versions) == {"torch", "condense"}


def test_info_is_read_without_building_a_model(saved, monkeypatch):
    _, path = saved
    monkeypatch.setattr(netfile, "create_model", lambda *a, **k: pytest.fail("built a model"))
    info = read_network_info(path)
    assert info.entries["blocks.0.norm.num_batches_tracked"] == ((), "int64")
    assert info.entries["classifier.weight"] == ((10, 32), "float32") and len(info.entries) == 16


def test_flipped_bytes_fail_the_checksum(saved):
    _, path = saved
    with h5py.File(path, "r") as f:
        offset = f["state/blocks.1.conv.weight"].id.get_offset()
    with open(path, "r+b") as fh:
        fh.seek(offset + 40)
        chunk = fh.read(3)
        fh.seek(offset + 40)
        fh.write(bytes(b ^ 0xFF for b in chunk))
    with pytest.raises(CondenseError, match="checksum") as err:
        load_network(path)
    assert "\n" not in str(err.value)


def _set_attr(key, value):
    def tamper(f):
        f.attrs[key] = value
    return tamper


def _drop(f):
    del f["state/classifier.bias"]


def _reshape(f):
    del f["state/classifier.bias"]
    f["state/classifier.bias"] = np.zeros(11, np.float32)


@pytest.mark.parametrize("tamper, message", [
    (_set_attr("architecture", "NoSuchNet"), "'NoSuchNet' network, which this condense does not know"),
    (_set_attr("architecture", "ConvNetIN"), "has entry 'blocks.0.norm.num_batches_tracked', which architecture"),
    (_set_attr("format_version", 2), "format version 2"),
    (_drop, "lacks entry 'classifier.bias'"),
    (_reshape, r"entry 'classifier.bias' as float32 \[11\]; architecture 'ConvNetBN' needs float32 \[10\]"),
    ("not-network", "not a condense network file"),
    ("garbage", "not a readable HDF5 file"),
    ("missing", "does not exist"),
])
def test_bad_files_give_one_sentence(saved, tmp_path, tamper, message):
    _, path = saved
    if tamper == "not-network":
        path = str(tmp_path / "other.h5")
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(3)
    elif tamper == "garbage":
        path = str(tmp_path / "garbage.h5")
        with open(path, "wb") as fh:
            fh.write(np.random.default_rng(0).bytes(4096))
    elif tamper == "missing":
        path = str(tmp_path / "nothing.h5")
    else:
        with h5py.File(path, "r+") as f:
            tamper(f)
    with pytest.raises(CondenseError, match=message) as err:
        load_network(path)
    assert "\n" not in str(err.value)


def test_save_refuses_what_it_could_not_load(tmp_path):
    with pytest.raises(CondenseError, match="role 'bogus'"):
        save_network(str(tmp_path / "a.h5"), _net(), architecture="ConvNetBN", model_args=ARGS, channels=1,
                     num_classes=10, image_size=(8, 8), role="bogus")
    with pytest.raises(CondenseError, match=r"blocks.0.conv.bias.* \[16\]"):  # a wider net saved under ARGS
        _save(tmp_path / "b.h5", _net(width=16))
    assert not list(tmp_path.iterdir())


def test_load_state_into_accepts_network_files_and_plain_state_dicts(saved, tmp_path):
    net, path = saved
    fresh = create_model("ConvNetBN", 1, 10, (8, 8), **ARGS)
    assert load_state_into(fresh, path).role == "teacher"
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in net.state_dict().items())
    pt = tmp_path / "w.pt"
    torch.save(_net(seed=1).state_dict(), pt)
    assert load_state_into(fresh, str(pt)) is None
    assert torch.equal(fresh.classifier.weight, _net(seed=1).classifier.weight)
    wide = create_model("ConvNetBN", 1, 10, (8, 8), width=16, depth=2)
    for source in (path, str(pt)):
        with pytest.raises(CondenseError, match="blocks.0.conv.bias") as err:
            load_state_into(wide, source)
        assert "\n" not in str(err.value)


def test_load_state_into_never_unpickles_objects(tmp_path):
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return open, (str(marker), "w")  # unpickling this would create the marker file

    pt = tmp_path / "evil.pt"
    torch.save({"classifier.weight": Evil()}, pt)
    with pytest.raises(CondenseError, match="weights-only") as err:
        load_state_into(create_model("ConvNetBN", 1, 10, (8, 8), **ARGS), str(pt))
    assert "\n" not in str(err.value) and not marker.exists()
