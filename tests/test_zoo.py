"""The published zoo (synth_sets/) stays consistent with its catalog and covers every method."""
import json
import os

import pytest

from condense.errors import CondenseError
from condense.store import SynthSet
from condense.synth import distill, list_methods
from condense.synth.infer import base_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "synth_sets")
CATALOG = json.load(open(os.path.join(ZOO, "catalog.json")))


# INFER keeps int(IPC / (M/K + 1)) natural images per class: none at IPC 1 with 2 teachers and 10 classes.
IMPOSSIBLE = {("infer", 1), ("infer_dyn", 1)}


def test_every_method_has_mnist5k_entries_at_ipc_1_and_10():
    have = {(r["method"], r["ipc"]) for r in CATALOG.values() if r["dataset"] == "mnist5k"}
    missing = [(m, ipc) for m in list_methods() for ipc in (1, 10) if (m, ipc) not in have | IMPOSSIBLE]
    assert not missing, missing


@pytest.mark.parametrize("method", sorted({m for m, _ in IMPOSSIBLE}))
def test_the_exempt_entries_are_really_impossible(method, digits_teachers):
    assert base_images(1, 2, 10) == 0
    with pytest.raises(CondenseError, match="IPC 1 leaves no natural image per class"):
        distill(method, "digits", 1, iterations=1, teacher=digits_teachers, num_teachers=2, device="cpu",
                model_args={"width": 16})


def test_catalog_rows_match_their_files():
    evaluated = {n: r for n, r in CATALOG.items() if "convnet" in r}
    assert evaluated, "the catalog has no evaluated entry"
    for name, row in evaluated.items():
        synth = SynthSet.load(os.path.join(ZOO, "zoo", name + ".h5"))  # verifies the checksum too
        assert (synth.method, synth.ipc) == (row["method"], row["ipc"]), name
        assert synth.config_hash() == row["config_hash"], name
        runs = row["convnet"]["runs"]
        assert len(runs) >= 3 and abs(sum(runs) / len(runs) - row["convnet"]["mean"]) < 1e-6, name
