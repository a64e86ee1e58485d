"""The published zoo (synth_sets/) stays consistent with its catalog and covers every method."""
import importlib.util
import json
import os
import sys

import pytest

from condense.store import SynthSet
from condense.synth import list_methods

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def make_zoo():
    spec = importlib.util.spec_from_file_location("make_zoo", os.path.join(ROOT, "scripts", "make_zoo.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_zoo"] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["make_zoo"]
    return module


def test_every_method_has_mnist5k_entries_at_ipc_1_and_10(make_zoo):
    have = {(e.method, e.ipc) for e in make_zoo.ENTRIES if e.dataset == "mnist5k"}
    missing = [(m, ipc) for m in list_methods() for ipc in (1, 10) if (m, ipc) not in have]
    assert not missing, missing
    assert len({e.name for e in make_zoo.ENTRIES}) == len(make_zoo.ENTRIES)


def test_catalog_rows_match_their_files(make_zoo):
    catalog = json.load(open(make_zoo.CATALOG))
    evaluated = {n: r for n, r in catalog.items() if "convnet" in r}
    assert evaluated, "the catalog has no evaluated entry"
    for name, row in evaluated.items():
        synth = SynthSet.load(os.path.join(make_zoo.SETS, name + ".h5"))  # verifies the checksum too
        assert (synth.method, synth.ipc) == (row["method"], row["ipc"]), name
        assert make_zoo.config_hash(synth.config) == row["config_hash"], name
        runs = row["convnet"]["runs"]
        assert len(runs) >= 3 and abs(sum(runs) / len(runs) - row["convnet"]["mean"]) < 1e-6, name
