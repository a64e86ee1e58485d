"""Compare distillation methods and coresets under one protocol (a reference script, not library code).

    nice -n 5 python scripts/compare_methods.py --worker 0/2 &     # run cells, two processes
    nice -n 5 python scripts/compare_methods.py --worker 1/2 &
    python scripts/compare_methods.py --report                     # merge, print, write JSON + Markdown

Each cell = (row, IPC, seed): distil on the dataset with that seed, then train one fresh
network (--eval-model; default ConvNetW32 to fit a CPU budget) under the named protocol with the same seed and
record its test accuracy. Mean ± std is over seeds. Finished cells are kept in
eval/compare/<dataset>_w<i>.json, so an interrupted worker continues where it stopped.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import tempfile
import time

import torch

from condense.data import load_dataset
from condense.device import resolve_device
from condense.evaluation import evaluate
from condense.io import atomic_write, write_json, write_text
from condense.synth import distill, prepare

# row -> (method, options). Distillation budgets are set by --iterations / --gm-iterations.
ROWS: dict[str, tuple[str, dict]] = {
    "random": ("random", {}),
    "herding": ("herding", {}),
    "kcenter": ("kcenter", {}),
    "kmeans": ("kmeans", {}),
    "dm": ("dm", {}),
    "datadam p=1": ("datadam", {"power": 1.0}),
    "datadam p=4": ("datadam", {"power": 4.0}),
    "dc": ("dc", {"init": "real"}),
    "dsa": ("dsa", {}),
    "dm --flip": ("dm", {"flip": True}),
    "datadam --flip": ("datadam", {"flip": True}),
}
# Cells run in this order (IPC 10 first: the must-beat-random rows), interleaved over workers.
PRIORITY = ["random", "datadam p=1", "datadam p=4", "dsa", "dm", "herding", "kcenter", "kmeans", "dc",
            "dm --flip", "datadam --flip"]


def cells(args):
    rows = [r for r in PRIORITY if not args.rows or r in args.rows]
    return [(row, ipc, seed) for ipc in args.ipcs for row in rows for seed in args.seeds]


def cell_key(row, ipc, seed):
    return f"{row}|ipc{ipc}|seed{seed}"


def feature_weights(args, data, seed, folder):
    """One briefly trained feature ConvNet per seed, shared by the three coresets and both IPCs."""
    tag = "_".join(f"{k}{v}" for k, v in sorted(args.model_args.items()))
    path = os.path.join(folder, f"features_{args.dataset}_{tag}_seed{seed}.pt")
    if not os.path.exists(path):
        method = prepare("herding", data, 1, model_args=args.model_args, seed=seed, device=args.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = method.feature_network()
        atomic_write(path, lambda tmp: torch.save(net.state_dict(), tmp))  # workers share the cache
    return path


def run_cell(args, data, row, ipc, seed, folder):
    method, options = ROWS[row]
    options = dict(options)
    if method in ("dm", "datadam"):
        options.update(iterations=args.iterations, batch_real=args.batch_real)
    elif method in ("dc", "dsa"):
        options.update(iterations=args.gm_iterations[0 if ipc == 1 else 1], batch_real=args.batch_real)
    elif method in ("herding", "kcenter", "kmeans"):
        options.update(feature_weights=feature_weights(args, data, seed, folder))
    t0 = time.perf_counter()
    synth = distill(method, data, ipc, model_args=args.model_args, seed=seed, device=args.device, **options)
    distill_s = time.perf_counter() - t0
    report = evaluate(synth, models=(args.eval_model,), runs=1, protocol=args.protocol, dataset=data,
                      device=args.device, seed=seed)
    r = report.results[args.eval_model]
    return {"row": row, "method": method, "ipc": ipc, "seed": seed, "accuracy": r.runs[0],
            "best_ckpt": r.best_runs[0], "distill_seconds": distill_s, "eval_seconds": r.seconds[0],
            "options": {k: v for k, v in options.items() if k != "feature_weights"},
            "iterations_done": synth.iterations_done}


def work(args):
    torch.set_num_threads(args.threads)
    index, total = (int(v) for v in args.worker.split("/"))
    os.makedirs(args.out_dir, exist_ok=True)
    out = os.path.join(args.out_dir, f"{args.dataset}_w{index}.json")
    done = json.load(open(out)) if os.path.exists(out) else {"settings": vars(args), "cells": {}}
    args.device = str(resolve_device(args.device))
    data = load_dataset(args.dataset, device=args.device)
    folder = os.path.join(tempfile.gettempdir(), "condense_compare")
    os.makedirs(folder, exist_ok=True)
    for i, (row, ipc, seed) in enumerate(cells(args)):
        key = cell_key(row, ipc, seed)
        if i % total != index or key in done["cells"]:
            continue
        result = run_cell(args, data, row, ipc, seed, folder)
        done["cells"][key] = result
        write_json(out, done, indent=1)
        print(f"{key}: {result['accuracy']:.2f}% (distil {result['distill_seconds']:.0f} s, "
              f"eval {result['eval_seconds']:.0f} s)", flush=True)


def report(args):
    from condense.evaluation.tables import console, summary_cell, titled_table

    found, settings = {}, None
    # workers may write to sub-folders of --out-dir (e.g. one per IPC)
    for path in sorted(glob.glob(os.path.join(args.out_dir, "**", f"{args.dataset}_w*.json"), recursive=True)):
        payload = json.load(open(path))
        settings = settings or payload["settings"]
        found.update(payload["cells"])
    summary = {}
    for row in ROWS:
        for ipc in args.ipcs:
            accs = [c["accuracy"] for c in found.values() if c["row"] == row and c["ipc"] == ipc]
            if accs:
                summary[f"{row}|ipc{ipc}"] = {"mean": statistics.mean(accs),
                                              "std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
                                              "n": len(accs), "runs": accs}
    s = settings or vars(args)
    title = (f"{args.dataset}: {s.get('eval_model', 'ConvNet')} test accuracy (%), mean ± std over seeds; "
             f"protocol '{s['protocol']}', distilled with ConvNet {s['model_args']}, {s['iterations']} DM/DataDAM "
             f"iterations, DC/DSA {s['gm_iterations']} iterations at IPC 1 / 10, batch_real {s['batch_real']}")
    table = titled_table(title)
    table.add_column("method")
    for ipc in args.ipcs:
        table.add_column(f"IPC {ipc}", justify="right")
    lines = [f"# {title}", "", "| method | " + " | ".join(f"IPC {i}" for i in args.ipcs) + " |",
             "|---|" + "---:|" * len(args.ipcs)]
    for row in ROWS:
        cells_ = []
        for ipc in args.ipcs:
            v = summary.get(f"{row}|ipc{ipc}")
            cells_.append(f"{summary_cell(v)} (n={v['n']})" if v else "-")
        table.add_row(row, *cells_)
        lines.append(f"| {row} | " + " | ".join(cells_) + " |")
    console().print(table)
    base = os.path.join(args.out_dir, args.dataset)
    write_json(base + ".json", {"settings": s, "summary": summary, "cells": found}, indent=1)
    write_text(base + ".md", "\n".join(lines) + "\n")
    print(f"wrote {base}.json and {base}.md")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--ipcs", type=int, nargs="+", default=[10, 1])
    p.add_argument("--rows", nargs="+", default=None, help="only these rows (e.g. dsa 'datadam p=1')")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=80, help="DM / DataDAM iterations")
    p.add_argument("--gm-iterations", type=int, nargs=2, default=[60, 2], metavar=("IPC1", "IPC_MORE"),
                   help="DC / DSA outer iterations at IPC 1 and above (official loop table per IPC)")
    p.add_argument("--batch-real", type=int, default=32)
    p.add_argument("--model-args", type=json.loads, default={"width": 32}, help="distillation network (JSON)")
    p.add_argument("--protocol", default="fast")
    p.add_argument("--eval-model", default="ConvNetW32", help="architecture trained on each set (ConvNet = width 128)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--out-dir", default=os.path.join("eval", "compare"))
    p.add_argument("--worker", default="0/1", help="i/n: run every n-th cell starting at i")
    p.add_argument("--report", action="store_true")
    args = p.parse_args()
    report(args) if args.report else work(args)


if __name__ == "__main__":
    main()
