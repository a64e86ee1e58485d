"""The typed result of a transfer evaluation, its JSON layout and its tables (terminal and Markdown).

Accuracies are in percent, one value per run; a cell shows mean ± population std over the runs. Rows are the
baselines (no pre-training, a random subset) and then the sets; columns are (mode, labelled share).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
from rich.markup import escape
from rich.table import Table

from .tables import mean_std, titled_table


@dataclass
class TransferRow:
    name: str
    kind: str                                              # scratch | regression | labels
    images: int = 0
    note: str = ""
    results: dict[str, list[float]] = field(default_factory=dict)   # column -> accuracy per run
    seconds: dict[str, list[float]] = field(default_factory=dict)   # column -> transfer seconds per run
    pretrain_seconds: list[float] = field(default_factory=list)

    def cell(self, column: str) -> str:
        runs = np.asarray(self.results.get(column, []), dtype=float)
        if not len(runs):
            return "-"
        return mean_std(float(runs.mean()), float(runs.std()), len(runs))

    def label(self) -> str:
        if self.kind == "scratch":
            return self.name
        what = "SSL targets, MSE" if self.kind == "regression" else "labels, CE"
        return f"{os.path.basename(self.name) or self.name} ({what})"


@dataclass
class TransferReport:
    source: str
    target: str
    model: str
    seeds: list[int]
    labelled: dict[str, int]                               # "1%" -> labelled target images
    columns: list[str]
    rows: list[TransferRow]
    config: dict[str, Any]
    ssl: Optional[str] = None

    @staticmethod
    def fraction(f: float) -> str:
        return f"{100 * f:g}%"

    @classmethod
    def column(cls, mode: str, f: float) -> str:
        return f"{mode} {cls.fraction(f)}"

    def title(self) -> str:
        runs = len(self.seeds)
        return (f"Transfer {self.source} → {self.target} ({self.model}; {self.config['pretrain_epochs']} pre-training "
                f"epochs; labels per share: {', '.join(f'{k} = {v}' for k, v in self.labelled.items())}): target "
                f"test accuracy (%), {'mean ± std over ' + str(runs) + ' runs' if runs > 1 else 'one run'}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def rich_table(self) -> Table:
        table = titled_table(self.title())
        table.add_column("pre-trained on")
        for c in self.columns:
            table.add_column(c, justify="right")
        for row in self.rows:
            table.add_row(escape(row.label()), *(row.cell(c) for c in self.columns),
                          style="italic" if row.kind == "scratch" or row.name.startswith("random subset") else None)
        return table

    def markdown(self) -> str:
        lines = [f"**{self.title()}**", "", "| pre-trained on | " + " | ".join(self.columns) + " |",
                 "|---|" + "---:|" * len(self.columns)]
        lines += [f"| {row.label()} | " + " | ".join(row.cell(c) for c in self.columns) + " |" for row in self.rows]
        notes = [f"- {row.name}: {row.note}" for row in self.rows if row.note]
        return "\n".join(lines + ([""] + notes if notes else [])) + "\n"
