"""Tables of a grid report: a rich table for the terminal and a Markdown table for files."""
from __future__ import annotations

import os

from rich.markup import escape
from rich.table import Table

from .results import EvalReport, GridReport


def row_name(report: EvalReport) -> str:
    return report.set if report.reference else (os.path.basename(report.set) or report.method)


def title(grid: GridReport) -> str:
    p = grid.protocol
    runs = len(next(iter(grid.sets[0].results.values())).runs)
    return (f"Test accuracy (%), protocol '{p['name']}' [{p['hash']}] ({p['epochs']} epochs), "
            f"mean ± std over {runs} seeds")


def rich_table(grid: GridReport) -> Table:
    best = len(grid.models) == 1  # a single architecture has room for the best-checkpoint column
    table = Table(title=escape(title(grid)))  # the [hash] is not rich markup
    table.add_column("set")
    for m in grid.models:
        table.add_column(m, justify="right")
        if best:
            table.add_column(f"{m} best-ckpt", justify="right", style="dim")
    for rep in grid.rows:
        cells = []
        for m in grid.models:
            r = rep.results[m]
            cells.append(f"{r.mean:.2f} ± {r.std:.2f}")
            if best:
                cells.append(f"{r.best_mean:.2f} ± {r.best_std:.2f}")
        table.add_row(row_name(rep), *cells, style="italic" if rep.reference else None)
    return table


def markdown(grid: GridReport) -> str:
    p, first = grid.protocol, grid.sets[0]
    lines = [f"## {title(grid)}", "",
             "| set | method | IPC | " + " | ".join(grid.models) + " |",
             "|---|---|---:|" + "---:|" * len(grid.models)]
    for rep in grid.rows:
        cells = [f"{rep.results[m].mean:.2f} ± {rep.results[m].std:.2f}" for m in grid.models]
        lines.append(f"| {row_name(rep)} | {rep.method} | {rep.ipc} | " + " | ".join(cells) + " |")
    trainers = ", ".join(f"{m}: {first.results[m].trainer}" for m in grid.models)
    best = "; ".join(f"{row_name(rep)} " + ", ".join(f"{m} {rep.results[m].best_mean:.2f}"
                                                      for m in grid.models) for rep in grid.rows)
    lines += ["", f"- protocol `{p['name']}` hash `{p['hash']}`: {p['description']}",
              f"- seeds: {first.seeds}; dataset: {first.dataset}; labels: {first.labels}",
              f"- trainer: {trainers}",
              f"- best-checkpoint means (max over test checkpoints, not the headline): {best}", ""]
    return "\n".join(lines)
