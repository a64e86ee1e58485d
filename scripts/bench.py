"""Speed benchmarks: print tables and write JSON (tests never assert on wall time).

    python scripts/bench.py                       # all sections
    python scripts/bench.py --section dm --json eval/bench/dm.json

Inputs are random tensors of the stated shape, so no dataset is needed; timings are medians
over repeated iterations after a warm-up, on whatever device `--device` resolves to.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Callable

import torch

from condense.data import ImageDataset
from condense.device import resolve_device
from condense.io import write_json
from condense.models.layers import AvgPool2x2
from condense.seeding import generator
from condense.synth import prepare
from condense.synth.matching import frozen


def random_dataset(shape=(3, 32, 32), classes=10, per_class=300, name="cifar10-shaped") -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    n = classes * per_class
    return ImageDataset(name=name, train_x=torch.randn(n, *shape, generator=g),
                        train_y=torch.arange(classes).repeat_interleave(per_class),
                        test_x=torch.randn(classes, *shape, generator=g), test_y=torch.arange(classes),
                        class_names=[str(c) for c in range(classes)], mean=(0.5,) * shape[0], std=(0.25,) * shape[0],
                        hflip_safe=True)


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1, device=None) -> float:
    def sync():
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def with_torch_avgpool(net: torch.nn.Module) -> torch.nn.Module:
    """Swap our strided-sum pooling back to nn.AvgPool2d(2, 2), as the official ConvNet has it."""
    for block in getattr(net, "blocks", []):
        if isinstance(block.pool, AvgPool2x2):
            block.pool = torch.nn.AvgPool2d(2, 2)
    return net


def per_class_dm_step(method, official_pool: bool = True) -> None:
    """The official DM loop structure (one forward pair per class, nn.AvgPool2d), with our DSA."""
    ctx, cfg = method.ctx, method.cfg
    gen = torch.Generator().manual_seed(1)
    net = frozen(ctx.new_model())
    if official_pool:
        net = with_torch_avgpool(net)
    loss = 0.0
    for c in range(ctx.dataset.num_classes):
        real = ctx.sampler.sample(c, cfg.batch_real, gen)
        syn = method.synth.images[method.synth.labels == c]
        params = method.dsa.sample(1, tuple(real.shape[1:]), gen, device=real.device, siamese_groups=True)
        real = method.dsa.apply(real, params.expand(torch.zeros(len(real), dtype=torch.long)))
        syn = method.dsa.apply(syn, params.expand(torch.zeros(len(syn), dtype=torch.long)))
        loss = loss + ((net.embed(real).mean(0).detach() - net.embed(syn).mean(0)) ** 2).sum()
    method.optimizer.zero_grad()
    loss.backward()
    method.optimizer.step()


def bench_dm(device: torch.device, repeats: int) -> dict:
    """DM on CIFAR-10-shaped input: IPC 10, batch_real 256, ConvNet width 128."""
    data = random_dataset()
    method = prepare("dm", data, 10, device=str(device), batch_real=256, iterations=1)
    method.synth = method.init()
    it = iter(range(10**6))
    ours = median_seconds(lambda: method.step(next(it)), repeats, device=device)
    loop = median_seconds(lambda: per_class_dm_step(method), repeats, device=device)
    loop_fast_pool = median_seconds(lambda: per_class_dm_step(method, official_pool=False), repeats, device=device)
    net = frozen(method.ctx.new_model())
    real_x, _ = method.ctx.sampler.sample_classes(256, generator("iteration", 0, 0))

    def bare_forward():
        with torch.no_grad():
            net.embed(real_x)

    forward = median_seconds(bare_forward, repeats, device=device)
    rows = [
        {"variant": "condense dm step (all classes, one forward)", "seconds": ours},
        {"variant": "per-class loop, nn.AvgPool2d (official structure)", "seconds": loop},
        {"variant": "per-class loop, our pooling", "seconds": loop_fast_pool},
        {"variant": f"bare forward, {len(real_x)} real images, no grad", "seconds": forward},
    ]
    return {"section": "dm", "input": "3x32x32, 10 classes, IPC 10, batch_real 256, ConvNet width 128",
            "rows": rows, "ratio_step_to_forward": ours / forward, "speedup_vs_per_class_loop": loop / ours}


def bench_datadam(device: torch.device, repeats: int) -> dict:
    """DataDAM on CIFAR-10-shaped input: IPC 10, batch_real 64, ConvNet width 128 (official code: ~2.3 s here)."""
    from condense.synth.datadam import attention_features
    from condense.synth.matching import chunked

    data = random_dataset()
    method = prepare("datadam", data, 10, device=str(device), batch_real=64, iterations=1)
    method.synth = method.init()
    it = iter(range(10**6))
    step = median_seconds(lambda: method.step(next(it)), repeats, device=device)
    net = frozen(method.ctx.new_model())
    real_x, _ = method.ctx.sampler.sample_classes(64, generator("iteration", 0, 0))

    def bare_forward():
        with torch.no_grad():
            net.forward_with_activations(real_x)

    def attention_forward():
        with torch.no_grad():
            attention_features(net, real_x, method.cfg.power)

    def chunked_forward():
        chunked(net.embed, real_x)  # same layers as forward_with_activations, one tensor out

    forward = median_seconds(bare_forward, repeats, device=device)
    forward_chunked = median_seconds(chunked_forward, repeats, device=device)
    attention = median_seconds(attention_forward, repeats, device=device)
    rows = [
        {"variant": "condense datadam step (all classes, one forward)", "seconds": step},
        {"variant": f"bare forward, {len(real_x)} real images, no grad", "seconds": forward},
        {"variant": "same forward in cache-sized chunks (as the step's real side)", "seconds": forward_chunked},
        {"variant": "whole-batch forward + attention maps, no grad", "seconds": attention},
    ]
    return {"section": "datadam", "input": "3x32x32, 10 classes, IPC 10, batch_real 64, ConvNet width 128",
            "rows": rows, "ratio_step_to_forward": step / forward, "ratio_step_to_chunked_forward": step / forward_chunked,
            "official_reference_seconds": 2.3}


def _trajectory_cell(mode: str, syn_steps: int, device: str, repeats: int, threads: int, limit_gb: float) -> dict:
    """One (grad mode, syn_steps) cell, run in a fresh process so ru_maxrss is this cell's own peak."""
    import resource

    from torch.func import functional_call

    from condense.augment import DSA, DSAConfig
    from condense.models import ParamLayout, create_model
    from condense.synth.trajectory import StudentStep, Trajectory, recompute_grads, unrolled_loss

    limit = int(limit_gb * 2**30)  # address-space cap: a runaway unroll fails here, not in the shared machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.set_num_threads(threads)
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    net = create_model("ConvNet", 1, 10, (28, 28), width=128).to(dev)
    layout = ParamLayout.of(net)
    start = layout.flatten(net)
    target = start + 0.01 * torch.randn(start.shape, generator=g).to(dev)
    images = torch.randn(100, 1, 28, 28, generator=g).to(dev).requires_grad_(True)  # IPC 10 × 10 classes
    alpha = torch.tensor(0.01, device=dev, requires_grad=True)
    dsa = DSA(DSAConfig(strategy="color_crop_cutout_scale_rotate"))

    def trajectory(n: int) -> Trajectory:
        steps = [StudentStep(torch.randperm(100, generator=g).to(dev), dsa.sample(100, (1, 28, 28), g))
                 for _ in range(n)]
        return Trajectory(forward=lambda th, x: functional_call(net, layout.unflatten(th), (x,)),
                          labels=torch.arange(10, device=dev).repeat_interleave(10), start=start,
                          targets={n: (target, 1.0)}, steps=steps, dsa=dsa)

    def iteration(n: int) -> None:
        tr = trajectory(n)
        if mode == "unrolled":
            unrolled_loss(tr, images, alpha).backward()
        else:
            recompute_grads(tr, images, alpha)

    try:
        iteration(2)  # warm-up on a short trajectory: kernels and allocator, not the cell's memory
        base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        seconds = median_seconds(lambda: iteration(syn_steps), repeats, warmup=0, device=dev)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"variant": f"{mode}, syn_steps {syn_steps}", "seconds": seconds, "peak_rss_mb": peak_mb,
                "rss_above_warmup_mb": peak_mb - base_mb}
    except (RuntimeError, MemoryError) as err:
        return {"variant": f"{mode}, syn_steps {syn_steps}", "seconds": float("nan"), "peak_rss_mb": float("nan"),
                "rss_above_warmup_mb": float("nan"), "error": f"failed under a {limit_gb:g} GB cap: {str(err)[:80]}"}


def bench_trajectory(device: torch.device, repeats: int) -> dict:
    """MTT student unroll, MNIST-shaped (1x28x28, IPC 10, ConvNet width 128): both grad modes × syn_steps.

    Memory is the peak resident set (``resource.getrusage`` ru_maxrss) of a fresh process per cell;
    it includes torch itself (~0.3-0.5 GB), so the growth from 10 to 40 steps is what to compare.
    """
    import concurrent.futures
    import multiprocessing

    rows = []
    ctx = multiprocessing.get_context("spawn")
    # The ends first (10 and 40 steps), so a cut-short run still shows the growth.
    for mode, steps in [(m, n) for n in (10, 40, 20) for m in ("recompute", "unrolled")]:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            rows.append(pool.submit(_trajectory_cell, mode, steps, str(device), min(repeats, 2),
                                    torch.get_num_threads(), 10.0).result())
        print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: (r["variant"].split(",")[0] != "recompute", int(r["variant"].split()[-1])))
    peak = {(r["variant"].split(",")[0], int(r["variant"].split()[-1])): r["peak_rss_mb"] for r in rows}
    growth = {m: peak[(m, 40)] / peak[(m, 10)] for m in ("recompute", "unrolled")}
    both = [n for n in (10, 20, 40) if all(peak[(m, n)] == peak[(m, n)] for m in ("recompute", "unrolled"))]  # no NaN
    speed = {m: sum(r["seconds"] for r in rows if r["variant"].startswith(m) and int(r["variant"].split()[-1]) in both)
             for m in ("recompute", "unrolled")}
    fastest = min(speed, key=speed.get) if both else "n/a"
    return {"section": "trajectory", "input": "1x28x28, 10 classes, IPC 10 (batch_syn = all 100), ConvNet width 128, "
                                              "non-siamese DSA, memory = ru_maxrss of a fresh process per cell",
            "rows": rows, "peak_growth_10_to_40_recompute": growth["recompute"],
            "peak_growth_10_to_40_unrolled": growth["unrolled"], "fastest_mode": fastest}


EVAL_OPTIONS = {"epochs": 300, "width": 128, "threads": 0}  # set from --eval-* flags


def bench_evaluator(device: torch.device, repeats: int) -> dict:
    """5 seeds of ConvNet on a 100-image mnist5k subset (10 per class), standard protocol, vectorised vs
    sequential in one run (same seeds, so accuracies should agree too). ``repeats`` is unused: one timed
    run of each mode (a full training run is long enough to time once)."""
    from condense.data import load_dataset
    from condense.evaluation import evaluate, get_protocol
    from condense.store import SynthSet

    epochs, width = EVAL_OPTIONS["epochs"], EVAL_OPTIONS["width"]
    before = torch.get_num_threads()
    if EVAL_OPTIONS["threads"]:
        torch.set_num_threads(EVAL_OPTIONS["threads"])
    data = load_dataset("mnist5k", device="cpu")
    idx = torch.cat([torch.nonzero(data.train_y == c).squeeze(1)[:10] for c in range(data.num_classes)])
    synth = SynthSet(images=data.train_x[idx].clone(), labels=data.train_y[idx].clone(), dataset="mnist5k",
                     num_classes=data.num_classes, class_names=data.class_names, mean=data.mean, std=data.std,
                     method="first-10-per-class")
    proto = get_protocol("standard", epochs=epochs)
    rows = []
    for sequential in (False, True):
        t0 = time.perf_counter()
        rep = evaluate(synth, models=["ConvNet"], runs=5, protocol=proto, dataset=data, device=str(device),
                       sequential=sequential, model_args={"width": width})
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        r = rep.results["ConvNet"]
        rows.append({"variant": f"{r.trainer}: 5 seeds x {epochs} epochs (total s)", "seconds": seconds,
                     "s_per_epoch_all_seeds": seconds / epochs, "acc_mean": r.mean, "acc_std": r.std})
    torch.set_num_threads(before)
    return {"section": "evaluator",
            "input": f"mnist5k 100 images (10/class), ConvNet width {width}, protocol standard {epochs} epochs, "
                     f"5 seeds, {EVAL_OPTIONS['threads'] or before} threads",
            "rows": rows, "speedup_vectorised_vs_sequential": rows[1]["seconds"] / rows[0]["seconds"]}


FLOOR_OPTIONS = {"set": "", "dataset": None, "epochs": 50}


def official_style_evaluation(synth, data, epochs: int, seed: int) -> tuple[float, float]:
    """The DC/DM ``evaluate_synset`` recipe as its paper describes it (Zhao et al.; VICO-UoE utils), written here
    as a plain loop: a shuffling DataLoader of batch 256, non-siamese DSA per batch, SGD momentum 0.9 wd 5e-4,
    a fresh optimiser at lr x0.1 after epoch epochs//2 + 1, epochs + 1 epochs, one test pass at the end
    (DataLoader, batch 256). Returns (seconds, test accuracy)."""
    from condense.augment import dsa_for
    from condense.models import create_model

    torch.manual_seed(seed)
    c, h, w = data.image_shape
    net = create_model("ConvNet", c, data.num_classes, (h, w))
    images, labels = synth.decode()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images.detach(), labels), batch_size=256,
                                         shuffle=True)
    dsa, lr = dsa_for(data.hflip_safe), 0.01
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    t0 = time.perf_counter()
    for ep in range(epochs + 1):
        net.train()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(net(dsa(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep == epochs // 2 + 1:
            lr *= 0.1
            opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.test_x, data.test_y), batch_size=256):
            correct += int((net(x).argmax(1) == y).sum())
    return time.perf_counter() - t0, 100 * correct / len(data.test_y)


def bench_evaluator_floor(device: torch.device, repeats: int) -> dict:
    """condense's evaluator (protocol standard cut to --floor-epochs, one run) against the official-style loop on
    the same set and data, alternated ``repeats`` times (A, B, B, A, ...); seconds per epoch and accuracies."""
    from condense.evaluation import evaluate, get_protocol, real_data_for
    from condense.store import SynthSet

    synth = SynthSet.load(FLOOR_OPTIONS["set"])
    data = real_data_for(synth, FLOOR_OPTIONS["dataset"], device=torch.device("cpu"))
    epochs, ours, theirs = FLOOR_OPTIONS["epochs"], [], []
    proto = get_protocol("standard", epochs=epochs)
    def condense_run(r):
        t0 = time.perf_counter()
        rep = evaluate(synth, protocol=proto, runs=1, seed=r, dataset=data, device="cpu")
        ours.append((time.perf_counter() - t0, rep.results["ConvNet"].mean))

    for r in range(repeats):  # A, B, B, A, ...: neither side always runs first (warm caches favour the second)
        if r % 2 == 0:
            condense_run(r)
        theirs.append(official_style_evaluation(synth, data, epochs, seed=r))
        if r % 2 == 1:
            condense_run(r)
    from condense.evaluation.evaluator import CURVE_PER_CLASS

    rows = [{"variant": f"condense evaluate (standard, test read once, {proto.checkpoints} checkpoint passes over "
                        f"{CURVE_PER_CLASS} images per class)",
             "seconds": statistics.median(t for t, _ in ours) / epochs, "acc_mean": statistics.mean(a for _, a in ours)},
            {"variant": "official-style loop (DataLoader, epochs + 1, one test pass)",
             "seconds": statistics.median(t for t, _ in theirs) / (epochs + 1),
             "acc_mean": statistics.mean(a for _, a in theirs)}]
    return {"section": "evaluator_floor", "input": f"{FLOOR_OPTIONS['set']}, {epochs} epochs, {repeats} pairs (A B, B A, ...)",
            "unit": "s / epoch", "rows": rows, "ratio_ours_to_official": rows[0]["seconds"] / rows[1]["seconds"]}


POOL_SCHEDULES = {  # (pool, networks trained per iteration, steps each, real batch): IDM's official one first
    "idm official (2 nets x 10 steps x 256)": dict(pool=100, pool_train_nets=2, pool_steps=10, pool_batch=256),
    "1 net x 2 steps x 256": dict(pool=100, pool_train_nets=1, pool_steps=2, pool_batch=256),
    "1 net x 1 step x 128": dict(pool=100, pool_train_nets=1, pool_steps=1, pool_batch=128),
}


def bench_pool(device: torch.device, repeats: int) -> dict:
    """One outer iteration of plain DM against DM with a network pool (and factor 2, as IDM), on
    CIFAR-10-shaped input, IPC 10, batch_real 256, ConvNet width 128. The variants are timed in turn
    (A, B, C, A, B, C, ...) within one run, so machine noise hits them alike; medians and ratios."""
    data = random_dataset()
    variants = {"dm (fresh random network)": {}, "dm, factor 2": {"factor": 2},
                **{f"dm, factor 2, pool: {k}": {"factor": 2, "ce_weight": 0.5, **v} for k, v in POOL_SCHEDULES.items()}}
    methods = {}
    for name, options in variants.items():
        m = prepare("dm", data, 10, device=str(device), batch_real=256, iterations=1, **options)
        m.synth = m.init()
        for it in range(2):  # warm-up; the pool's members get trained once, so the regulariser is on
            m.step(it)
        methods[name] = m
    times = {name: [] for name in variants}
    for r in range(repeats):
        for name, m in methods.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            m.step(2 + r)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["dm (fresh random network)"])
    rows = [{"variant": name, "seconds": statistics.median(t), "x_plain_dm": statistics.median(t) / base}
            for name, t in times.items()]
    return {"section": "pool", "input": "3x32x32, 10 classes, IPC 10, batch_real 256, ConvNet width 128, interleaved",
            "rows": rows}


def _bins_cell(greedy: str, n: int, threads: int) -> dict:
    """DQ's 10 bins of one class of ``n`` images in a fresh process (ru_maxrss is this cell's own peak)."""
    import resource

    from condense.synth.bins import class_bins
    from condense.synth.grad_embed import GradEmbedding

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    # shaped like a CIFAR-10 class under a width-128 ConvNet: softmax − one-hot bias parts, ReLU features
    bias = torch.softmax(torch.randn(n, 10, generator=g), 1) - torch.nn.functional.one_hot(
        torch.zeros(n, dtype=torch.long), 10)
    emb = GradEmbedding(bias.float(), torch.relu(torch.randn(n, 2048, generator=g)))
    start_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    class_bins(emb, 10, 1.0, greedy, 0.01, torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": f"{greedy}, {n} images", "seconds": seconds, "cifar10_total_s": 10 * seconds,
            "peak_rss_mb": peak_mb, "rss_above_embeddings_mb": peak_mb - start_mb}


def bench_bins(device: torch.device, repeats: int) -> dict:
    """DQ bin generation (10 bins, GraphCut λ = 1) for one CIFAR-10-sized class, per greedy order, each in a fresh
    process; CIFAR-10's total is ten classes. ``repeats`` is unused: one class is long enough to time once. The
    embeddings are random factors of the real shape (bias 10, features 2048); `condense distill --method dq`
    records the real per-class seconds in its bins file (``seconds_per_class``)."""
    import concurrent.futures
    import multiprocessing

    rows = []
    ctx = multiprocessing.get_context("spawn")
    for greedy in ("naive", "stochastic", "lazy"):
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            rows.append(pool.submit(_bins_cell, greedy, 5000, torch.get_num_threads()).result())
        print(json.dumps(rows[-1]), flush=True)
    return {"section": "bins", "input": "one class of 5,000 gradient embeddings (10 + 2048 factors), 10 bins; "
                                        "seconds per class, memory = ru_maxrss of a fresh process", "rows": rows}


SECTIONS = {"dm": bench_dm, "datadam": bench_datadam, "trajectory": bench_trajectory, "evaluator": bench_evaluator,
            "pool": bench_pool, "evaluator_floor": bench_evaluator_floor, "bins": bench_bins}


def print_table(result: dict) -> None:
    from condense.evaluation.tables import console, titled_table

    table = titled_table(f"{result['section']}: {result['input']}")
    table.add_column("variant")
    table.add_column(result.get("unit", "s / iteration"), justify="right")
    more = [k for k in result["rows"][0] if k not in ("variant", "seconds")]  # e.g. memory columns
    for k in more:
        table.add_column(k, justify="right")
    for row in result["rows"]:
        table.add_row(row["variant"], f"{row['seconds']:.3f}",
                      *(f"{row.get(k):.1f}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in more))
    console().print(table)
    extras = {k: v for k, v in result.items() if k not in ("section", "input", "rows", "unit")}
    console().print(", ".join(f"{k} = {v:.2f}" if isinstance(v, float) else f"{k} = {v}" for k, v in extras.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--section", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=os.path.join("eval", "bench", "bench.json"))
    parser.add_argument("--eval-epochs", type=int, default=300, help="evaluator section: epochs per seed")
    parser.add_argument("--eval-width", type=int, default=128, help="evaluator section: ConvNet width")
    parser.add_argument("--eval-threads", type=int, default=0, help="evaluator section: torch threads (0: keep)")
    parser.add_argument("--floor-set", default="synth_sets/zoo/cifar10_dm_ipc10.h5", help="evaluator_floor section: set")
    parser.add_argument("--floor-dataset", default=None, help="evaluator_floor section: e.g. imagefolder:DIR")
    parser.add_argument("--floor-epochs", type=int, default=50)
    args = parser.parse_args()
    EVAL_OPTIONS.update(epochs=args.eval_epochs, width=args.eval_width, threads=args.eval_threads)
    FLOOR_OPTIONS.update(set=args.floor_set, dataset=args.floor_dataset, epochs=args.floor_epochs)
    device = resolve_device(args.device)
    results = []
    for name in args.section or [s for s in sorted(SECTIONS) if s != "evaluator_floor"]:  # it needs CIFAR-10
        result = SECTIONS[name](device, args.repeats)
        print_table(result)
        results.append(result)
    meta = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.machine(), "cpus": os.cpu_count()}
    write_json(args.json, {"meta": meta, "results": results})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
