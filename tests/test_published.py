"""The papers' figures beside the zoo (condense/evaluation/published.json): looked up at render time by method,
dataset family and IPC; a miss shows "–"; a figure on other data (full MNIST vs mnist5k) is never shown as a
number beside the zoo's, only marked as not comparable."""
import copy
import json
import os
import re

import pytest
from rich.console import Console

from condense.errors import CondenseError
from condense.evaluation.catalog import entry_table, zoo_table
from condense.evaluation.published import (MARK_NOTE, MARK_OTHER, MARK_VARIANT, NONE, PUBLISHED, load_published,
                                           lookup, lookup_row, paper_cell, paper_fields, paper_notes,
                                           parse_published)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATALOG_PATH = os.path.join(ROOT, "synth_sets", "catalog.json")
CATALOG = json.load(open(CATALOG_PATH))


def render(table) -> str:
    console = Console(width=400, record=True, highlight=False)
    with console.capture() as cap:
        console.print(table)
    return " ".join(cap.get().split())


def test_the_data_file_loads_and_keeps_methods_md_provenance():
    pub = load_published()
    assert set(pub.provenance) == {"paper", "recalled", "read from a later paper"}
    dm10 = pub.figures[("dm", "cifar10", 10)]
    assert (dm10.mean, dm10.std, dm10.provenance, dm10.iterations, dm10.eval_epochs) == (48.9, 0.6, "paper", 20000, 1000)
    assert "WACV 2023" in dm10.citation() and "VICO-UoE/DatasetCondensation" in dm10.citation()
    assert pub.figures[("dm", "mnist", 10)].provenance == "recalled"
    assert pub.figures[("datadam", "cifar10", 10)].provenance == "recalled"
    assert pub.figures[("idm", "cifar10", 10)].provenance == "read from a later paper"
    assert pub.figures[("dc", "mnist", 1)].std is None  # the README table gives no std


def test_lookup_hits_a_known_entry_cifar10_dm_ipc10():
    m = lookup_row(CATALOG["cifar10_dm_ipc10"])
    assert m is not None and m.comparable and not m.differences
    assert m.figure.accuracy() == "48.9 ± 0.6"
    assert "JPEG recoding" in m.dataset_note
    cell = paper_cell(m)
    assert cell.startswith("48.9 ± 0.6 [paper]") and "20,000 it." in cell and cell.endswith(MARK_NOTE)
    fields = dict(paper_fields(m))
    assert "1000 epochs" in fields["paper protocol"] and "hard labels" in fields["paper protocol"]
    assert fields["paper budget"].startswith("20,000 iterations")
    assert "Distribution Matching" in fields["paper source"] and fields["provenance"].startswith("paper")


def test_a_different_variant_is_marked():
    m = lookup_row(CATALOG["cifar10_dm_cpu_ipc10"])  # dm with multi-formation factor 2: not the paper's DM
    assert m.comparable and m.differences == ("factor 2 here, 1 in the paper",)
    assert paper_cell(m).endswith(MARK_NOTE + MARK_VARIANT)


def test_a_miss_renders_a_dash():
    assert lookup("herding", "mnist5k", 10) is None       # no baseline figure on file
    assert lookup("dm", "cifar10-jpeg", 7) is None         # no such IPC
    assert lookup("dm", "digits", 10) is None              # a dataset no paper used
    assert paper_cell(None) == NONE == "–"
    assert paper_fields(None)[0][1].startswith(NONE)
    out = render(zoo_table({"mnist5k_herding_ipc10": CATALOG["mnist5k_herding_ipc10"]}, "t"))
    assert f"fast, 3 runs │ {NONE} │" in out  # the paper column follows the protocol column


def test_full_mnist_figures_are_never_comparable_with_mnist5k():
    pub = load_published()
    mnist = [k for k in pub.figures if k[1] == "mnist"]
    assert mnist, "no full-MNIST figure on file"
    for method, _, ipc in mnist:
        m = lookup(method, "mnist5k", ipc)
        assert m is not None and not m.comparable, (method, ipc)
        cell = paper_cell(m)
        assert MARK_OTHER in cell and "MNIST 60k" in cell
        assert not re.search(r"\d+\.\d", cell), cell  # no number beside the zoo's figure
        head = dict(paper_fields(m))["paper figure"]
        assert head.startswith(f"{MARK_OTHER} not comparable")
    rows = {n: r for n, r in CATALOG.items() if r["dataset"] == "mnist5k"}
    out = render(zoo_table(rows, "t"))
    for (method, dataset, ipc), f in pub.figures.items():
        if dataset == "mnist" and any(r["method"] == method and r["ipc"] == ipc for r in rows.values()):
            assert f"{f.mean:.1f}" not in out, (method, ipc)
    assert "not comparable" in out
    entry = render(entry_table("mnist5k_dm_ipc10", CATALOG, CATALOG_PATH))
    assert f"{MARK_OTHER} not comparable: 97.5" in entry and "mnist5k here" in entry and "[recalled]" in entry


def test_the_zoo_table_and_entry_view_show_the_paper_column():
    out = render(zoo_table(CATALOG, "synth_sets/catalog.json"))
    assert " paper " in out and "48.9 ± 0.6 [paper] @20,000 it., 1000 ep." in out
    assert "54.2 ± 0.8 [recalled]" in out and "JPEG recoding" in out
    entry = render(entry_table("cifar10_datadam_ipc10", CATALOG, CATALOG_PATH))
    assert "54.2 ± 0.8 (datadam, CIFAR-10, IPC 10) [recalled]" in entry and "ICCV 2023" in entry
    assert "8,000 iterations" in entry


def test_notes_explain_each_mark_used():
    matches = [lookup_row(CATALOG[n]) for n in ("cifar10_dm_cpu_ipc10", "mnist5k_dm_ipc10")]
    notes = paper_notes(matches)
    assert any(n.startswith(MARK_NOTE) for n in notes) and any(n.startswith(MARK_OTHER) for n in notes)
    assert any(n.startswith(MARK_VARIANT) for n in notes)
    assert paper_notes([None]) == []


def test_bad_data_is_one_sentence():
    blob = json.load(open(PUBLISHED))
    for bad in ({"provenance": "guessed"}, {"figures": {"10": [48.9, 0.6, 1.0]}}, {"source": "nobody"},
                {"where": ""}, {"budget": {"1": "x"}}):
        broken = copy.deepcopy(blob)
        broken["tables"][0].update(bad)
        with pytest.raises(CondenseError, match="Published figures"):
            parse_published(broken, "test.json")
    broken = copy.deepcopy(blob)
    broken["tables"].append(copy.deepcopy(broken["tables"][0]))
    with pytest.raises(CondenseError, match="repeats"):
        parse_published(broken, "test.json")
    broken = copy.deepcopy(blob)
    broken["zoo_datasets"]["mnist5k"]["note"] = ""
    with pytest.raises(CondenseError, match="not comparable but says not why"):
        parse_published(broken, "test.json")
