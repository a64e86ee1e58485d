"""Tables of a grid report: a rich table for the terminal and a Markdown table for files; the console they are
printed on and the few formatting rules every table shares (mean ± std, plurals)."""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .results import RISING_MARK, RISING_NOTE, EvalReport, GridReport
from ..text import mean_std, plural  # re-exported: scripts and reports format through tables


# Piped or redirected output has no width to fit: rich would otherwise assume 80 columns (or $COLUMNS) and wrap
# rows, which breaks grep and diff. Tables are only as wide as their content, so this is a ceiling, not a padding.
PIPED_WIDTH = 100_000


def console(stderr: bool = False) -> Console:
    """The console tables are printed on: the terminal's width on a tty, rows never wrapped when piped."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else PIPED_WIDTH)


def titled_table(title: str, **options: Any) -> Table:
    """A table at least as wide as its plain-text ``title`` (up to the console's width): rich wraps a title at the
    table's width, so a one-column table would fold its title into a narrow block."""
    return Table(title=escape(title), min_width=cell_len(title), **options)


def row_name(report: EvalReport) -> str:
    return report.set if report.reference else (os.path.basename(report.set) or report.method)


def _grid_runs(grid: GridReport) -> int:
    """Runs per cell (one protocol, one count of seeds for the whole grid)."""
    return len(next(iter(grid.sets[0].results.values())).runs)


def title(grid: GridReport) -> str:
    p = grid.protocol
    runs = _grid_runs(grid)
    spread = f"mean ± std over {runs} seeds" if runs > 1 else "one seed"
    return (f"{grid.sets[0].split.capitalize()} accuracy (%), protocol '{p['name']}' [{p['hash']}] "
            f"({plural(p['epochs'], 'epoch')}), {spread}")


def cell(r) -> str:
    """mean ± std (one run: its value), marked when the curves were still rising (``results.still_rising``)."""
    text = mean_std(r.mean, r.std, len(r.runs))
    return f"{text} {RISING_MARK}" if r.rising else text


def any_rising(grid: GridReport) -> bool:
    """Whether some cell carries the still-rising mark (and so the table its note)."""
    return any(rep.results[m].rising for rep in grid.rows for m in grid.models)


def rich_table(grid: GridReport) -> Table:
    table = titled_table(title(grid), caption=RISING_NOTE if any_rising(grid) else None)
    table.add_column("set")
    for m in grid.models:
        table.add_column(m, justify="right")
    for rep in grid.rows:
        table.add_row(row_name(rep), *(cell(rep.results[m]) for m in grid.models),
                      style="italic" if rep.reference else None)
    return table


def run_count(summary: dict, key: str = "runs") -> Optional[int]:
    """How many runs a stored summary holds (its list of runs, or a positive count), None when it does not say."""
    runs = summary.get(key)
    if isinstance(runs, (list, tuple)):
        return len(runs) or None
    return int(runs) if isinstance(runs, (int, float)) and not isinstance(runs, bool) and runs >= 1 else None


def ior_cell(r: dict) -> str:
    """IOR in signed points, ± its std over the paired runs (one run: the value alone)."""
    return mean_std(r["ior"], r["ior_std"], run_count(r, "random_runs"), "+.2f")


def _ranking_rows(grid: GridReport) -> list[tuple[str, str, str, str, str, str]]:
    return [(row_name(rep), m, ior_cell(r), f"{r['random_mean']:.2f}",
             "–" if r["hlr"] is None else f"{r['hlr']:.2f} (full {r['full_accuracy']:.2f})",
             "–" if r["lrs"] is None else f"{r['lrs']:.3f}")
            for rep in grid.sets if rep.ranking for m, r in rep.ranking.items()]


def ranking_table(grid: GridReport) -> Optional[Table]:
    """DD-Ranking's metrics per set and architecture, when computed."""
    rows = _ranking_rows(grid)
    if not rows:
        return None
    table = titled_table("DD-Ranking metrics (points; LRS from fractions)")
    for col in ("set", "model", "IOR", "random subset", "HLR", "LRS"):
        table.add_column(col, justify="left" if col in ("set", "model") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def summary_cell(summary: dict) -> str:
    """A stored summary ("mean", "std", "runs") as ``cell`` shows a result: one run without a ± 0.00."""
    return mean_std(summary["mean"], summary["std"], run_count(summary))


def _split_rows(grid: GridReport) -> list[tuple[str, ...]]:
    """Per set and architecture under a soft-label protocol: soft labels, argmax labels, the random subset with
    the same soft labels, and the stored bytes of the set (as trained) and of that subset."""
    rows = []
    for rep in grid.sets:
        for m, hard in (rep.argmax or {}).items():
            soft = rep.results[m]
            rnd = (rep.ranking or {}).get(m)
            store = rep.storage or {}
            rows.append((row_name(rep), m, cell(soft), summary_cell(hard),
                         "–" if rnd is None else f"{rnd['random_mean']:.2f} ({store.get('ipc', '?')}/class)",
                         f"{store['set_bytes']:,} / {store['random_bytes']:,}" if store else "–"))
    return rows


SPLIT_COLUMNS = ("set", "model", "soft labels", "argmax labels", "random, same soft labels",
                 "bytes: set / random")


def split_table(grid: GridReport) -> Optional[Table]:
    """What the labels give and what the images give (soft-label protocols), when computed."""
    rows = _split_rows(grid)
    if not rows:
        return None
    table = titled_table("Soft labels vs images: the same recipe and seeds (accuracy %)")
    for col in SPLIT_COLUMNS:
        table.add_column(col, justify="left" if col in ("set", "model") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _curve_split(selection: Optional[dict]) -> str:
    """Where the checkpoint curves were scored (older reports scored them on the whole selection split)."""
    if not selection:
        return "the test split (an earlier version)"
    if "curve_images" not in selection:
        return selection["split"]
    return f"{selection['curve_images']} images of {selection['split']}; selections read all {selection['images']}"


def _ior_spread(grid: GridReport) -> str:
    runs = _grid_runs(grid)
    return f"mean ± std over the {runs} paired runs" if runs > 1 else "from one run (no spread)"


def markdown(grid: GridReport) -> str:
    p, first = grid.protocol, grid.sets[0]
    lines = [f"## {title(grid)}", "",
             "| set | method | IPC | " + " | ".join(grid.models) + " |",
             "|---|---|---:|" + "---:|" * len(grid.models)]
    for rep in grid.rows:
        cells = [cell(rep.results[m]) for m in grid.models]
        lines.append(f"| {row_name(rep)} | {rep.method} | {rep.ipc} | " + " | ".join(cells) + " |")
    trainers = ", ".join(f"{m}: {first.results[m].trainer}" for m in grid.models)
    lines += ["", f"- protocol `{p['name']}` hash `{p['hash']}`: {p['description']}",
              f"- seeds: {first.seeds}; dataset: {first.dataset}; labels: {first.labels}; scored on the "
              f"{first.split} split, read once per network at the end of its training",
              f"- checkpoint curves: {_curve_split(first.selection)}",
              *([f"- {RISING_NOTE}"] if any_rising(grid) else []),
              f"- trainer: {trainers}",
              *(["- learning rate chosen on the selection split (one run per value): " + "; ".join(
                  f"{m} {v['chosen']:g} of {v['grid']}" for m, v in first.lr_selected.items())]
                if first.lr_selected else []),
              *(["- skipped (images do not fit): " + "; ".join(f"{m}: {why.rstrip('.')}" for m, why in first.skipped.items())]
                if first.skipped else []), ""]
    split = _split_rows(grid)
    if split:
        lines += ["### Soft labels vs images", "",
                  "The same recipe and seeds with the set's soft labels, with its argmax labels only, and for a fresh "
                  "random real subset of no more stored bytes labelled by the same teachers (bytes count images, "
                  "decoder arrays and labels as trained: K float32 per image for static soft labels).", "",
                  "| " + " | ".join(SPLIT_COLUMNS) + " |", "|---|---|---:|---:|---:|---:|",
                  *(f"| {' | '.join(r)} |" for r in split), ""]
    rows = _ranking_rows(grid)
    if rows:
        lines += ["### DD-Ranking metrics", "",
                  "IOR: accuracy minus that of a fresh random real subset of the same storage per run (same protocol "
                  "and seeds); HLR: full-data accuracy (`full` protocol) minus the set's; LRS from IOR and HLR as "
                  f"fractions (DD-Ranking's code feeds percentages). Points, {_ior_spread(grid)}.", "",
                  "| set | model | IOR | random subset | HLR | LRS |", "|---|---|---:|---:|---:|---:|",
                  *(f"| {' | '.join(r)} |" for r in rows), ""]
    return "\n".join(lines)
