"""Full-data references: catalog.json rewritten from the files, HLR's accuracy from the catalog once the weights
are gone (only under the current ``full`` protocol), a broken catalog refused in one sentence."""
import json
import os

import pytest

import condense.evaluation.references as refs
from condense.cli import main
from condense.data import load_dataset
from condense.errors import CondenseError
from condense.evaluation.protocol import get_protocol

W16 = {"width": 16}


@pytest.fixture
def quick(monkeypatch):
    """``full`` cut to one epoch, for building and for the lookup alike (the protocol hash they compare)."""
    monkeypatch.setattr(refs, "get_protocol", lambda name, **kw: get_protocol(name, **{"epochs": 1, **kw}))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", device="cpu")


def _catalog(folder):
    return json.load(open(os.path.join(folder, "catalog.json")))["references"]


def test_build_rewrites_the_catalog_and_hlr_reads_it_once_the_weights_are_gone(tmp_path, quick, digits):
    folder = str(tmp_path)
    path = refs.build_reference(digits, "ConvNet", W16, folder)
    rows = _catalog(folder)
    assert [r["file"] for r in rows] == [os.path.basename(path)]
    row = rows[0]
    assert row["protocol_hash"] == refs.get_protocol("full").digest() != get_protocol("full").digest()
    assert row["model_args"] == W16 and row["model_args_hash"] == refs.args_hash(W16)
    assert row["bytes"] == os.path.getsize(path) and row["seed"] == 0 and row["dataset"] == "digits"
    full = refs.full_accuracy(digits, "ConvNet", W16, folder)
    assert full == row["test_accuracy"]
    os.remove(path)
    assert refs.full_accuracy(digits, "ConvNet", W16, folder) == full  # from the row
    assert refs.build_reference(digits, "ConvNet", W16, folder).endswith("catalog.json")  # known: not retrained
    assert not os.path.exists(path)
    other = refs.build_reference(digits, "MLP", W16, folder)  # a new file keeps the row whose file is absent
    assert [r["file"] for r in _catalog(folder)] == sorted([os.path.basename(path), os.path.basename(other)])
    assert refs.build_reference(digits, "ConvNet", W16, folder, weights=True) == path and os.path.isfile(path)


def test_a_row_of_another_protocol_version_is_not_used(tmp_path, quick, digits):
    folder = str(tmp_path)
    path = refs.build_reference(digits, "ConvNet", W16, folder)
    os.remove(path)
    doc = json.load(open(os.path.join(folder, "catalog.json")))
    doc["references"][0]["protocol_hash"] = "000000000000"  # measured under an older full.json
    json.dump(doc, open(os.path.join(folder, "catalog.json"), "w"))
    assert refs.full_accuracy(digits, "ConvNet", W16, folder) is None
    assert refs.build_reference(digits, "ConvNet", W16, folder) == path  # retrained, its row replaced
    assert [r["protocol_hash"] for r in _catalog(folder)] == [refs.get_protocol("full").digest()]


@pytest.mark.parametrize("text", ["{not json", '{"references": {}}', '{"references": [{"file": "x.h5"}]}',
                                  '{"references": [{"file": "x.h5", "dataset_fingerprint": "a", "architecture": "b", '
                                  '"model_args_hash": "c", "protocol_hash": "d", "test_accuracy": "98"}]}'])
def test_a_broken_catalog_is_one_sentence(tmp_path, quick, digits, capsys, text):
    open(tmp_path / "catalog.json", "w").write(text)
    with pytest.raises(CondenseError, match="Reference catalog .* restore it from git|not readable JSON"):
        refs.full_accuracy(digits, "ConvNet", W16, str(tmp_path))
    code = main(["reference", "--dataset", "digits", "--models", "ConvNet", "--model-args", json.dumps(W16),
                 "--out", str(tmp_path), "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("condense: Reference catalog") and len(err.strip().splitlines()) == 1


def test_a_file_of_an_older_protocol_is_neither_used_nor_overwritten(tmp_path, quick, digits, monkeypatch):
    """full.json changed since a reference was trained: its file (named by the old protocol's hash) gives no
    accuracy, a rebuild writes a second file beside it, and the catalog keeps both rows; a rebuild under the same
    protocol replaces the row of its absent older copy instead of doubling it."""
    folder = str(tmp_path)
    old = refs.build_reference(digits, "ConvNet", W16, folder)
    monkeypatch.setattr(refs, "get_protocol", lambda name, **kw: get_protocol(name, **{"epochs": 2, **kw}))
    assert refs.full_accuracy(digits, "ConvNet", W16, folder) is None
    new = refs.build_reference(digits, "ConvNet", W16, folder)
    assert new != old and os.path.isfile(old) and os.path.isfile(new)
    assert sorted(r["file"] for r in _catalog(folder)) == sorted(map(os.path.basename, (old, new)))
    assert refs.full_accuracy(digits, "ConvNet", W16, folder) == refs.read_network_info(new).metrics["test_accuracy"]
    doc = json.load(open(os.path.join(folder, "catalog.json")))
    for row in doc["references"]:
        if row["file"] == os.path.basename(new):
            row["file"] = "full_renamed_by_an_older_scheme.h5"  # the same reference under a name no file has
    json.dump(doc, open(os.path.join(folder, "catalog.json"), "w"))
    refs.write_catalog(folder)
    assert sorted(r["file"] for r in _catalog(folder)) == sorted(map(os.path.basename, (old, new)))
