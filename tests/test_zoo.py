"""The published zoo (synth_sets/) stays consistent with its catalog and covers every method."""
import json
import os

from condense.store import SynthSet
from condense.synth import list_methods

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "synth_sets")
CATALOG = json.load(open(os.path.join(ZOO, "catalog.json")))


def test_every_method_has_mnist5k_entries_at_ipc_1_and_10():
    have = {(r["method"], r["ipc"]) for r in CATALOG.values() if r["dataset"] == "mnist5k"}
    missing = [(m, ipc) for m in list_methods() for ipc in (1, 10) if (m, ipc) not in have]
    assert not missing, missing


def test_catalog_rows_match_their_files():
    evaluated = {n: r for n, r in CATALOG.items() if "convnet" in r}
    assert evaluated, "the catalog has no evaluated entry"
    for name, row in evaluated.items():
        synth = SynthSet.load(os.path.join(ZOO, "zoo", name + ".h5"))  # verifies the checksum too
        assert (synth.method, synth.ipc) == (row["method"], row["ipc"]), name
        assert synth.config_hash() == row["config_hash"], name
        runs = row["convnet"]["runs"]
        assert len(runs) >= 3 and abs(sum(runs) / len(runs) - row["convnet"]["mean"]) < 1e-6, name
