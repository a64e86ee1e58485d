"""Accuracy against distillation minutes, for any method: snapshots of one run, each evaluated.

    python scripts/time_to_accuracy.py distill --method idm --dataset imagefolder:DIR --ipc 10 \
        --minutes 5 15 30 60 120 --out runs/tta/cifar10_idm_ipc10 [--set KEY=VALUE ...] [--validation 0.1]
    python scripts/time_to_accuracy.py eval runs/tta/cifar10_idm_ipc10 --protocol standard --runs 3 \
        [--split validation] [--reference random]
    python scripts/time_to_accuracy.py plot runs/tta/*/ --out eval/tta/cifar10_ipc10.png
    python scripts/time_to_accuracy.py rank runs/screen/*/ --minutes 15 --protocol fast --split validation

``distill`` runs one distillation (resumable: rerun with the same arguments after a kill) and saves
the set each time its distillation time crosses a mark: ``snap_<minutes>min.h5`` (plus the
real-image start, ``snap_0min.h5``). Distillation time is the sum of the outer iterations' wall
time plus the set-up (data, pool), measured in this process; run it alone on the machine.
``eval`` trains networks on every snapshot under one protocol and writes ``results_<protocol>.json``
beside them (``--split validation`` scores on the held-out validation split, for selecting
settings). ``rank`` orders runs by their snapshot at a mark (the screen's selection). ``plot`` draws
accuracy against minutes for several runs and writes their table.

Both tables flag a run whose accuracy was still rising at the end of its budget (``rank``: at the ranked
mark, column "still rising at the mark"; ``plot``: at its last snapshot, column "still rising", filled on
each run's last row), i.e. the budget was too small to show what the method can do. Rule: take the
last snapshot at or before the mark and the one before it; gain = mean(last) - mean(previous); the run
is still rising if gain > max(0.5 point, 2 * sqrt(std_last^2 / n_last + std_prev^2 / n_prev)), n being
the number of evaluation runs behind each row (the length of the row's ``runs`` list; 1 if a row has
none, where a single run has std 0 and only the 0.5-point floor applies). "yes" / "no", or "–" when
only one snapshot is at or before the mark (nothing to compare).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time

from condense.data import ValidationSpec
from condense.evaluation import evaluate, get_protocol
from condense.evaluation.tables import mean_std, run_count as stored_run_count
from condense.figures import new_figure, save_figure
from condense.io import write_json, write_text
from condense.store import SynthSet
from condense.synth import checkpoint_path, prepare, run
from condense.synth.driver import DriverOptions

MANIFEST = "progress.json"
RISING_FLOOR = 0.5  # accuracy points: a gain at or below this never counts as still rising


class _Done(Exception):
    """Raised from the step callback once the last mark is saved (the driver keeps its checkpoint)."""


def parse_sets(pairs):
    out = {}
    for pair in pairs or ():
        key, _, raw = pair.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def cmd_distill(args) -> None:
    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, MANIFEST)
    progress = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {"snapshots": [], "steps": {}}
    if progress["snapshots"] and max(args.minutes) <= progress["snapshots"][-1]["minutes"]:
        print("every mark is already saved")  # before loading data: a rerun script passes finished runs quickly
        return
    t0 = time.perf_counter()
    method = prepare(args.method, args.dataset, args.ipc, seed=args.seed, device=args.device,
                     model_args=json.loads(args.model_args) if args.model_args else None, iterations=10**7,
                     validation=ValidationSpec(args.validation) if args.validation else None, **parse_sets(args.set))
    first = method.init()
    setup = progress.setdefault("setup_seconds", time.perf_counter() - t0)
    if not progress["snapshots"]:
        path = os.path.join(args.out, "snap_0min.h5")
        first.detached().save(path)
        progress["snapshots"].append({"minutes": 0.0, "iteration": 0, "file": os.path.basename(path)})
        write_json(manifest_path, progress)
    marks = [m for m in sorted(args.minutes) if m > progress["snapshots"][-1]["minutes"]]
    if not marks:
        print("every mark is already saved")
        return
    steps = {int(k): v for k, v in progress["steps"].items()}  # seconds of each finished iteration

    def on_step(done, stats):
        steps[done] = stats["seconds"]
        minutes = (setup + sum(s for it, s in steps.items() if it <= done)) / 60
        while marks and minutes >= marks[0]:
            path = os.path.join(args.out, f"snap_{marks[0]:g}min.h5")
            snap = method.synth.detached()
            snap.iterations_done = done
            snap.save(path)
            progress["snapshots"].append({"minutes": round(minutes, 3), "mark": marks.pop(0), "iteration": done,
                                          "file": os.path.basename(path)})
            progress["steps"] = steps
            write_json(manifest_path, progress)
            print(f"snapshot at {minutes:.2f} min, iteration {done}: {path}", flush=True)
        if done % 25 == 0:  # the step log must survive a kill as long as the driver's checkpoint does
            progress["steps"] = steps
            write_json(manifest_path, progress)
        if not marks:
            raise _Done

    out_set = os.path.join(args.out, "run.h5")
    try:
        run(method, 10**7, DriverOptions(out=out_set, checkpoint_every=25, quiet=args.quiet, on_step=on_step,
                                         resume=os.path.exists(checkpoint_path(out_set))))
    except _Done:
        pass
    progress["settings"] = {k: v for k, v in vars(args).items() if k != "func"}
    progress["config"] = method.synth.config
    write_json(manifest_path, progress)


def results_name(protocol: str, split: str) -> str:
    """The file ``eval`` writes beside the snapshots for one protocol and split."""
    return f"results_{protocol}{'_' + split if split != 'test' else ''}.json"


def cmd_eval(args) -> None:
    progress = json.load(open(os.path.join(args.run, MANIFEST)))
    proto = get_protocol(args.protocol, epochs=args.epochs)
    out_path = os.path.join(args.run, results_name(proto.name, args.split))
    done = json.load(open(out_path))["rows"] if os.path.exists(out_path) else []
    for snap in progress["snapshots"]:
        if any(r["file"] == snap["file"] for r in done) or (args.marks and snap.get("mark", 0.0) not in args.marks):
            continue
        synth = SynthSet.load(os.path.join(args.run, snap["file"]))
        rep = evaluate(synth, protocol=proto, runs=args.runs, device=args.device, split=args.split, data_root=None)
        res = rep.results["ConvNet"]
        done.append({**snap, "mean": res.mean, "std": res.std, "runs": res.runs, "storage_bytes": synth.storage_bytes()})
        write_json(out_path, {"run": args.run, "method": synth.method, "protocol": rep.protocol, "split": args.split,
                              "rows": done})
        print(f"{snap['file']}: {accuracy_text(res.mean, res.std, len(res.runs))} ({proto.name}, {args.split})",
              flush=True)


def run_count(row: dict) -> int:
    """How many evaluation runs a results row averages (``eval`` stores their accuracies as the list ``runs``); a
    row that does not say is read as one run, the widest margin for ``still_rising``."""
    return stored_run_count(row) or 1


def still_rising(rows, minutes: float = math.inf):
    """Whether a run's accuracy was still rising at its last snapshot at or before ``minutes``.

    ``rows`` are one run's results rows (``eval``'s: minutes, optional mark, mean, std, runs); a row
    counts as at or before the mark if its ``mark`` (else its ``minutes``) is <= ``minutes``. With
    ``last`` the latest such row and ``prev`` the one before it (by minutes),
    gain = mean(last) - mean(prev), and the run is still rising if
    gain > max(0.5 point, 2 * sqrt(std_last^2 / n_last + std_prev^2 / n_prev)),
    n being each row's number of evaluation runs (``run_count``; with one run std is 0 and only the
    floor applies). Returns True / False, or None when fewer than two rows are at or before the mark.
    """
    marked = sorted((r for r in rows if r.get("mark", r["minutes"]) <= minutes), key=lambda r: r["minutes"])
    if len(marked) < 2:
        return None
    prev, last = marked[-2], marked[-1]
    noise = 2 * math.sqrt(last["std"] ** 2 / run_count(last) + prev["std"] ** 2 / run_count(prev))
    return last["mean"] - prev["mean"] > max(RISING_FLOOR, noise)


def accuracy_text(mean: float, std: float, runs: int) -> str:
    """``tables.mean_std``, one run said in words: these tables mix rows of one and of several runs."""
    return mean_std(mean, std, runs) + (" (one run)" if runs == 1 else "")


def rising_text(flag) -> str:
    """A table cell for ``still_rising``'s answer."""
    return "–" if flag is None else ("yes" if flag else "no")


def _parse_reference(spec: str, numbers: int) -> tuple:
    label, sep, values = spec.rpartition("=")
    parts = values.split(":")
    try:
        if not sep or not label or len(parts) != numbers:
            raise ValueError
        return (label, *(float(v) for v in parts))
    except ValueError:
        print(f"time_to_accuracy: '{spec}' is not LABEL={':'.join(['NUMBER'] * numbers)}.", file=sys.stderr)
        raise SystemExit(2)


def cmd_rank(args) -> None:
    """Runs ordered by their snapshot at ``--minutes`` (the last one at or before it), best first."""
    rows = []
    for run_dir in args.runs:
        path = os.path.join(run_dir, results_name(args.protocol, args.split))
        if not os.path.exists(path):
            print(f"time_to_accuracy: {path} is missing; run `eval {run_dir} --protocol {args.protocol} "
                  f"--split {args.split}` first.", file=sys.stderr)
            raise SystemExit(2)
        results = json.load(open(path))["rows"]
        marked = [r for r in results if r.get("mark", r["minutes"]) <= args.minutes]
        last = max(marked, key=lambda r: r["minutes"])
        rows.append((last["mean"], last["std"], last["minutes"], last["iteration"], os.path.normpath(run_dir),
                     rising_text(still_rising(results, args.minutes)), run_count(last)))
    # the run path stays the 2nd column (scripts/pool_screen.sh cuts it out with `cut -d'|' -f3`); new columns go last
    lines = [f"| rank | run | {args.split} accuracy (%) | minutes | iteration | still rising at the mark |",
             "|---:|---|---:|---:|---:|:---:|"]
    lines += [f"| {i} | {run} | {accuracy_text(mean, std, n)} | {minutes:.1f} | {it} | {rising} |"
              for i, (mean, std, minutes, it, run, rising, n) in
              enumerate(sorted(rows, key=lambda row: row[:5], reverse=True), 1)]
    print("\n".join(lines))
    if args.out:
        write_text(args.out, "\n".join(lines) + "\n")


def cmd_plot(args) -> None:
    fig, ax = new_figure(figsize=(7, 4.5))
    lines = ["| run | method | minutes | iteration | accuracy (%) | protocol | split | still rising |",
             "|---|---|---:|---:|---|---|---|:---:|"]
    for run_dir in args.runs:
        for path in sorted(glob.glob(os.path.join(run_dir, f"results_{args.protocol}*.json"))):
            blob = json.load(open(path))
            rows = sorted(blob["rows"], key=lambda r: r["minutes"])
            label = f"{os.path.basename(os.path.normpath(run_dir))} ({blob['split']})"
            ax.errorbar([r["minutes"] for r in rows], [r["mean"] for r in rows], yerr=[r["std"] for r in rows],
                        marker="o", capsize=3, label=label)
            rising = rising_text(still_rising(rows))  # at the run's last snapshot, shown on its last row
            lines += [f"| {os.path.basename(os.path.normpath(run_dir))} | {blob['method']} | {r['minutes']:.1f} | "
                      f"{r['iteration']} | {accuracy_text(r['mean'], r['std'], run_count(r))} | {blob['protocol']['name']} | "
                      f"{blob['split']} | {rising if i == len(rows) - 1 else ''} |" for i, r in enumerate(rows)]
    for spec in args.point:
        label, minutes, mean, std = _parse_reference(spec, 3)
        ax.errorbar([minutes], [mean], yerr=[std], marker="s", capsize=3, linestyle="none", label=label)
        lines.append(f"| {label} | | {minutes:.1f} | | {mean:.2f} ± {std:.2f} | (given) | | |")
    for spec in args.line:
        label, accuracy = _parse_reference(spec, 1)
        ax.axhline(accuracy, color="grey", linestyle="--", linewidth=1, label=label)
    ax.set_xlabel("distillation minutes (this machine)")
    ax.set_ylabel("accuracy (%) on the split in the legend")
    ax.set_title(f"Accuracy vs distillation time, protocol {args.protocol}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    save_figure(fig, args.out)
    write_text(os.path.splitext(args.out)[0] + ".md", "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("distill")
    d.add_argument("--method", required=True)
    d.add_argument("--dataset", default="mnist5k")
    d.add_argument("--ipc", type=int, default=10)
    d.add_argument("--minutes", type=float, nargs="+", required=True)
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    d.add_argument("--model-args", default=None)
    d.add_argument("--validation", type=float, default=None)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="auto")
    d.add_argument("--quiet", action="store_true")
    d.add_argument("--out", required=True)
    d.set_defaults(func=cmd_distill)
    e = sub.add_parser("eval")
    e.add_argument("run")
    e.add_argument("--protocol", default="standard")
    e.add_argument("--epochs", type=int, default=None)
    e.add_argument("--runs", type=int, default=3)
    e.add_argument("--split", default="test", choices=("test", "validation"))
    e.add_argument("--device", default="auto")
    e.add_argument("--marks", type=float, nargs="+", default=None, metavar="MINUTES",
                   help="only the snapshots at these marks (0 = the real-image start)")
    e.set_defaults(func=cmd_eval)
    r = sub.add_parser("rank", help="order runs by their snapshot at a mark (on the validation split to select)")
    r.add_argument("runs", nargs="+")
    r.add_argument("--minutes", type=float, required=True)
    r.add_argument("--protocol", default="standard")
    r.add_argument("--split", default="validation", choices=("test", "validation"))
    r.add_argument("--out", default=None, help="also write the table here (Markdown)")
    r.set_defaults(func=cmd_rank)
    g = sub.add_parser("plot")
    g.add_argument("runs", nargs="+")
    g.add_argument("--protocol", default="standard")
    g.add_argument("--out", required=True)
    g.add_argument("--point", action="append", default=[], metavar="LABEL=MINUTES:MEAN:STD",
                   help="a measured result from elsewhere (e.g. a zoo set's), drawn and tabled beside the runs")
    g.add_argument("--line", action="append", default=[], metavar="LABEL=ACCURACY",
                   help="a horizontal reference line (e.g. a published figure; say its protocol in the label)")
    g.set_defaults(func=cmd_plot)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
