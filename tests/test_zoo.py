"""The published zoo (synth_sets/) stays consistent with its catalog and covers every method."""
import json
import os

import pytest

from condense.data import LEGACY_NAMES, split_view
from condense.errors import CondenseError
from condense.store import SynthSet
from condense.synth import distill, list_methods
from condense.synth.infer import base_images
from condense.teachers import file_hint

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


def same_data(recorded: str, row_dataset: str) -> bool:
    """Whether a set's recorded dataset is its row's: the same name, or an image folder of that name (or of the
    name the documented set-up gives it now, ``LEGACY_NAMES``), with the same view."""
    base, view = split_view(recorded)
    if base.startswith("imagefolder:"):
        base = os.path.basename(os.path.normpath(base.split(":", 1)[1]))
    row_base, row_view = split_view(row_dataset)
    return (LEGACY_NAMES.get(base, base), view) == (LEGACY_NAMES.get(row_base, row_base), row_view)


def network_file(synth: SynthSet, kind: str) -> str:
    """The file name of the network a set was distilled with, krr_st's SSL target or dq's masked autoencoder: named
    by checksum with the file name as a hint, or (dq sets made before that) the option's path."""
    named = synth.config.get({"ssl": "target", "mae": "mae"}[kind])
    if isinstance(named, dict):
        return file_hint(named)
    return os.path.basename(str(synth.config["method_config"].get(kind, "")))


def mismatches(row: dict, synth: SynthSet, path: str) -> list[str]:
    """Every claim of a catalog row that its file contradicts."""
    run, options = synth.config.get("run", {}), synth.config.get("method_config", {})
    wrong = [f"{key}: row {want!r}, file {have!r}" for key, want, have in (
        ("method", row["method"], synth.method), ("ipc", row["ipc"], run.get("ipc")),
        ("config_hash", row["config_hash"], synth.config_hash()), ("bytes", row["bytes"], os.path.getsize(path)),
        ("teachers", row.get("teachers"), synth.config.get("teachers") if "teachers" in row else None),
        ("dataset_fingerprint", row.get("dataset_fingerprint"),
         synth.dataset_fingerprint if "dataset_fingerprint" in row else None)) if want != have]
    if not same_data(synth.dataset, row["dataset"]):
        wrong.append(f"dataset: row {row['dataset']!r}, file {synth.dataset!r}")
    for key, want in row.get("budget", {}).items():
        have = run.get(key) if key in ("model", "model_args") else options.get(key)
        if have != want:
            wrong.append(f"budget {key}: row {want!r}, file {have!r}")
    if "iterations" in row.get("budget", {}) and synth.iterations_done != row["budget"]["iterations"]:
        wrong.append(f"iterations done: row {row['budget']['iterations']}, file {synth.iterations_done}")
    if "network" in row:
        want, have = os.path.basename(row["network"]["file"]), network_file(synth, row["network"]["kind"])
        if want != have:
            wrong.append(f"network: row {want!r}, file {have!r}")
    if "storage" in row and row["storage"].get("stored_total") != synth.storage_bytes()["total"]:
        wrong.append(f"stored bytes: row {row['storage'].get('stored_total')}, file {synth.storage_bytes()['total']}")
    if "convnet" in row:
        runs = row["convnet"]["runs"]
        if len(runs) < 3 or abs(sum(runs) / len(runs) - row["convnet"]["mean"]) > 1e-6:
            wrong.append(f"convnet: mean {row['convnet']['mean']} is not that of {len(runs)} runs {runs}")
    return wrong


# Rows whose file contradicts them, each with why (the catalog and the sets are left as they are).
KNOWN_MISMATCHES: dict[str, str] = {}


def test_the_catalog_has_evaluated_entries():
    assert any("convnet" in r for r in CATALOG.values()), "the catalog has no evaluated entry"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_MISMATCHES[n], strict=True))
                                  if n in KNOWN_MISMATCHES else n for n in sorted(CATALOG)])
def test_catalog_rows_match_their_files(name):
    """Every row, evaluated or not: its file loads (which verifies its checksum and metadata) and agrees with
    every claim of the row."""
    path = os.path.join(ZOO, "zoo", name + ".h5")
    synth = SynthSet.load(path)
    wrong = mismatches(CATALOG[name], synth, path)
    assert not wrong, f"{name}: " + "; ".join(wrong)
