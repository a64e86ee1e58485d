"""Accuracy of DM against its distillation budget: snapshots along one run, each evaluated.

    python scripts/dm_budget.py --dataset mnist5k --ipc 10 --snapshots 0,25,50,75,100,150,200,300 \
        --runs 3 --json eval/dm_budget.json

One DM run is snapshotted at the given iterations (0 = the real-image init), with the wall
time spent distilling up to each; every snapshot and a `random` set of the same size are then
trained under one protocol with the same seeds. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import os
import time

from condense.evaluation import evaluate, get_protocol
from condense.io import write_json
from condense.synth import distill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--snapshots", default="0,25,50,75,100,150,200,300")
    parser.add_argument("--batch-real", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--protocol", default="standard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=os.path.join("eval", "dm_budget.json"))
    args = parser.parse_args()

    marks = sorted(int(s) for s in args.snapshots.split(","))
    snapshots, clock = {}, {"start": time.perf_counter(), "distill": 0.0}

    def on_step(it, stats):
        clock["distill"] += stats["seconds"]
        if it in marks:
            snapshots[it] = (synth_ref["method"].synth.detached(), clock["distill"])

    from condense.synth import prepare
    from condense.synth.driver import DriverOptions, run

    options = {"batch_real": args.batch_real} if args.batch_real else {}
    method = prepare("dm", args.dataset, args.ipc, seed=args.seed, iterations=max(marks), **options)
    synth_ref = {"method": method}
    if 0 in marks:
        snapshots[0] = (method.init().detached(), 0.0)
    run(method, max(marks), DriverOptions(on_step=on_step, quiet=False))

    protocol = get_protocol(args.protocol)
    rows = []
    sets = [("random", 0, 0.0, distill("random", args.dataset, args.ipc, seed=args.seed))]
    sets += [("dm", it, secs, s) for it, (s, secs) in sorted(snapshots.items())]
    for name, it, secs, synth in sets:
        res = evaluate(synth, models=["ConvNet"], runs=args.runs, protocol=protocol, seed=0).results["ConvNet"]
        rows.append({"method": name, "iterations": it, "distill_seconds": round(secs, 1), "mean": res.mean,
                     "std": res.std, "runs": res.runs, "eval_seconds": sum(res.seconds)})
        print(f"{name:7s} it={it:4d} distill={secs / 60:5.1f} min  acc={res.mean:.2f} ± {res.std:.2f}", flush=True)
    write_json(args.json, {"args": vars(args), "protocol": protocol.to_dict(), "rows": rows}, default=str)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
