"""The zoo's catalog (``synth_sets/catalog.json``, written by ``scripts/make_zoo.py``): one row per published set
with its method, dataset, IPC, budget, stored bytes, command, and its ConvNet evaluation (every run, under a
named protocol and its hash). ``condense zoo`` lists and shows the rows, each beside the paper's own figure for
the same method, dataset family and IPC (looked up at render time in ``published.json``, see ``published.py``);
``condense report`` draws them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from rich.markup import escape
from rich.table import Table

from ..data import DATA_ENV, LEGACY_NAMES
from ..errors import CondenseError
from ..io import read_json
from ..fields import AT_LEAST_1, NON_NEGATIVE, Number, check_value
from .protocol import get_protocol
from .published import lookup_row, paper_cell, paper_fields, paper_notes
from .results import RISING_NOTE, EvalReport, ModelResult
from .tables import cell, plural, titled_table

# Fields every row has, and their types (the rest are optional and read with care).
_ROW_TYPES: dict[str, Any] = {"method": (str, None), "dataset": (str, None), "ipc": (int, AT_LEAST_1),
                              "bytes": (int, NON_NEGATIVE), "command": (str, None), "budget": (dict, None)}
_EVAL_TYPES: dict[str, Any] = {"protocol": (str, None), "protocol_hash": (str, None), "convnet": (dict, None)}


def default_catalog() -> str:
    """``$CONDENSE_ZOO`` (a catalog file), else ``synth_sets/catalog.json`` of a source checkout."""
    return os.environ.get("CONDENSE_ZOO") or str(Path(__file__).resolve().parents[2] / "synth_sets" / "catalog.json")


def is_catalog(blob: Any) -> bool:
    """A zoo catalog: an object of rows, each an object with a method, a dataset and an IPC."""
    return isinstance(blob, dict) and bool(blob) and all(
        isinstance(r, dict) and {"method", "dataset", "ipc", "command"} <= set(r) for r in blob.values())


def check_catalog(blob: Any, where: str) -> dict[str, dict[str, Any]]:
    """The rows of a catalog, every field a reader uses typed; one sentence otherwise."""
    if not is_catalog(blob):
        raise CondenseError(f"{where} is not a zoo catalog (an object of rows with method, dataset, ipc and command).")
    for name, row in blob.items():
        for key, (hint, rng) in _ROW_TYPES.items():
            check_value(f"{where}, entry '{name}', field '{key}'", row.get(key), hint, rng)
        if "convnet" in row:
            for key, (hint, rng) in _EVAL_TYPES.items():
                check_value(f"{where}, entry '{name}', field '{key}'", row.get(key), hint, rng)
            check_value(f"{where}, entry '{name}', field 'convnet.runs'", row["convnet"].get("runs"), list[Number])
            if not row["convnet"]["runs"]:
                raise CondenseError(f"{where}, entry '{name}' has an evaluation with no runs.")
    return blob


def read_catalog(path: Optional[str] = None) -> dict[str, dict[str, Any]]:
    path = path or default_catalog()
    blob = read_json(path, "Zoo catalog", missing_hint="; give one with --catalog")
    return check_catalog(blob, f"Zoo catalog {path}")


def network_recipe(file_name: str, kind: str = "ssl", path: Optional[str] = None) -> Optional[dict[str, Any]]:
    """How a zoo entry's network (its row's ``network``: ``condense ssl`` or ``mae`` options) called ``file_name``
    was trained: the row's dataset plus those options; None when no row names it or there is no catalog. Sets made
    before their networks' training was recorded in them are rebuilt from it."""
    path = path or default_catalog()
    if not file_name or not os.path.isfile(path):
        return None
    try:
        catalog = read_catalog(path)
    except CondenseError:
        return None
    for row in catalog.values():
        net = row.get("network")
        if isinstance(net, dict) and net.get("kind") == kind and os.path.basename(str(net.get("file"))) == file_name:
            return {"dataset": row["dataset"], **{k: v for k, v in net.items() if k not in ("file", "kind", "seconds")}}
    return None


def set_path(catalog_path: str, name: str) -> str:
    """Where the catalog's set ``name`` lives: ``zoo/NAME.h5`` beside the catalog."""
    return os.path.join(os.path.dirname(os.path.abspath(catalog_path)), "zoo", f"{name}.h5")


def protocol_of(row: dict[str, Any]) -> dict[str, Any]:
    """The row's protocol content with its hash: today's file when its hash is the recorded one, else only the
    recorded name and hash (the recipe changed since the row was evaluated)."""
    try:
        proto = get_protocol(row["protocol"])
    except CondenseError:
        proto = None
    if proto is not None and proto.digest() == row["protocol_hash"]:
        return {**proto.to_dict(), "hash": row["protocol_hash"]}
    return {"name": row["protocol"], "hash": row["protocol_hash"],
            "description": "recorded by the catalog; the protocol file has changed since"}


def catalog_reports(catalog: dict[str, dict[str, Any]]) -> list[EvalReport]:
    """One report per evaluated row: its ConvNet runs, plus its cross-architecture runs when it has them. The
    catalog keeps no image count, learned lr or seed list (the defaults of ``EvalReport.from_json``)."""
    reports = []
    for name, row in sorted(catalog.items()):
        if "convnet" not in row:
            continue  # distilled, not yet evaluated
        results = {"ConvNet": row["convnet"], **(row.get("cross_arch") or {})}
        reports.append(EvalReport(set=f"{name}.h5", dataset=row["dataset"], method=row["method"], ipc=row["ipc"],
                                  images=0, lr=float("nan"), seed=0, seeds=[], protocol=protocol_of(row),
                                  results={m: ModelResult.from_json(v) for m, v in results.items()}))
    return reports


def storage(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def budget(row: dict[str, Any]) -> str:
    text = ", ".join(f"{k} {v}" for k, v in row.get("budget", {}).items()) or "-"
    experts = row.get("experts")
    if isinstance(experts, dict) and {"num", "epochs"} <= set(experts):
        text += f"; {experts['num']} experts × {experts['epochs']} epochs"
    return text


def accuracy(row: dict[str, Any]) -> str:
    """``mean ± std`` over the runs (a single run: its value), marked when its curves were still rising, or
    "not evaluated"."""
    res = row.get("convnet")
    if not res:
        return "not evaluated"
    return cell(ModelResult.from_json(res))


def rising_note(rows: list[dict[str, Any]]) -> Optional[str]:
    """The still-rising note, when some row's ConvNet curves carry the mark."""
    return RISING_NOTE if any(row.get("convnet") and ModelResult.from_json(row["convnet"]).rising
                              for row in rows) else None


def protocol_text(row: dict[str, Any]) -> str:
    res = row.get("convnet")
    if not res:
        return "-"
    runs = len(res["runs"])
    return f"{row['protocol']}, {'one run' if runs == 1 else f'{runs} runs'}"


# ---- `condense zoo`: the catalog as tables ---------------------------------------------------------------
def _order(catalog: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(catalog, key=lambda n: (catalog[n]["dataset"], -catalog[n]["ipc"], n))


def zoo_table(catalog: dict[str, dict[str, Any]], where: str) -> Table:
    """One row per set: method, dataset, IPC, ConvNet accuracy with its protocol, the paper's figure, stored
    bytes, budget."""
    matches = {name: lookup_row(row) for name, row in catalog.items()}
    notes = [n for n in [rising_note(list(catalog.values()))] + paper_notes(matches.values()) if n]
    table = titled_table(f"Zoo ({where}): ConvNet test accuracy (%), mean ± std over the runs",
                         caption=escape("\n".join(notes)) if notes else None, caption_justify="left")
    for col in ("set", "method", "dataset", "IPC", "accuracy", "protocol", "paper", "storage", "budget"):
        table.add_column(col, justify="right" if col in ("IPC", "accuracy", "storage") else "left")
    for name in _order(catalog):
        row = catalog[name]
        table.add_row(name, row["method"], row["dataset"], str(row["ipc"]), accuracy(row), protocol_text(row),
                      escape(paper_cell(matches[name])), storage(row["bytes"]), escape(budget(row)))
    return table


def data_setup(dataset: str) -> str:
    """How to get a zoo set's data ready on another machine."""
    if dataset in ("mnist5k", "digits"):
        return "bundled with condense (nothing to download)"
    name = LEGACY_NAMES.get(dataset, dataset)
    source = f"{dataset}.tar" if name != dataset else f"the {dataset} image tree"
    return (f"extract {source} into DIR/{name} (train/ and test/ inside), then pass --data-root DIR or set "
            f"{DATA_ENV}=DIR (synth_sets/README.md)")


def _threads(row: dict[str, Any]) -> str:
    threads = row.get("threads")
    return plural(threads, "thread") if isinstance(threads, int) else "? threads"


def entry_table(name: str, catalog: dict[str, dict[str, Any]], catalog_path: str) -> Table:
    """Everything the catalog says of one set, the command that made it and the one that re-evaluates it."""
    if name.endswith(".h5"):
        name = os.path.basename(name)[:-3]
    if name not in catalog:
        close = [n for n in _order(catalog) if name in n] or _order(catalog)
        raise CondenseError(f"The zoo has no entry '{name}'; entries: {', '.join(close)}.")
    row = catalog[name]
    path = os.path.relpath(set_path(catalog_path, name))
    res = row.get("convnet") or {}
    needs_data = row["dataset"] not in ("mnist5k", "digits")
    rows = [("file", path + ("" if os.path.isfile(set_path(catalog_path, name)) else " (not on disk)")),
            ("method", row["method"]), ("dataset", row["dataset"]), ("IPC", str(row["ipc"])),
            ("budget", budget(row)), ("stored bytes", f"{row['bytes']:,} ({storage(row['bytes'])})"),
            ("ConvNet accuracy", f"{accuracy(row)} ({protocol_text(row)}; runs: "
                                 f"{', '.join(f'{v:.2f}' for v in res.get('runs', []))})" if res else accuracy(row)),
            *paper_fields(lookup_row(row)),
            ("protocol hash", str(row.get("protocol_hash", "-"))), ("config hash", str(row.get("config_hash", "-"))),
            ("distillation", f"{row['distill_seconds'] / 60:.1f} min on {_threads(row)}, "
                             f"{row.get('machine', '?')}" if isinstance(row.get("distill_seconds"), (int, float)) else "-"),
            ("date", str(row.get("date", "-"))), ("data", data_setup(row["dataset"])),
            ("made by", row["command"]),
            ("re-evaluate", f"condense eval {path} --protocol {row.get('protocol', 'standard')}"
                            f"{' --runs ' + str(len(res['runs'])) if res else ''}{' --data-root DIR' if needs_data else ''}")]
    if row.get("note"):
        rows.append(("note", row["note"]))
    table = titled_table(f"Zoo entry {name}", show_header=False, caption=rising_note([row]))
    table.add_column("field", style="bold")
    table.add_column("value")
    for k, v in rows:
        table.add_row(k, escape(v))
    return table
