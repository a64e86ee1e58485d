"""`condense report`: PNG plots and a Markdown page from result files (see ``result_files``).

Plots (matplotlib figures without pyplot: no display, no global backend switch), each panel holding one
dataset under one protocol (so 50- and 300-epoch runs never share an axis) and at most ``MAX_SERIES`` series
(more are split over further panels), with the legend beside the axes, never over the data:
- ``accuracy_vs_ipc.png``: mean ± std test accuracy against IPC, one line per method with at least two IPCs
  (left out when no method has two); a method with two sets at one IPC in a panel (two recipes, e.g. the zoo's
  ``cifar10_dm_ipc10`` and ``cifar10_dm_cpu_ipc10``) gets one line per recipe, named by the set files without
  their IPC, never one line through both; series are nudged sideways so equal points stay visible;
- ``cross_arch.png``: grouped bars, one group per architecture, one bar per set, std as error bars (none for a
  single run, whose spread is unknown);
- ``curves.png``: selection-split accuracy over training (mean over seeds, std band) and training loss, the
  epoch axis from 0 with ticks at the checkpoints (integer ticks when there are many), so a protocol that keeps
  two checkpoints shows two points late in training, not a curve over the whole axis.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import Optional, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.ticker import MaxNLocator

from ..figures import new_figure, save_figure
from ..io import write_text
from .results import RISING_MARK, RISING_NOTE, EvalReport, load_reports
from .tables import mean_std


MAX_SERIES = 8
BASELINE = "random"  # the random real subset: repeated, dashed, in every part of a split panel
DODGE = 0.012  # sideways step between accuracy-vs-IPC series, in decades of the log IPC axis
MAX_EPOCH_TICKS = 12  # up to this many checkpoints, the epoch axis ticks exactly at them


def _label(r: EvalReport) -> str:
    name = os.path.basename(r.set) if r.set else r.name
    return name if not r.reference or name.startswith("reference") else f"reference: {name}"


def _chunks(items: Sequence, size: int = MAX_SERIES) -> list[list]:
    """``items`` in as few parts of at most ``size`` as possible, the parts as even as possible."""
    items = list(items)
    parts = max(1, -(-len(items) // size))
    step = -(-len(items) // parts) if items else 0
    return [items[i:i + step] for i in range(0, len(items), step)] if items else []


def _panels(n: int, cols: int, width: float, height: float):
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = new_figure(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _legend_beside(ax, **options) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                  **options)


def _part(title: str, i: int, n: int) -> str:
    return title if n == 1 else f"{title} ({i + 1}/{n})"


def _headline_model(r: EvalReport) -> str:
    return "ConvNet" if "ConvNet" in r.results else next(iter(r.results))


def _recipe(r: EvalReport) -> str:
    """The set's file name without extension and IPC token: ``cifar10_dm_cpu_ipc10.h5`` -> ``cifar10_dm_cpu``."""
    name = os.path.splitext(os.path.basename(r.set or r.name))[0]
    return re.sub(r"_?ipc\d+", "", name) or name


def _is_baseline(series: str) -> bool:
    return series == BASELINE or series.startswith(BASELINE + " (")


def _series_names(reports: Sequence[EvalReport]) -> list[str]:
    """Each report's series in its accuracy-vs-IPC panel: its method, or ``method (recipe)`` when that method has
    two sets at one IPC there (one line through both would join two recipes and jump at that IPC)."""
    seen: dict[tuple, int] = defaultdict(int)
    for r in reports:
        seen[(r.dataset, r.protocol["name"], _headline_model(r), r.method, r.ipc)] += 1
    clash = {k[:4] for k, n in seen.items() if n > 1}
    return [f"{r.method} ({_recipe(r)})" if (r.dataset, r.protocol["name"], _headline_model(r), r.method) in clash
            else r.method for r in reports]


def ipc_panels(reports: Sequence[EvalReport]) -> tuple[dict, list[tuple[tuple[str, str, str], list[str], int, int]]]:
    """The points (per panel key (dataset, protocol, architecture), per series: (IPC, mean, std)) and the panels
    of the accuracy-vs-IPC plot: (key, series, part, parts); only series with at least two IPCs. A series is a
    method, split by recipe where it has two sets at one IPC (``_series_names``)."""
    panels: dict[tuple[str, str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    reports = [r for r in reports if not r.reference]
    for r, series in zip(reports, _series_names(reports)):
        model = _headline_model(r)
        res = r.results[model]
        panels[(r.dataset, r.protocol["name"], model)][series].append((r.ipc, res.mean, res.std))
    jobs = []
    for key in sorted(panels):
        trends = sorted(m for m, pts in panels[key].items() if len({p[0] for p in pts}) > 1)
        baseline = [m for m in trends if _is_baseline(m)]  # drawn in every part of a split panel, for comparison
        parts = _chunks([m for m in trends if m not in baseline], MAX_SERIES - len(baseline)) or [[]]
        jobs += [(key, part + baseline, i, len(parts)) for i, part in enumerate(parts) if part + baseline]
    return panels, jobs


def plot_accuracy_vs_ipc(reports: Sequence[EvalReport], path: str) -> Optional[str]:
    """One panel per (dataset, protocol) of each report's headline architecture (ConvNet when present), one line
    per method that has at least two IPCs; None (no file) when no method has two: one point shows no trend."""
    panels, jobs = ipc_panels(reports)
    if not jobs:
        return None
    fig, axes = _panels(len(jobs), 2, 6.2, 3.8)
    for ax, (key, methods, i, n) in zip(axes, jobs):
        for j, method in enumerate(methods):
            pts = sorted(panels[key][method])
            style = {"color": "black", "linestyle": "--"} if _is_baseline(method) else {}
            nudge = 10 ** (DODGE * (j - (len(methods) - 1) / 2))  # equal points side by side, not on top
            ax.errorbar([p[0] * nudge for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                        capsize=3, label=method, **style)
        every = [p for m in panels[key].values() for p in m]  # parts of one panel share the y range
        low, high = min(p[1] - p[2] for p in every), max(p[1] + p[2] for p in every)
        ax.set_ylim(low - 0.05 * (high - low + 1), high + 0.05 * (high - low + 1))
        ipcs = sorted({p[0] for m in methods for p in panels[key][m]})
        ax.set_xscale("log")
        ax.set_xticks(ipcs)
        ax.set_xticklabels([str(i) for i in ipcs])
        ax.minorticks_off()
        ax.set_title(_part(f"{key[0]}, {key[2]}, {key[1]} protocol", i, n), fontsize=10)
        ax.set_xlabel("images per class (IPC)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        _legend_beside(ax)
    return save_figure(fig, path, dpi=110)


def bar_error(res) -> float:
    """The error bar of one result: its std over seeds, or NaN (no bar) for a single run, whose spread is unknown."""
    return res.std if len(res.runs) > 1 else float("nan")


def plot_cross_arch(reports: Sequence[EvalReport], path: str) -> str:
    """One panel per (dataset, protocol) and at most MAX_SERIES sets: bars per architecture, one per set."""
    groups: dict[tuple[str, str], list[EvalReport]] = defaultdict(list)
    for r in reports:
        groups[(r.dataset, r.protocol["name"])].append(r)
    jobs = [(key, part, i, len(parts)) for key in sorted(groups) for parts in [_chunks(groups[key])]
            for i, part in enumerate(parts)]
    widest = max(len({m for r in part for m in r.results}) for _, part, _, _ in jobs)
    fig, axes = _panels(len(jobs), 1, max(7.0, 0.9 * widest + 4), 3.6)
    for ax, (key, part, i, n) in zip(axes, jobs):
        models = list(dict.fromkeys(m for r in part for m in r.results))
        width = 0.8 / len(part)
        x = np.arange(len(models))
        for j, r in enumerate(part):
            means = [r.results[m].mean if m in r.results else np.nan for m in models]
            stds = [bar_error(r.results[m]) if m in r.results else 0 for m in models]
            ax.bar(x + (j - (len(part) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=_label(r),
                   hatch="//" if r.reference else None)
        ax.set_xticks(x)
        ax.set_xticklabels(models, rotation=20)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(_part(f"{key[0]}, {key[1]} protocol: accuracy per architecture (mean ± std over seeds; "
                           "no bar: one run)", i, n), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        _legend_beside(ax)
    return save_figure(fig, path, dpi=110)


def curve_panels(reports: Sequence[EvalReport]) -> list[tuple[tuple[str, str, str], list[EvalReport], int, int]]:
    """The rows of the curves plot: ((dataset, architecture, protocol), sets, part, parts), at most MAX_SERIES sets
    each; a protocol fixes the epochs, so runs of different lengths never share an axis."""
    groups: dict[tuple[str, str, str], list[EvalReport]] = defaultdict(list)
    for r in reports:
        for m, res in r.results.items():
            if any(res.curves):
                groups[(r.dataset, m, r.protocol["name"])].append(r)
    if not groups:  # no curves at all: one empty row says so rather than no file
        groups = {(r.dataset, m, r.protocol["name"]): [] for r in reports[:1] for m in list(r.results)[:1]}
    return [(key, part, i, len(parts)) for key in sorted(groups) for parts in [_chunks(groups[key]) or [[]]]
            for i, part in enumerate(parts)]


def epoch_axis(ax, epochs: set) -> None:
    """The epoch axis from 0 (training starts there, whatever the first checkpoint), ticked at the checkpoints when
    there are at most MAX_EPOCH_TICKS of them, else at integers."""
    if epochs:
        ax.set_xlim(0, max(epochs) * 1.04)
    if 0 < len(epochs) <= MAX_EPOCH_TICKS:
        ax.set_xticks(sorted(epochs))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_curves(reports: Sequence[EvalReport], path: str) -> str:
    """One row per (dataset, architecture, protocol) and at most MAX_SERIES sets: accuracy over training (mean ±
    std band over seeds) beside the training loss; the legend sits right of the loss axes."""
    jobs = curve_panels(reports)
    fig, axes = new_figure(len(jobs), 2, figsize=(13, 3.4 * len(jobs)), squeeze=False)
    colours = colormaps["tab10"].colors
    for (acc_ax, loss_ax), ((dataset, model, protocol), part, i, n) in zip(axes, jobs):
        checkpoints = set()
        for j, r in enumerate(part):
            res = r.results[model]
            curves = [c for c in res.curves if c]
            colour = colours[j % len(colours)]
            epochs = [e for e, _ in curves[0]]
            checkpoints.update(epochs)
            acc = np.array([[a for _, a in c] for c in curves if len(c) == len(epochs)])
            acc_ax.plot(epochs, acc.mean(0), marker=".", color=colour, label=_label(r))
            acc_ax.fill_between(epochs, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), alpha=0.15, color=colour)
            losses = [c for c in res.loss_curves if c]
            if losses:
                loss_ax.plot([e for e, _ in losses[0]], [v for _, v in losses[0]], marker=".", color=colour,
                             label=_label(r))
        title = f"{dataset}, {model}, {protocol} protocol"
        acc_ax.set_title(_part(f"{title}: accuracy (mean ± std over seeds)", i, n), fontsize=10)
        acc_ax.set_ylabel("accuracy (%)")
        loss_ax.set_title(_part(f"{title}: training loss (first seed)", i, n), fontsize=10)
        if loss_ax.lines:
            loss_ax.set_yscale("log")
        for ax in (acc_ax, loss_ax):
            ax.set_xlabel("epoch")
            epoch_axis(ax, checkpoints)
            ax.grid(alpha=0.3)
        handles, labels = acc_ax.get_legend_handles_labels()
        if handles:
            loss_ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return save_figure(fig, path, dpi=100)


def _cell(res) -> str:
    n = len(res.runs)  # results of several files: each cell says how many runs it holds
    text = f"{mean_std(res.mean, res.std, n)} ({'one run' if n == 1 else f'n={n}'})"
    return f"{text} {RISING_MARK}" if res.rising else text


def _table(reports: Sequence[EvalReport]) -> list[str]:
    models = list(dict.fromkeys(m for r in reports for m in r.results))
    lines = ["| set | method | dataset | IPC | protocol [hash] | " + " | ".join(models) + " |",
             "|---|---|---|---:|---|" + "---:|" * len(models)]
    for r in reports:
        cells = [_cell(r.results[m]) if m in r.results else "–" for m in models]
        lines.append(f"| {_label(r)} | {r.method} | {r.dataset} | {r.ipc} | "
                     f"{r.protocol['name']} [{r.protocol['hash']}] | " + " | ".join(cells) + " |")
    return lines


def _protocol_line(p: dict) -> str:
    if "epochs" not in p:  # only a name and hash were recorded (the recipe is not in the source)
        return f"- `{p['name']}` [{p['hash']}]: {p.get('description', '')}"
    return (f"- `{p['name']}` [{p['hash']}]: {p.get('description', '')} (epochs {p.get('epochs')}, batch "
            f"{p.get('batch_size')}, {p.get('optimizer', 'sgd')} lr {p.get('lr')}, {p.get('schedule', 'step')} "
            f"schedule, augment {p.get('augment', 'dsa')}, labels {p.get('labels', 'hard')})")


def write_report(paths: Sequence[str], out: str) -> str:
    """Write the PNGs and ``README.md`` into ``out`` from ``condense eval --json`` files; returns the Markdown path."""
    return render_report(load_reports(paths), out, sources=paths)


def render_report(reports: Sequence[EvalReport], out: str, sources: Sequence[str],
                  tables: Sequence[tuple[str, Sequence[str]]] = ()) -> str:
    """Write the PNGs and ``README.md`` into ``out`` from per-set reports (and ``tables``: titled Markdown of
    files with other numbers); returns the Markdown path.

    The accuracy-vs-IPC plot is left out when no method has two IPCs, the cross-architecture chart when no set
    was evaluated on more than one architecture.
    """
    os.makedirs(out, exist_ok=True)
    lines = ["# Evaluation report", "", f"Sources: {', '.join(f'`{p}`' for p in sources)}.", ""]
    if reports:
        trend = plot_accuracy_vs_ipc(reports, os.path.join(out, "accuracy_vs_ipc.png"))
        crossed = [r for r in reports if len(r.results) > 1]
        if crossed:
            plot_cross_arch(crossed, os.path.join(out, "cross_arch.png"))
        plot_curves(reports, os.path.join(out, "curves.png"))
        hashes = sorted({r.protocol["hash"] for r in reports})
        if len(hashes) > 1:
            lines += [f"**Warning:** these results use {len(hashes)} different protocols ({', '.join(hashes)}); "
                      "numbers across protocols are not comparable.", ""]
        rising = any(res.rising for r in reports for res in r.results.values())
        lines += ["## Accuracy (%)", "", *_table(reports), "", *([RISING_NOTE, ""] if rising else []),
                  *(["## Accuracy vs IPC", "", "![accuracy vs IPC](accuracy_vs_ipc.png)", ""] if trend else []),
                  *(["## Cross-architecture", "", "![cross-architecture](cross_arch.png)", ""] if crossed else []),
                  "## Training curves", "", "![training curves](curves.png)", "", "## Protocols", ""]
        seen = set()
        for r in reports:
            if r.protocol["hash"] not in seen:
                seen.add(r.protocol["hash"])
                lines.append(_protocol_line(r.protocol))
        lines.append("")
    for title, table in tables:
        lines += [f"## {title}", "", *table, ""]
    return write_text(os.path.join(out, "README.md"), "\n".join(lines).rstrip("\n") + "\n")
