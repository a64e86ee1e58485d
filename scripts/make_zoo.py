"""Build the published sets in synth_sets/ and their catalog (a reference script, not library code).

    python scripts/make_zoo.py                         # every entry not yet built, in table order
    python scripts/make_zoo.py --only cifar10          # entries whose name contains 'cifar10'
    python scripts/make_zoo.py --catalog               # rewrite synth_sets/README.md from catalog.json

Each entry distils one set with `condense.synth.distill` (checkpointed: a killed run resumes),
evaluates it with `condense.evaluator.evaluate` under the entry's protocol and seeds, and records
the command, config hash, accuracy, distillation wall time and date in synth_sets/catalog.json.
CIFAR-10 comes from ../shared/data/cifar10-jpeg.tar (JPEG-recoded), extracted once to a cache dir
and read as `imagefolder:`; the library itself never needs it.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import tarfile
import tempfile
import time
from dataclasses import dataclass, field

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "synth_sets")
SETS = os.path.join(ZOO, "zoo")  # apart from `condense distill`'s default outputs, which would overwrite them
CATALOG = os.path.join(ZOO, "catalog.json")
CIFAR_TAR = os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg.tar")


@dataclass(frozen=True)
class Entry:
    name: str                      # file stem in synth_sets/
    dataset: str                   # registry name, or "cifar10-jpeg" (the benchmark tarball)
    method: str
    ipc: int
    options: dict = field(default_factory=dict)   # method hyper-parameters (iterations, ...)
    protocol: str = "fast"
    runs: int = 3
    cross_arch: bool = False       # also one run per grid architecture


# The table is the zoo: budgets are stated per entry, sized for 2 CPU cores.
MNIST_METHODS = [("random", {}), ("herding", {}), ("kcenter", {}), ("kmeans", {}),
                 ("dm", {"iterations": 60}), ("datadam", {"iterations": 100})]
ENTRIES = [Entry(f"mnist5k_{m}_ipc{ipc}", "mnist5k", m, ipc, opts, cross_arch=(ipc == 10 and m == "dm"))
           for ipc in (10, 1) for m, opts in MNIST_METHODS]
ENTRIES += [Entry(f"mnist5k_{m}_ipc{ipc}", "mnist5k", m, ipc,  # dc starts from noise by default: too far at this budget
                  {"iterations": {1: 40, 10: 3}[ipc], "batch_real": 32, "model_args": {"width": 32}, "init": "real"})
            for ipc in (10, 1) for m in ("dc", "dsa")]
ENTRIES += [Entry(f"cifar10_{m}_ipc{ipc}", "cifar10-jpeg", m, ipc, {"iterations": its})
            for ipc, its in ((10, 100), (1, 60)) for m in ("dm", "datadam")]
# Build order when CPU time is short: the IPC-10 matching methods first, then IPC 1, baselines last.
PRIORITY = ["mnist5k_dm_ipc10", "mnist5k_datadam_ipc10", "cifar10_dm_ipc10", "cifar10_datadam_ipc10",
            "mnist5k_random_ipc10", "mnist5k_dm_ipc1", "mnist5k_datadam_ipc1", "mnist5k_random_ipc1"]
ENTRIES.sort(key=lambda e: PRIORITY.index(e.name) if e.name in PRIORITY else len(PRIORITY))


def dataset_name(entry: Entry, cache: str) -> str:
    if entry.dataset != "cifar10-jpeg":
        return entry.dataset
    folder = os.path.join(cache, "cifar10-jpeg")
    if not os.path.isdir(os.path.join(folder, "train")):
        if not os.path.isfile(CIFAR_TAR):
            raise SystemExit(f"make_zoo: {CIFAR_TAR} is missing; CIFAR-10 entries need it.")
        tmp = tempfile.mkdtemp(dir=cache)
        with tarfile.open(CIFAR_TAR) as tar:
            tar.extractall(tmp, filter="data")
        inner = tmp if os.path.isdir(os.path.join(tmp, "train")) else os.path.join(tmp, os.listdir(tmp)[0])
        os.replace(inner, folder)
    return f"imagefolder:{folder}"


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def command(entry: Entry) -> str:
    data = "imagefolder:DIR (extracted cifar10-jpeg.tar)" if entry.dataset == "cifar10-jpeg" else entry.dataset
    parts = [f"condense distill --method {entry.method} --dataset {data} --ipc {entry.ipc}"]
    for k, v in entry.options.items():
        parts.append(f"--model-args '{json.dumps(v)}'" if k == "model_args" else f"--set {k}={v}")
    return " ".join(parts) + f" --out synth_sets/zoo/{entry.name}.h5"


def load_catalog() -> dict:
    return json.load(open(CATALOG)) if os.path.exists(CATALOG) else {}


def save_catalog(catalog: dict) -> None:
    tmp = CATALOG + ".tmp"
    with open(tmp, "w") as f:
        json.dump(catalog, f, indent=1, sort_keys=True)
    os.replace(tmp, CATALOG)


def build(entry: Entry, cache: str, device: str) -> dict:
    from condense.evaluator import evaluate
    from condense.synth import distill
    from condense.synth.driver import checkpoint_path

    out = os.path.join(SETS, entry.name + ".h5")
    name = dataset_name(entry, cache)
    options = dict(entry.options)
    t0 = time.perf_counter()
    synth = distill(entry.method, name, entry.ipc, out=out, resume=os.path.exists(checkpoint_path(out)),
                    quiet=False, device=device, seed=0, **options)
    seconds = time.perf_counter() - t0
    report = evaluate(synth, models=("ConvNet",), runs=entry.runs, protocol=entry.protocol, device=device)
    row = {"command": command(entry), "config_hash": config_hash(synth.config), "dataset": entry.dataset,
           "method": entry.method, "ipc": entry.ipc, "budget": options, "distill_seconds": round(seconds, 1),
           "protocol": report["protocol"]["name"], "protocol_hash": report["protocol"].get("hash"),
           "convnet": report["results"]["ConvNet"], "date": datetime.date.today().isoformat(),
           "bytes": os.path.getsize(out), "threads": torch.get_num_threads(), "machine": platform.machine()}
    return row


def cross_arch(entry: Entry, device: str) -> dict:
    """One run per grid architecture (a separate pass: it costs more than the whole ConvNet evaluation)."""
    from condense.evaluator import GRID_MODELS, evaluate
    from condense.store import SynthSet

    synth = SynthSet.load(os.path.join(SETS, entry.name + ".h5"))
    grid = evaluate(synth, models=[m for m in GRID_MODELS if m != "ConvNet"], runs=1, protocol=entry.protocol,
                    device=device)
    return {m: r["mean"] for m, r in grid["results"].items()}


def write_readme(catalog: dict) -> None:
    lines = open(os.path.join(ZOO, "README.md")).read().split("## Catalog")[0].rstrip().split("\n")  # keep the intro
    lines += ["", "## Catalog", "",
              "Accuracy: ConvNet (width 128) test accuracy, mean ± std over the runs, under the named protocol "
              "(`fast` = 50 epochs; see eval/protocols). Distillation time is wall time of one process on this "
              "2-core CPU machine, shared with other jobs while the zoo was built: read it as an upper bound. "
              "Rebuild an entry with `python scripts/make_zoo.py --only NAME` after removing it from catalog.json.", "",
              "| set | method | IPC | budget | ConvNet acc. (%) | protocol, runs | distil time | config hash | date |",
              "|---|---|---:|---|---|---|---:|---|---|"]
    for name in sorted(catalog, key=lambda n: (catalog[n]["dataset"], -catalog[n]["ipc"], n)):
        r = catalog[name]
        budget = ", ".join(f"{k} {v}" for k, v in r["budget"].items()) or "-"
        acc = f"{r['convnet']['mean']:.2f} ± {r['convnet']['std']:.2f}"
        mark = " (note)" if r.get("note") else ""
        lines.append(f"| `zoo/{name}.h5` | {r['method']} | {r['ipc']} | {budget} | {acc} | {r['protocol']}, "
                     f"{len(r['convnet']['runs'])} | {r['distill_seconds'] / 60:.1f} min{mark} | `{r['config_hash']}` | {r['date']} |")
    notes = [f"- `{n}`: {r['note']}" for n, r in sorted(catalog.items()) if r.get("note")]
    if notes:
        lines += ["", "Notes:", ""] + notes
    crossed = {n: r for n, r in catalog.items() if r.get("cross_arch")}
    if crossed:
        archs = list(next(iter(crossed.values()))["cross_arch"])
        lines += ["", "Cross-architecture (one run each, same protocol):", "",
                  "| set | " + " | ".join(archs) + " |", "|---|" + "---:|" * len(archs)]
        for n, r in sorted(crossed.items()):
            lines.append(f"| `{n}.h5` | " + " | ".join(f"{r['cross_arch'][a]:.1f}" for a in archs) + " |")
    lines += ["", "Commands (each entry's exact distillation; `make_zoo.py` runs the same through the Python API):", ""]
    lines += [f"- `{n}`: `{catalog[n]['command']}`" for n in sorted(catalog)]
    with open(os.path.join(ZOO, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help="build entries whose name contains this")
    p.add_argument("--catalog", action="store_true", help="only rewrite synth_sets/README.md")
    p.add_argument("--cross-arch", action="store_true", help="add the cross-architecture row to built entries marked for it")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "condense_zoo"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.cache, exist_ok=True)
    os.makedirs(SETS, exist_ok=True)
    if args.cross_arch:
        for entry in ENTRIES:
            catalog = load_catalog()
            if entry.cross_arch and args.only in entry.name and entry.name in catalog and "cross_arch" not in catalog[entry.name]:
                row = cross_arch(entry, args.device)
                catalog = load_catalog()
                catalog[entry.name]["cross_arch"] = row
                save_catalog(catalog)
    elif not args.catalog:
        for entry in ENTRIES:
            if args.only not in entry.name or entry.name in load_catalog():
                continue
            print(f"== {entry.name}", flush=True)
            row = build(entry, args.cache, args.device)
            catalog = load_catalog()  # another worker may have added entries meanwhile
            catalog[entry.name] = row
            save_catalog(catalog)
            print(f"{entry.name}: {row['convnet']['mean']:.2f} ± {row['convnet']['std']:.2f} "
                  f"(distil {row['distill_seconds']:.0f} s)", flush=True)
    write_readme(load_catalog())


if __name__ == "__main__":
    main()
