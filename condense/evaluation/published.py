"""The papers' own figures, kept as data (``published.json`` beside this file) and looked up when the zoo is
rendered: for a catalog row's method, dataset family and IPC, the published accuracy with its provenance
(``paper``: read from the paper or its official repo; ``recalled``: from memory, to verify; ``read from a later paper``), the paper's evaluation protocol
and distillation budget in words, and its source (paper, venue, official repo).

Nothing here is measured, and nothing is written into ``catalog.json``: the lookup happens at render time, so a
figure added or corrected in the JSON shows in ``condense zoo`` and in ``make_zoo.py --catalog``'s README at
once, with no distillation or evaluation re-run.

A zoo dataset maps to a paper dataset (its *family*) in the JSON's ``zoo_datasets``, which also says whether the
two are comparable: CIFAR-10 recoded as JPEG is (with a note), the 5,000-image ``mnist5k`` is not comparable with
full MNIST, and its figure is then never shown as a number beside the zoo's (only, marked, in the entry view).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional

from ..errors import CondenseError

PUBLISHED = str(Path(__file__).with_name("published.json"))
NONE = "–"            # no published figure for this method, dataset and IPC
MARK_NOTE = "†"       # comparable dataset with a caveat (e.g. CIFAR-10 recoded as JPEG)
MARK_OTHER = "‡"      # the paper's figure is on other data: not comparable, no number shown in tables
MARK_VARIANT = "§"    # the row sets an option to another value than the paper did (e.g. multi-formation factor)


@dataclass(frozen=True)
class Figure:
    """One published accuracy (test %) for a method, a paper dataset and an IPC."""
    method: str
    dataset: str                 # paper dataset key (``datasets`` in the JSON)
    ipc: int
    mean: float
    std: Optional[float]
    provenance: str              # a key of the JSON's ``provenance``
    source: dict                 # paper, authors, venue, repo
    where: str                   # where the figure was read (README table, a later paper's table, ...)
    protocol: str                # the paper's evaluation protocol, in words
    budget: str                  # the paper's distillation budget, in words
    iterations: Optional[int]    # distillation iterations, when the method iterates
    eval_epochs: Optional[int]   # evaluation training epochs, when the source gives them
    options: dict                # the paper's values of options a zoo row may set (dotted keys into dicts)
    note: str
    dataset_name: str
    dataset_short: str

    def accuracy(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f}" if self.std is not None else f"{self.mean:.1f}"

    def scale(self) -> str:
        """The paper's budget in short: distillation iterations and evaluation epochs, where given."""
        parts = ([f"{self.iterations:,} it."] if self.iterations else []) + \
                ([f"{self.eval_epochs} ep."] if self.eval_epochs else [])
        return ", ".join(parts)

    def citation(self) -> str:
        s = self.source
        return f"{s['authors']}, \"{s['paper']}\", {s['venue']}; code: {s['repo']}; figure from {self.where}"

    def title(self) -> str:
        return f"{self.method}, {self.dataset_short}, IPC {self.ipc}"


@dataclass(frozen=True)
class Match:
    """A published figure found for a zoo row, and how far it compares with it."""
    figure: Figure
    zoo_dataset: str
    comparable: bool             # same dataset family and the JSON says the data compare
    dataset_note: str
    differences: tuple           # "factor 2 here, 1 in the paper", ...

    def marks(self) -> str:
        if not self.comparable:
            return MARK_OTHER
        return (MARK_NOTE if self.dataset_note else "") + (MARK_VARIANT if self.differences else "")


@dataclass(frozen=True)
class Published:
    figures: dict                # (method, paper dataset, ipc) -> Figure
    zoo_datasets: dict           # zoo dataset -> {"family", "comparable", "note"}
    provenance: dict             # flag -> meaning


def _fail(origin: str, what: str) -> CondenseError:
    return CondenseError(f"Published figures {origin}: {what}.")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_published(blob: Any, origin: str = PUBLISHED) -> Published:
    """Every table expanded to one Figure per IPC, each field checked; one sentence for the first problem."""
    if not isinstance(blob, dict) or not {"provenance", "datasets", "zoo_datasets", "sources", "protocols",
                                          "tables"} <= set(blob):
        raise _fail(origin, "need provenance, datasets, zoo_datasets, sources, protocols and tables")
    datasets, sources, protocols = blob["datasets"], blob["sources"], blob["protocols"]
    for name, z in blob["zoo_datasets"].items():
        if not (isinstance(z, dict) and z.get("family") in datasets and isinstance(z.get("comparable"), bool)
                and isinstance(z.get("note"), str)):
            raise _fail(origin, f"zoo dataset '{name}' needs a known family, comparable true/false and a note")
        if not z["comparable"] and not z["note"]:
            raise _fail(origin, f"zoo dataset '{name}' is not comparable but says not why")
    figures: dict = {}
    for i, t in enumerate(blob["tables"]):
        at = f"table {i + 1} ({t.get('method')}, {t.get('dataset')})"
        if not isinstance(t.get("method"), str) or t.get("dataset") not in datasets:
            raise _fail(origin, f"{at} needs a method and a dataset of 'datasets'")
        if t.get("source") not in sources or t.get("protocol") not in protocols:
            raise _fail(origin, f"{at} names an unknown source or protocol")
        if not isinstance(t.get("where"), str) or not t["where"]:
            raise _fail(origin, f"{at} says not where its figures were read")
        if t.get("provenance") not in blob["provenance"]:
            raise _fail(origin, f"{at} has provenance {t.get('provenance')!r}, not one of {sorted(blob['provenance'])}")
        for key in ("iterations", "eval_epochs"):
            if t.get(key) is not None and not (isinstance(t[key], int) and t[key] > 0):
                raise _fail(origin, f"{at}: {key} must be a positive integer")
        if not isinstance(t.get("figures"), dict) or not t["figures"]:
            raise _fail(origin, f"{at} has no figures")
        budget = t.get("budget")
        for ipc_text, value in t["figures"].items():
            if not ipc_text.isdigit() or int(ipc_text) < 1:
                raise _fail(origin, f"{at}: IPC '{ipc_text}' is not a positive integer")
            if not (isinstance(value, list) and len(value) in (1, 2) and all(_number(v) for v in value)
                    and 0 <= value[0] <= 100):
                raise _fail(origin, f"{at}, IPC {ipc_text}: a figure is [mean] or [mean, std] in percent")
            text = budget.get(ipc_text) if isinstance(budget, dict) else budget
            if not isinstance(text, str) or not text:
                raise _fail(origin, f"{at}, IPC {ipc_text} has no budget text")
            key = (t["method"], t["dataset"], int(ipc_text))
            if key in figures:
                raise _fail(origin, f"{at} repeats the figure for IPC {ipc_text}")
            figures[key] = Figure(
                method=t["method"], dataset=t["dataset"], ipc=int(ipc_text), mean=float(value[0]),
                std=float(value[1]) if len(value) == 2 else None, provenance=t["provenance"],
                source=sources[t["source"]], where=t["where"], protocol=protocols[t["protocol"]], budget=text,
                iterations=t.get("iterations"), eval_epochs=t.get("eval_epochs"), options=t.get("options") or {},
                note=t.get("note", ""), dataset_name=datasets[t["dataset"]]["name"],
                dataset_short=datasets[t["dataset"]]["short"])
    return Published(figures=figures, zoo_datasets=blob["zoo_datasets"], provenance=blob["provenance"])


@lru_cache(maxsize=4)
def load_published(path: str = PUBLISHED) -> Published:
    try:
        with open(path, encoding="utf-8") as f:
            blob = json.load(f)
    except (OSError, ValueError) as e:
        raise _fail(path, f"cannot be read ({e})") from None
    return parse_published(blob, path)


def _option(budget: dict, dotted: str) -> Any:
    value: Any = budget
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def lookup(method: str, dataset: str, ipc: int, budget: Optional[dict] = None,
           published: Optional[Published] = None) -> Optional[Match]:
    """The published figure for a zoo row's method, dataset family and IPC, or None (an unknown zoo dataset, or
    no figure on file)."""
    published = published or load_published()
    zoo = published.zoo_datasets.get(dataset)
    if zoo is None:
        return None
    figure = published.figures.get((method, zoo["family"], int(ipc)))
    if figure is None:
        return None
    differences = tuple(f"{k} {here} here, {paper} in the paper" for k, paper in figure.options.items()
                        if (here := _option(budget or {}, k)) is not None and here != paper)
    return Match(figure=figure, zoo_dataset=dataset, comparable=bool(zoo["comparable"]), dataset_note=zoo["note"],
                 differences=differences)


def lookup_row(row: dict, published: Optional[Published] = None) -> Optional[Match]:
    return lookup(row["method"], row["dataset"], row["ipc"], row.get("budget"), published)


def paper_cell(match: Optional[Match]) -> str:
    """The table cell: "–" for none; the paper's dataset, never its number, when the data are not comparable;
    else the figure, its provenance and the paper's budget, with the marks the notes explain."""
    if match is None:
        return NONE
    f = match.figure
    if not match.comparable:
        return f"other data: {f.dataset_short} {MARK_OTHER}"
    scale = f" @{f.scale()}" if f.scale() else ""
    marks = match.marks()
    return f"{f.accuracy()} [{f.provenance}]{scale}" + (f" {marks}" if marks else "")


def paper_notes(matches: Iterable[Optional[Match]]) -> list[str]:
    """The notes under a table with a paper column: what it holds, then one line per mark used."""
    matches = [m for m in matches if m is not None]
    if not matches:
        return []
    lines = ["paper: the published ConvNet test accuracy (%) for the same method, dataset and IPC, [its provenance], "
             "@ the paper's distillation iterations and evaluation epochs (far more than the zoo's budgets)"]
    notes = sorted({(m.zoo_dataset, m.dataset_note) for m in matches if m.comparable and m.dataset_note})
    lines += [f"{MARK_NOTE} {zoo}: {note}" for zoo, note in notes]
    others = sorted({(m.zoo_dataset, m.dataset_note) for m in matches if not m.comparable})
    lines += [f"{MARK_OTHER} {note}; its figure is kept out of the table and shown only marked, with its protocol "
              f"(`condense zoo NAME`; the published-figures list of synth_sets/README.md)" for _, note in others]
    if any(m.comparable and m.differences for m in matches):
        lines.append(f"{MARK_VARIANT} the set's options differ from the paper's (e.g. multi-formation factor 2 here, "
                     f"none in the paper): another variant of the method; `condense zoo NAME` lists how")
    return lines


def paper_fields(match: Optional[Match], published: Optional[Published] = None) -> list[tuple[str, str]]:
    """The entry view's rows on the published figure."""
    if match is None:
        return [("paper figure", f"{NONE} (none on file for this method, dataset and IPC)")]
    f = match.figure
    meaning = (published or load_published()).provenance.get(f.provenance, "")
    if match.comparable:
        head = f"{f.accuracy()} ({f.title()}) [{f.provenance}]"
    else:
        head = f"{MARK_OTHER} not comparable: {f.accuracy()} ({f.title()}) [{f.provenance}], on other data"
    rows = [("paper figure", head), ("paper dataset", f.dataset_name)]
    if match.dataset_note:
        rows.append(("data compared", f"{MARK_NOTE if match.comparable else MARK_OTHER} {match.dataset_note}"))
    rows += [("paper protocol", f.protocol),
            ("paper budget", f.budget)]
    if match.differences:
        rows.append(("paper variant", f"{MARK_VARIANT} " + "; ".join(match.differences)))
    if f.note:
        rows.append(("paper note", f.note))
    rows += [("paper source", f.citation()), ("provenance", f"{f.provenance}: {meaning}")]
    return rows
