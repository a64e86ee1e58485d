"""Build the published sets in synth_sets/ and their catalog (a reference script, not library code).

    python scripts/make_zoo.py                         # every entry not yet built, in table order
    python scripts/make_zoo.py --only cifar10          # entries whose name contains 'cifar10'
    python scripts/make_zoo.py --catalog               # rewrite synth_sets/README.md from catalog.json (and the
                                                       # papers' figures in condense/evaluation/published.json)
    python scripts/make_zoo.py --report                # plots of the catalog into synth_sets/report/
    python scripts/make_zoo.py --refresh --only cifar10  # re-read built files' bytes and data fingerprint into
                                                       # catalog.json (after scripts/migrate_dataset_refs.py)
    python scripts/make_zoo.py --stage distill         # distil only (time it on a quiet machine) ...
    python scripts/make_zoo.py --stage eval            # ... and evaluate later, e.g. alongside other work

Each entry distils one set with `condense.synth.distill` (checkpointed: a killed run resumes),
evaluates it with `condense.evaluation.evaluate` under the entry's protocol and seeds, and records
the command, config hash, accuracy, distillation wall time and date in synth_sets/catalog.json.
CIFAR-10 comes from ../shared/data/cifar10-jpeg.tar (JPEG-recoded), extracted once into CACHE/cifar10 and read
as the dataset `cifar10` with data root CACHE, as synth_sets/README.md has users extract it into DIR/cifar10: each
set records the name and the data's fingerprint, never the cache path. The library itself never needs the tar.
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

from condense.evaluation.tables import ior_cell, summary_cell
from condense.io import write_json, write_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "synth_sets")
SETS = os.path.join(ZOO, "zoo")  # apart from `condense distill`'s default outputs, which would overwrite them
CATALOG = os.path.join(ZOO, "catalog.json")
TEACHERS = os.path.join(ZOO, "teachers")
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
    experts: dict = field(default_factory=dict)   # mtt: ExpertConfig options plus "num"; buffer kept in the cache
    network: tuple = ()            # ("ssl" | "mae", options): a network the method reads, kept in synth_sets/teachers


# The table is the zoo: budgets are stated per entry, sized for 2 CPU cores.
MNIST_METHODS = [("random", {}), ("herding", {}), ("kcenter", {}), ("kmeans", {}),
                 ("dm", {"iterations": 60}), ("datadam", {"iterations": 100})]
CROSS_ARCH = ("dm", "datadam", "random")  # IPC 10 only: a grid pass costs more than the ConvNet evaluation
ENTRIES = [Entry(f"mnist5k_{m}_ipc{ipc}", "mnist5k", m, ipc, opts, cross_arch=(ipc == 10 and m in CROSS_ARCH))
           for ipc in (10, 1) for m, opts in MNIST_METHODS]
ENTRIES += [Entry(f"mnist5k_{m}_ipc{ipc}", "mnist5k", m, ipc,  # dc starts from noise by default: too far at this budget
                  {"iterations": {1: 400, 10: 3}[ipc], "batch_real": 32, "model_args": {"width": 32}, "init": "real"})
            for ipc in (10, 1) for m in ("dc", "dsa")]
# MTT distils with a width-32 ConvNet (the experts' architecture) and is evaluated at width 128 like the rest.
MNIST_EXPERTS = {"num": 5, "epochs": 12, "model_args": {"width": 32}}
ENTRIES += [Entry(f"mnist5k_mtt_ipc{ipc}", "mnist5k", "mtt", ipc,
                  {"iterations": 200, "model_args": {"width": 32}, "max_start_epoch": 10}, experts=MNIST_EXPERTS)
            for ipc in (10, 1)]
# IDM at a CPU schedule: one pool network trained 2 SGD steps per iteration (the official 2 x 10 steps cost 11x a
# DM iteration on 2 cores, scripts/bench.py --section pool). The main job: `condense distill` (dm with --preset cpu:
# factor 2, 100 iterations), which beat every idm schedule per minute in the README's screening.
IDM_OPTIONS = {ipc: {"iterations": 60, "pool_train_nets": 1, "pool_steps": 2} for ipc in (10, 1)}
ENTRIES += [Entry(f"mnist5k_dm_cpu_ipc{ipc}", "mnist5k", "dm", ipc, {"factor": 2, "iterations": 100})
            for ipc in (10, 1)]
# CIFAR-10 IPC 10 at the reference budget: 300 iterations, 3 seeds x 300 epochs (standard protocol).
# IPC 1 is CPU-sized: 60 iterations, fast protocol.
ENTRIES += [Entry(f"cifar10_{m}_ipc10", "cifar10-jpeg", m, 10, {"iterations": 300}, protocol="standard")
            for m in ("dm", "datadam")]
ENTRIES += [Entry(f"cifar10_{m}_ipc1", "cifar10-jpeg", m, 1, {"iterations": 60}) for m in ("dm", "datadam")]
# The main job's preset on CIFAR-10 (dm, factor 2, 100 iterations: about 5 min at IPC 10, 3 min at IPC 1 on 2
# cores), the configuration that led per distillation minute (README, "Accuracy per CPU minute"); standard.
ENTRIES += [Entry(f"cifar10_dm_cpu_ipc{ipc}", "cifar10-jpeg", "dm", ipc, {"factor": 2, "iterations": 100},
                  protocol="standard", runs=runs) for ipc, runs in ((1, 5), (10, 3))]
# The methods added with the kernel and decoupled families, at CPU budgets. The decoupled methods read the mnist5k teachers in
# synth_sets/teachers (`condense teachers --dataset mnist5k --models ConvNetBN --seeds 2 --epochs 30`) and are
# evaluated under their own label protocols, each beside its argmax-label run and a random subset of equal
# storage with the same labeller. INFER cannot make a 10-class IPC-1 set: int(1 / (2/10 + 1)) = 0 base images.
ENTRIES += [Entry(f"mnist5k_idm_ipc{ipc}", "mnist5k", "idm", ipc, IDM_OPTIONS[ipc]) for ipc in (10, 1)]
ENTRIES += [Entry(f"mnist5k_{m}_ipc{ipc}", "mnist5k", m, ipc, {"iterations": 1000}) for ipc in (10, 1)
            for m in ("kip", "rkip")]
ENTRIES += [Entry(f"mnist5k_krr_st_ipc{ipc}", "mnist5k", "krr_st", ipc,
                  {"iterations": 200, "model": "ConvNetBN", "pool": 4, "pool_age": 100}, protocol="transfer",
                  network=("ssl", {"model": "ConvNetBN", "epochs": 20})) for ipc in (10, 1)]
# DQ: GraphCut bins on gradient embeddings of a briefly trained ConvNet; pixel quantisation fills the dropped
# patches with a small MAE trained here (`condense mae`), whose bytes the set's storage counts.
ENTRIES += [Entry(f"mnist5k_graphcut_ipc{ipc}", "mnist5k", "graphcut", ipc) for ipc in (10, 1)]
ENTRIES += [Entry(f"mnist5k_dq_ipc{ipc}", "mnist5k", "dq", ipc, network=("mae", {})) for ipc in (10, 1)]
ENTRIES += [Entry(f"mnist5k_{m}_ipc{ipc}", "mnist5k", m, ipc, opts, protocol=proto)
            for ipc in (10, 1)
            for m, opts, proto in (("sre2l", {"num_teachers": 2}, "soft"), ("rded", {"num_teachers": 2}, "relabel"),
                                   ("infer", {}, "soft"), ("infer_dyn", {}, "relabel"))
            if not (m.startswith("infer") and ipc == 1)]
# Build order when CPU time is short: the IPC-10 matching methods first, then IPC 1, baselines last.
PRIORITY = ["mnist5k_dm_ipc10", "mnist5k_datadam_ipc10", "cifar10_dm_ipc10", "cifar10_datadam_ipc10",
            "mnist5k_random_ipc10", "mnist5k_dm_ipc1", "mnist5k_datadam_ipc1", "mnist5k_random_ipc1"]
ENTRIES.sort(key=lambda e: PRIORITY.index(e.name) if e.name in PRIORITY else len(PRIORITY))


def dataset_name(entry: Entry, cache: str) -> str:
    """The name a set records: the entry's registry name, or `cifar10` for the JPEG tar, extracted on first use into
    CACHE/cifar10 where that name finds it (read with ``data_options``)."""
    if entry.dataset != "cifar10-jpeg":
        return entry.dataset
    folder = os.path.join(cache, "cifar10")
    if not os.path.isdir(os.path.join(folder, "train")):
        if not os.path.isfile(CIFAR_TAR):
            raise SystemExit(f"make_zoo: {CIFAR_TAR} is missing; CIFAR-10 entries need it.")
        tmp = tempfile.mkdtemp(dir=cache)
        with tarfile.open(CIFAR_TAR) as tar:
            tar.extractall(tmp, filter="data")
        inner = tmp if os.path.isdir(os.path.join(tmp, "train")) else os.path.join(tmp, os.listdir(tmp)[0])
        os.replace(inner, folder)
    return "cifar10"


def data_options(entry: Entry, cache: str) -> dict:
    """The data root an entry's data is read from: the cache for the CIFAR-10 tar, none for bundled data."""
    return {"data_root": cache} if entry.dataset == "cifar10-jpeg" else {}


def command(entry: Entry) -> str:
    # DIR/cifar10 is where synth_sets/README.md extracts cifar10-jpeg.tar; the registry name finds it there.
    data = "cifar10 --data-root DIR" if entry.dataset == "cifar10-jpeg" else entry.dataset
    parts = []
    if entry.experts:
        args = " ".join(f"--model-args '{json.dumps(v)}'" if k == "model_args" else f"--{k.replace('_', '-')} {v}"
                        for k, v in entry.experts.items() if k != "num")
        parts.append(f"condense experts --dataset {data} --experts {entry.experts['num']} {args} --out EXPERTS &&")
    if entry.network:
        kind, opts = entry.network
        args = "".join(f" --{k.replace('_', '-')} {v}" for k, v in opts.items())
        parts.append(f"condense {kind} --dataset {data}{args} --out {network_path(entry, relative=True)} &&")
    parts.append(f"condense distill --method {entry.method} --dataset {data} --ipc {entry.ipc}")
    if entry.experts:
        parts.append("--experts EXPERTS")
    if entry.network:
        parts.append(f"--set {NETWORK_OPTION[entry.network[0]]}={network_path(entry, relative=True)}")
    for k, v in entry.options.items():
        if k == "model_args":
            parts.append(f"--model-args '{json.dumps(v)}'")
        else:
            parts.append(f"--{k} {v}" if k == "model" else f"--set {k}={v}")
    return " ".join(parts) + f" --out synth_sets/zoo/{entry.name}.h5"


NETWORK_OPTION = {"ssl": "target", "mae": "mae"}  # the method option that names the network


def network_path(entry: Entry, relative: bool = False) -> str:
    """The network an entry's method reads (krr_st's SSL target, dq's MAE): one per dataset, kind and settings,
    beside the teachers, so entries that agree share it."""
    kind, opts = entry.network
    digest = hashlib.sha256(json.dumps(opts, sort_keys=True).encode()).hexdigest()[:8]
    name = f"{entry.dataset}_{kind}_{digest}.h5"
    return os.path.join("synth_sets", "teachers", name) if relative else os.path.join(TEACHERS, name)


def train_network(entry: Entry, cache: str, device: str) -> str:
    from condense.mae import MAEConfig, checkpoint_path as mae_checkpoint, train_mae
    from condense.ssl import SSLConfig, checkpoint_path as ssl_checkpoint, train_ssl
    from condense.teachers import record_in_catalog

    kind, opts = entry.network
    config, train, checkpoint = {"ssl": (SSLConfig, train_ssl, ssl_checkpoint),
                                 "mae": (MAEConfig, train_mae, mae_checkpoint)}[kind]
    path = network_path(entry)
    if not os.path.exists(path):
        train(config(dataset=dataset_name(entry, cache), **data_options(entry, cache), **opts), path, device=device,
              resume=os.path.exists(checkpoint(path)), quiet=False)
        record_in_catalog(path)  # synth_sets/teachers/catalog.json lists the SSL targets sets name by checksum
    return path


def load_catalog() -> dict:
    return json.load(open(CATALOG)) if os.path.exists(CATALOG) else {}


def save_catalog(catalog: dict) -> None:
    write_json(CATALOG, catalog, indent=1, sort_keys=True)


def expert_folder(entry: Entry, cache: str) -> str:
    digest = hashlib.sha256(json.dumps(entry.experts, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return os.path.join(cache, f"experts_{entry.dataset}_{digest}")


def train_experts(entry: Entry, cache: str, device: str) -> str:
    from condense.experts import ExpertConfig, train_buffer
    from condense.device import resolve_device

    options = {k: v for k, v in entry.experts.items() if k != "num"}
    folder = expert_folder(entry, cache)
    train_buffer(ExpertConfig.for_style("mtt", dataset=entry.dataset, **options), folder, entry.experts["num"],
                 resolve_device(device))
    return folder


def distil_entry(entry: Entry, cache: str, device: str) -> dict:
    """Distil one entry (resuming a killed run); returns its catalog row without accuracy."""
    from condense.synth import checkpoint_path, distill

    out = os.path.join(SETS, entry.name + ".h5")
    options = dict(entry.options)
    expert_seconds = 0.0
    if entry.experts:
        t0 = time.perf_counter()
        options["experts"] = train_experts(entry, cache, device)
        expert_seconds = time.perf_counter() - t0
    if entry.network:
        t0 = time.perf_counter()
        options[NETWORK_OPTION[entry.network[0]]] = train_network(entry, cache, device)
        expert_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    synth = distill(entry.method, dataset_name(entry, cache), entry.ipc, out=out,
                    resume=os.path.exists(checkpoint_path(out)), quiet=False, device=device, seed=0,
                    **data_options(entry, cache), **options)
    row = {"command": command(entry), "config_hash": synth.config_hash(), "dataset": entry.dataset,
           "method": entry.method, "ipc": entry.ipc, "budget": dict(entry.options),
           "distill_seconds": round(time.perf_counter() - t0, 1), "date": datetime.date.today().isoformat(),
           "threads": torch.get_num_threads(), "machine": platform.machine(), **file_fields(entry.name)}
    if entry.experts:
        row["experts"] = dict(entry.experts, seconds=round(expert_seconds, 1))
    if entry.network:
        row["network"] = dict(entry.network[1], kind=entry.network[0], file=network_path(entry, relative=True),
                              seconds=round(expert_seconds, 1))
    if "teachers" in synth.config:
        row["teachers"] = synth.config["teachers"]
    return row


def evaluate_entry(entry: Entry, row: dict, cache: str, device: str) -> dict:
    """ConvNet under the entry's protocol, as `condense eval` does it: with IOR (a fresh random subset of the
    same storage per run, labelled like the set) and, under a soft-label protocol, the argmax-label runs."""
    from condense.evaluation import run_grid

    dataset_name(entry, cache)  # make sure CIFAR-10 is extracted: the set records the cache as its data root
    grid = run_grid([os.path.join(SETS, entry.name + ".h5")], models="ConvNet", protocol=entry.protocol,
                    runs=entry.runs, device=device, log=lambda m: print(m, flush=True), **data_options(entry, cache))
    report = grid.sets[0]
    out = dict(row, protocol=report.protocol["name"], protocol_hash=report.protocol["hash"],
               convnet=report.results["ConvNet"].to_json())
    for key in ("ranking", "argmax", "storage"):
        if getattr(report, key) is not None:
            out[key] = getattr(report, key)
    return out


def cross_arch(entry: Entry, device: str) -> dict:
    """One run per grid architecture (a separate pass: it costs more than the whole ConvNet evaluation)."""
    from condense.evaluation import GRID_MODELS, evaluate
    from condense.store import SynthSet

    synth = SynthSet.load(os.path.join(SETS, entry.name + ".h5"))
    grid = evaluate(synth, models=[m for m in GRID_MODELS if m != "ConvNet"], runs=1, protocol=entry.protocol,
                    device=device)
    return {m: {"mean": r.mean, "std": r.std, "runs": r.runs, "seeds": r.seeds} for m, r in grid.results.items()}


def write_plots(catalog: dict) -> str:
    """`condense report` plots of the catalog (the stored ConvNet curves, plus any cross-arch rows)."""
    from condense.evaluation import EvalReport, ModelResult, get_protocol
    from condense.evaluation.plots import render_report

    reports = []
    for name, r in sorted(catalog.items()):
        if "convnet" not in r:
            continue
        proto = get_protocol(r["protocol"])
        protocol = {**proto.to_dict(), "hash": proto.digest()}
        if protocol["hash"] != r["protocol_hash"]:
            raise SystemExit(f"make_zoo: protocol '{r['protocol']}' changed since {name} was evaluated; re-evaluate it.")
        results = {"ConvNet": r["convnet"], **r.get("cross_arch", {})}
        # The catalog keeps no image count, learned lr or seed list: EvalReport.from_json's defaults.
        reports.append(EvalReport(set=f"{name}.h5", dataset=r["dataset"], method=r["method"], ipc=r["ipc"],
                                  images=0, lr=float("nan"), seed=0, seeds=[], protocol=protocol,
                                  results={m: ModelResult.from_json(v) for m, v in results.items()}))
    return render_report(reports, os.path.join(ZOO, "report"), sources=["synth_sets/catalog.json"])


def file_fields(name: str) -> dict:
    """The catalog fields an entry's file decides: its size and the fingerprint of the data it records (the data
    `condense eval` checks before scoring; none for a file that records none)."""
    from condense.store import SynthSet

    path = os.path.join(SETS, name + ".h5")
    fingerprint = SynthSet.load(path).dataset_fingerprint
    return {"bytes": os.path.getsize(path), **({"dataset_fingerprint": fingerprint} if fingerprint else {})}


def update_catalog(name: str, row: dict) -> None:
    catalog = load_catalog()  # another worker may have added entries meanwhile
    catalog[name] = row
    save_catalog(catalog)


def published_section(names: list, catalog: dict) -> list:
    """The paper column's key and every published figure it draws on, with its data, protocol, budget and
    source (looked up in condense/evaluation/published.json: nothing here is measured)."""
    from condense.evaluation.published import MARK_OTHER, MARK_VARIANT, lookup_row, paper_fields, paper_notes

    matches = {n: lookup_row(catalog[n]) for n in names}
    if not any(matches.values()):
        return []
    lines = [""] + [f"- {note}" for note in paper_notes(matches.values())]
    lines += ["", "### Published figures beside the zoo", "",
              "The papers' own figures the paper column draws on, as transcribed in METHODS.md with its provenance "
              "tags (`paper`, `recalled`: from memory, verify before citing; `read from a later paper`), kept as data "
              "in `condense/evaluation/published.json` and looked up by method, dataset family and IPC when this "
              "file is written. A figure on other data than the zoo's is listed last, marked, and never put in the table.", ""]
    figures: dict = {}
    for n in names:
        if matches[n] is not None:
            figures.setdefault((not matches[n].comparable, matches[n].figure.method, matches[n].figure.dataset,
                                matches[n].figure.ipc), []).append(n)
    for key in sorted(figures, key=lambda k: (k[0], k[2], k[1], k[3])):
        first = matches[figures[key][0]]
        f, fields = first.figure, dict(paper_fields(first))
        beside = ", ".join(f"`{n}`" + (f" ({MARK_VARIANT} {'; '.join(matches[n].differences)})"
                                       if matches[n].differences else "")
                           for n in figures[key])
        head = (f"{MARK_OTHER} **not comparable**: {f.title()}: {f.accuracy()}" if not first.comparable
                else f"**{f.title()}: {f.accuracy()}**")
        lines.append(f"- {head} [{f.provenance}]; beside {beside}.")
        lines.append(f"  Data: {f.dataset_name}" + (f" ({fields['data compared']})" if "data compared" in fields
                                                     else "") + ".")
        lines.append(f"  Protocol: {f.protocol}. Budget: {f.budget}." + (f" Note: {f.note}." if f.note else ""))
        lines.append(f"  Source: {f.citation()}.")
    return lines


def write_readme(catalog: dict) -> None:
    from condense.evaluation.published import lookup_row, paper_cell

    everything, catalog = catalog, {n: r for n, r in catalog.items() if "convnet" in r}
    lines = open(os.path.join(ZOO, "README.md")).read().split("## Catalog")[0].rstrip().split("\n")  # keep the intro
    lines += ["", "## Catalog", "",
              "Accuracy: ConvNet (width 128) test accuracy, mean ± std over the runs, under the named protocol "
              "(`fast` = 50 epochs, `standard` = 300 epochs; see eval/protocols). Distillation time is wall time of "
              "one process with the stated number of threads on this 2-core CPU machine. Only the 2-thread rows "
              "had the machine to themselves; the 1-thread rows shared it with other builds: read those as upper "
              "bounds. "
              "Rebuild an entry with `python scripts/make_zoo.py --only NAME` after removing it from catalog.json. "
              "The paper column is the method's published figure for the same dataset and IPC (key and sources "
              "below the table); `python scripts/make_zoo.py --catalog` rewrites this file from catalog.json and "
              "those figures without distilling or evaluating anything.", "",
              "| set | method | IPC | budget | ConvNet acc. (%) | paper (%) | protocol, runs | distil time, threads | config hash | date |",
              "|---|---|---:|---|---|---|---|---:|---|---|"]
    hard = {n: r for n, r in catalog.items() if "argmax" not in r}
    hard_order = sorted(hard, key=lambda n: (catalog[n]["dataset"], -catalog[n]["ipc"], n))
    for name in hard_order:
        r = catalog[name]
        budget = ", ".join(f"{k} {v}" for k, v in r["budget"].items()) or "-"
        if r.get("experts"):
            e = r["experts"]
            trained = f"trained in {e['seconds'] / 60:.1f} min" if e["seconds"] > 1 else "buffer reused"
            budget += f"; {e['num']} experts × {e['epochs']} epochs ({trained}, not in distil time)"
        acc = summary_cell(r["convnet"])
        mark = " (note)" if r.get("note") else ""
        lines.append(f"| `zoo/{name}.h5` | {r['method']} | {r['ipc']} | {budget} | {acc} | {paper_cell(lookup_row(r))} | {r['protocol']}, "
                     f"{len(r['convnet']['runs'])} | {r['distill_seconds'] / 60:.1f} min, {r['threads']}{mark} | `{r['config_hash']}` | {r['date']} |")
    lines += published_section(hard_order, catalog)
    ranked = {n: r["ranking"]["ConvNet"] for n, r in hard.items() if r.get("ranking")}
    if ranked:
        lines += ["", "IOR (DD-Ranking's improvement over random, in points): each run of the set minus the same run "
                  "of a fresh random real subset of the same stored bytes, mean ± std over the runs:", "",
                  "| set | protocol | ConvNet acc. (%) | random subset (%) | IOR (points) |", "|---|---|---|---|---|"]
        for n in sorted(ranked):
            k, r = ranked[n], catalog[n]
            lines.append(f"| `{n}.h5` | {r['protocol']} | {r['convnet']['mean']:.2f} | {k['random_mean']:.2f} | "
                         f"{ior_cell(k)} |")
    soft = {n: r for n, r in catalog.items() if "argmax" in r}
    if soft:
        lines += ["", "Soft-label entries (never mixed with the hard-label table above): the set with its labels "
                  "(stored teacher logits under `soft`, teachers relabelling every batch under `relabel`), the same "
                  "images with argmax labels under the same recipe, and a random real subset of no more stored bytes "
                  "labelled by the same teachers; ConvNet, mean ± std over the runs:", "",
                  "| set | protocol | with its labels (%) | argmax labels (%) | random subset, same labels (%) | "
                  "bytes (set / random) |", "|---|---|---|---|---|---|"]
        for n in sorted(soft):
            r = soft[n]
            a, k, b = r["argmax"]["ConvNet"], (r.get("ranking") or {}).get("ConvNet"), r.get("storage") or {}
            rand = f"{k['random_mean']:.2f}" if k else "-"
            lines.append(f"| `{n}.h5` | {r['protocol']} | {summary_cell(r['convnet'])} | "
                         f"{summary_cell(a)} | {rand} | {b.get('set_bytes', '-'):,} / "
                         f"{b.get('random_bytes', '-'):,} |")
    notes = [f"- `{n}`: {r['note']}" for n, r in sorted(catalog.items()) if r.get("note")]
    if notes:
        lines += ["", "Notes:", ""] + notes
    crossed = {n: r for n, r in catalog.items() if r.get("cross_arch")}
    if crossed:
        archs = list(next(iter(crossed.values()))["cross_arch"])
        lines += ["", "Cross-architecture (one run each, same protocol):", "",
                  "| set | " + " | ".join(archs) + " |", "|---|" + "---:|" * len(archs)]
        for n, r in sorted(crossed.items()):
            lines.append(f"| `{n}.h5` | " + " | ".join(f"{r['cross_arch'][a]['mean']:.1f}" for a in archs) + " |")
    pending = sorted(n for n, r in everything.items() if "convnet" not in r)
    if pending:
        lines += ["", "Built, without a ConvNet figure yet (krr_st sets hold regression targets: evaluate them with "
                  "`condense eval SET --transfer DATA`; the others wait for `make_zoo.py --stage eval`):", ""]
        lines += [f"- `zoo/{n}.h5`: {everything[n]['method']}, IPC {everything[n]['ipc']}" for n in pending]
    lines += ["", "Commands (each entry's exact distillation; `make_zoo.py` runs the same through the Python API):", ""]
    lines += [f"- `{n}`: `{everything[n]['command']}`" for n in sorted(everything)]
    write_text(os.path.join(ZOO, "README.md"), "\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help="build entries whose name contains this")
    p.add_argument("--catalog", action="store_true", help="only rewrite synth_sets/README.md")
    p.add_argument("--report", action="store_true", help="only write the plots of the catalog to synth_sets/report/")
    p.add_argument("--refresh", action="store_true",
                   help="only re-read built entries' file fields (bytes, data fingerprint) into catalog.json")
    p.add_argument("--cross-arch", action="store_true", help="add the cross-architecture row to built entries marked for it")
    p.add_argument("--stage", choices=("all", "distill", "eval"), default="all",
                   help="distil and evaluate, or only one of the two (a distilled entry waits in catalog.json)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "condense_zoo"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.cache, exist_ok=True)
    os.makedirs(SETS, exist_ok=True)
    if args.report:
        print(write_plots(load_catalog()))
        return
    if args.refresh:
        for name, row in sorted(load_catalog().items()):
            if args.only in name and os.path.isfile(os.path.join(SETS, name + ".h5")):
                update_catalog(name, {**row, **file_fields(name)})
    elif args.cross_arch:
        for entry in ENTRIES:
            row = load_catalog().get(entry.name)
            if entry.cross_arch and args.only in entry.name and row and "convnet" in row and "cross_arch" not in row:
                grid = cross_arch(entry, args.device)
                update_catalog(entry.name, {**load_catalog()[entry.name], "cross_arch": grid})
    elif not args.catalog:
        for entry in ENTRIES:
            if args.only not in entry.name:
                continue
            row = load_catalog().get(entry.name)
            if row is None and args.stage in ("distill", "all"):
                print(f"== distil {entry.name}", flush=True)
                row = distil_entry(entry, args.cache, args.device)
                update_catalog(entry.name, row)
                print(f"{entry.name}: distilled in {row['distill_seconds']:.0f} s", flush=True)
            if row is not None and "convnet" not in row and entry.protocol != "transfer" and args.stage in ("eval", "all"):
                print(f"== evaluate {entry.name}", flush=True)
                row = evaluate_entry(entry, row, args.cache, args.device)
                update_catalog(entry.name, row)
                print(f"{entry.name}: {summary_cell(row['convnet'])}", flush=True)
    write_readme(load_catalog())


if __name__ == "__main__":
    main()
