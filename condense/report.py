"""`condense report`: PNG plots and a Markdown page from `condense eval --json` result files.

Plots (matplotlib, Agg backend, no display needed):
- ``accuracy_vs_ipc.png``: mean ± std test accuracy against IPC, one line per method (one panel per
  dataset x architecture x protocol);
- ``cross_arch.png``: grouped bars, one group per set, one bar per architecture, std as error bars;
- ``curves.png``: test accuracy over training (mean over seeds, std band) and training loss, per set.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any, Sequence

from .errors import CondenseError
from .store import atomic_write


def load_reports(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Every per-set report in the files (single reports and multi-set payloads alike), reference rows included."""
    reports = []
    for path in paths:
        try:
            with open(path) as f:
                blob = json.load(f)
        except FileNotFoundError:
            raise CondenseError(f"Results file {path} does not exist.") from None
        except (OSError, json.JSONDecodeError):
            raise CondenseError(f"Results file {path} is not readable JSON.") from None
        items = blob.get("sets", [blob]) if isinstance(blob, dict) else []
        if isinstance(blob, dict) and blob.get("reference"):
            items = [*items, {**blob["reference"], "reference": True}]
        if not items or not all(isinstance(r, dict) and "results" in r and "protocol" in r for r in items):
            raise CondenseError(f"Results file {path} is not a `condense eval --json` result.")
        reports += [{**r, "source": path} for r in items]
    return reports


def _label(r: dict[str, Any]) -> str:
    return os.path.basename(r["set"]) if r.get("set") else f"{r['method']} ipc{r['ipc']}"


def plot_accuracy_vs_ipc(reports: Sequence[dict[str, Any]], path: str) -> str:
    import matplotlib.pyplot as plt

    # One panel per (dataset, architecture, protocol): a line never joins numbers from two protocols.
    panels: dict[tuple[str, str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in reports:
        if r.get("reference"):
            continue
        for model, res in r["results"].items():
            key = (r["dataset"], model, r["protocol"]["name"])
            panels[key][r["method"]].append((r["ipc"], res["mean"], res["std"]))
    # A panel where no method has two IPCs shows no trend (the cross-arch chart has those numbers).
    keys = [k for k in sorted(panels) if any(len({p[0] for p in pts}) > 1 for pts in panels[k].values())]
    keys = keys or sorted(panels)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
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
    return _save(fig, path, dpi=110)


def _save(fig, path: str, dpi: int) -> str:
    """Lay out, write atomically as PNG, and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    plt.close(fig)
    return path


def plot_cross_arch(reports: Sequence[dict[str, Any]], path: str) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(m for r in reports for m in r["results"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(models) * max(1, len(reports)) / 2 + 2), 4))
    width = 0.8 / max(1, len(reports))
    x = np.arange(len(models))
    for i, r in enumerate(reports):
        means = [r["results"].get(m, {}).get("mean", np.nan) for m in models]
        stds = [r["results"].get(m, {}).get("std", 0) for m in models]
        ax.bar(x + (i - (len(reports) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
               label=("reference: " if r.get("reference") else "") + _label(r).replace("reference: ", ""),
               hatch="//" if r.get("reference") else None)
    ax.set_xticks(x)
    ax.set_xticklabels(models, rotation=20)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Cross-architecture accuracy (mean ± std over seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path, dpi=110)


def plot_curves(reports: Sequence[dict[str, Any]], path: str) -> str:
    """One row per (dataset, architecture): test accuracy (mean ± std band over seeds) and training loss,
    one line per set; the legend sits outside the axes so it never hides a curve."""
    import matplotlib.pyplot as plt
    import numpy as np

    rows = list(dict.fromkeys((r["dataset"], m) for r in reports for m, res in r["results"].items()
                              if any(res.get("curves", []))))  # results without curves get no empty row
    rows = rows or list(dict.fromkeys((r["dataset"], m) for r in reports for m in r["results"]))
    fig, axes = plt.subplots(len(rows), 2, figsize=(13, 3.4 * len(rows)), squeeze=False)
    colours = plt.get_cmap("tab20" if len(reports) > 10 else "tab10").colors
    for (acc_ax, loss_ax), (dataset, model) in zip(axes, rows):
        for i, r in enumerate(reports):
            res = r["results"].get(model, {}) if r["dataset"] == dataset else {}
            curves = [c for c in res.get("curves", []) if c]
            if not curves:
                continue
            colour = colours[i % len(colours)]
            epochs = [e for e, _ in curves[0]]
            acc = np.array([[a for _, a in c] for c in curves if len(c) == len(epochs)])
            acc_ax.plot(epochs, acc.mean(0), marker=".", color=colour, label=_label(r))
            acc_ax.fill_between(epochs, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), alpha=0.15, color=colour)
            losses = [c for c in res.get("loss_curves", []) if c]
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
    return _save(fig, path, dpi=100)


def _table(reports: Sequence[dict[str, Any]]) -> list[str]:
    models = list(dict.fromkeys(m for r in reports for m in r["results"]))
    lines = ["| set | method | dataset | IPC | protocol [hash] | " + " | ".join(models) + " |",
             "|---|---|---|---:|---|" + "---:|" * len(models)]
    for r in reports:
        cells = [f"{r['results'][m]['mean']:.2f} ± {r['results'][m]['std']:.2f} (n={len(r['results'][m]['runs'])})"
                 if m in r["results"] else "–" for m in models]
        name = ("reference: " if r.get("reference") else "") + _label(r).replace("reference: ", "")
        lines.append(f"| {name} | {r['method']} | {r['dataset']} | {r['ipc']} | "
                     f"{r['protocol']['name']} [{r['protocol']['hash']}] | " + " | ".join(cells) + " |")
    return lines


def write_report(paths: Sequence[str], out: str) -> str:
    """Write the PNGs and ``README.md`` into ``out`` from result files; returns the Markdown path."""
    return render_report(load_reports(paths), out, sources=paths)


def render_report(reports: Sequence[dict[str, Any]], out: str, sources: Sequence[str]) -> str:
    """Write the PNGs and ``README.md`` into ``out`` from per-set reports; returns the Markdown path.

    The cross-architecture chart shows only the sets evaluated on more than one architecture, and is
    left out when there are none.
    """
    import matplotlib

    matplotlib.use("Agg")
    os.makedirs(out, exist_ok=True)
    plot_accuracy_vs_ipc(reports, os.path.join(out, "accuracy_vs_ipc.png"))
    crossed = [r for r in reports if len(r["results"]) > 1]
    if crossed:
        plot_cross_arch(crossed, os.path.join(out, "cross_arch.png"))
    plot_curves(reports, os.path.join(out, "curves.png"))
    hashes = sorted({r["protocol"]["hash"] for r in reports})
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
        p = r["protocol"]
        if p["hash"] in seen:
            continue
        seen.add(p["hash"])
        lines += [f"- `{p['name']}` [{p['hash']}]: {p.get('description', '')} (epochs {p.get('epochs')}, batch "
                  f"{p.get('batch_size')}, {p.get('optimizer', 'sgd')} lr {p.get('lr')}, {p.get('schedule', 'step')} schedule, augment "
                  f"{p.get('augment', 'dsa')}, labels {p.get('labels', 'hard')})"]
    page = os.path.join(out, "README.md")
    text = "\n".join(lines) + "\n"
    atomic_write(page, lambda tmp: open(tmp, "w").write(text))
    return page
