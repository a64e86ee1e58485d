"""`condense report`: PNG plots and a Markdown page from `condense eval --json` result files.

Plots (matplotlib figures without pyplot: no display, no global backend switch):
- ``accuracy_vs_ipc.png``: mean ± std test accuracy against IPC, one line per method (one panel per
  dataset x architecture x protocol);
- ``cross_arch.png``: grouped bars, one group per set, one bar per architecture, std as error bars;
- ``curves.png``: test accuracy over training (mean over seeds, std band) and training loss, per set.
"""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Sequence

import numpy as np
from matplotlib import colormaps

from ..figures import new_figure, save_figure
from ..io import write_text
from .results import EvalReport, load_reports


def _label(r: EvalReport) -> str:
    name = os.path.basename(r.set) if r.set else r.name
    return name if not r.reference or name.startswith("reference") else f"reference: {name}"


def plot_accuracy_vs_ipc(reports: Sequence[EvalReport], path: str) -> str:
    # One panel per (dataset, architecture, protocol): a line never joins numbers from two protocols.
    panels: dict[tuple[str, str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in reports:
        if r.reference:
            continue
        for model, res in r.results.items():
            panels[(r.dataset, model, r.protocol["name"])][r.method].append((r.ipc, res.mean, res.std))
    # A panel where no method has two IPCs shows no trend (the cross-arch chart has those numbers).
    keys = [k for k in sorted(panels) if any(len({p[0] for p in pts}) > 1 for pts in panels[k].values())]
    keys = keys or sorted(panels)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = new_figure(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        for method, pts in sorted(panels[key].items()):
            pts.sort()
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                        capsize=3, label=method)
        ax.set_xscale("log")
        ipcs = sorted({p[0] for pts in panels[key].values() for p in pts})
        ax.set_xticks(ipcs)
        ax.set_xticklabels([str(i) for i in ipcs])
        ax.set_title(f"{key[0]}, {key[1]}, {key[2]} protocol")
        ax.set_xlabel("images per class (IPC)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)


def plot_cross_arch(reports: Sequence[EvalReport], path: str) -> str:
    models = list(dict.fromkeys(m for r in reports for m in r.results))
    fig, ax = new_figure(figsize=(max(6, 1.2 * len(models) * max(1, len(reports)) / 2 + 2), 4))
    width = 0.8 / max(1, len(reports))
    x = np.arange(len(models))
    for i, r in enumerate(reports):
        means = [r.results[m].mean if m in r.results else np.nan for m in models]
        stds = [r.results[m].std if m in r.results else 0 for m in models]
        ax.bar(x + (i - (len(reports) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=_label(r),
               hatch="//" if r.reference else None)
    ax.set_xticks(x)
    ax.set_xticklabels(models, rotation=20)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Cross-architecture accuracy (mean ± std over seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)


def plot_curves(reports: Sequence[EvalReport], path: str) -> str:
    """One row per (dataset, architecture): test accuracy (mean ± std band over seeds) and training loss,
    one line per set; the legend sits outside the axes so it never hides a curve."""
    rows = list(dict.fromkeys((r.dataset, m) for r in reports for m, res in r.results.items()
                              if any(res.curves)))  # results without curves get no empty row
    rows = rows or list(dict.fromkeys((r.dataset, m) for r in reports for m in r.results))
    fig, axes = new_figure(len(rows), 2, figsize=(13, 3.4 * len(rows)), squeeze=False)
    colours = colormaps["tab20" if len(reports) > 10 else "tab10"].colors
    for (acc_ax, loss_ax), (dataset, model) in zip(axes, rows):
        for i, r in enumerate(reports):
            res = r.results.get(model) if r.dataset == dataset else None
            curves = [c for c in res.curves if c] if res else []
            if not curves:
                continue
            colour = colours[i % len(colours)]
            epochs = [e for e, _ in curves[0]]
            acc = np.array([[a for _, a in c] for c in curves if len(c) == len(epochs)])
            acc_ax.plot(epochs, acc.mean(0), marker=".", color=colour, label=_label(r))
            acc_ax.fill_between(epochs, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), alpha=0.15, color=colour)
            losses = [c for c in res.loss_curves if c]
            if losses:
                loss_ax.plot([e for e, _ in losses[0]], [v for _, v in losses[0]], marker=".", color=colour,
                             label=_label(r))
        acc_ax.set_title(f"{dataset}, {model}: test accuracy (mean ± std over seeds)", fontsize=10)
        acc_ax.set_ylabel("test accuracy (%)")
        loss_ax.set_title(f"{dataset}, {model}: training loss (mean over seeds)", fontsize=10)
        loss_ax.set_yscale("log")
        for ax in (acc_ax, loss_ax):
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        handles, labels = acc_ax.get_legend_handles_labels()
        if handles:
            loss_ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save_figure(fig, path, dpi=100)


def _table(reports: Sequence[EvalReport]) -> list[str]:
    models = list(dict.fromkeys(m for r in reports for m in r.results))
    lines = ["| set | method | dataset | IPC | protocol [hash] | " + " | ".join(models) + " |",
             "|---|---|---|---:|---|" + "---:|" * len(models)]
    for r in reports:
        cells = [f"{r.results[m].mean:.2f} ± {r.results[m].std:.2f} (n={len(r.results[m].runs)})"
                 if m in r.results else "–" for m in models]
        lines.append(f"| {_label(r)} | {r.method} | {r.dataset} | {r.ipc} | "
                     f"{r.protocol['name']} [{r.protocol['hash']}] | " + " | ".join(cells) + " |")
    return lines


def write_report(paths: Sequence[str], out: str) -> str:
    """Write the PNGs and ``README.md`` into ``out`` from result files; returns the Markdown path."""
    return render_report(load_reports(paths), out, sources=paths)


def render_report(reports: Sequence[EvalReport], out: str, sources: Sequence[str]) -> str:
    """Write the PNGs and ``README.md`` into ``out`` from per-set reports; returns the Markdown path.

    The cross-architecture chart shows only the sets evaluated on more than one architecture, and is
    left out when there are none.
    """
    os.makedirs(out, exist_ok=True)
    plot_accuracy_vs_ipc(reports, os.path.join(out, "accuracy_vs_ipc.png"))
    crossed = [r for r in reports if len(r.results) > 1]
    if crossed:
        plot_cross_arch(crossed, os.path.join(out, "cross_arch.png"))
    plot_curves(reports, os.path.join(out, "curves.png"))
    hashes = sorted({r.protocol["hash"] for r in reports})
    lines = ["# Evaluation report", "", f"Sources: {', '.join(f'`{p}`' for p in sources)}.", ""]
    if len(hashes) > 1:
        lines += [f"**Warning:** these results use {len(hashes)} different protocols ({', '.join(hashes)}); "
                  "numbers across protocols are not comparable.", ""]
    lines += ["## Accuracy (%)", "", *_table(reports), "",
              "## Accuracy vs IPC", "", "![accuracy vs IPC](accuracy_vs_ipc.png)", "",
              *(["## Cross-architecture", "", "![cross-architecture](cross_arch.png)", ""] if crossed else []),
              "## Training curves", "", "![training curves](curves.png)", "",
              "## Protocols", ""]
    seen = set()
    for r in reports:
        p = r.protocol
        if p["hash"] in seen:
            continue
        seen.add(p["hash"])
        lines += [f"- `{p['name']}` [{p['hash']}]: {p.get('description', '')} (epochs {p.get('epochs')}, batch "
                  f"{p.get('batch_size')}, {p.get('optimizer', 'sgd')} lr {p.get('lr')}, {p.get('schedule', 'step')} schedule, augment "
                  f"{p.get('augment', 'dsa')}, labels {p.get('labels', 'hard')})"]
    return write_text(os.path.join(out, "README.md"), "\n".join(lines) + "\n")
