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
from condense.models.layers import AvgPool2x2
from condense.synth import prepare
from condense.synth.base import iteration_seed, make_generator
from condense.synth.matching import frozen


def random_dataset(shape=(3, 32, 32), classes=10, per_class=300, name="cifar10-shaped") -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    n = classes * per_class
    return ImageDataset(name=name, train_x=torch.randn(n, *shape, generator=g),
                        train_y=torch.arange(classes).repeat_interleave(per_class),
                        test_x=torch.randn(classes, *shape, generator=g), test_y=torch.arange(classes),
                        class_names=[str(c) for c in range(classes)], mean=(0.5,) * shape[0], std=(0.25,) * shape[0],
                        dsa_strategy="color_crop_cutout_flip_scale_rotate")


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
    gen = make_generator(1)
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
    real_x, _ = method.ctx.sampler.sample_classes(256, make_generator(iteration_seed(0, 0)))

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
    real_x, _ = method.ctx.sampler.sample_classes(64, make_generator(iteration_seed(0, 0)))

    def bare_forward():
        with torch.no_grad():
            net.forward_with_activations(real_x)

    def attention_forward():
        with torch.no_grad():
            attention_features(net, real_x, method.cfg.power)

    def chunked_forward():
        chunked(net.forward_with_activations, real_x)

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


SECTIONS = {"dm": bench_dm, "datadam": bench_datadam}


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['section']}: {result['input']}")
    table.add_column("variant")
    table.add_column("s / iteration", justify="right")
    for row in result["rows"]:
        table.add_row(row["variant"], f"{row['seconds']:.3f}")
    Console().print(table)
    extras = {k: v for k, v in result.items() if k not in ("section", "input", "rows")}
    Console().print(", ".join(f"{k} = {v:.2f}" if isinstance(v, float) else f"{k} = {v}" for k, v in extras.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--section", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=os.path.join("eval", "bench", "bench.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    results = []
    for name in args.section or sorted(SECTIONS):
        result = SECTIONS[name](device, args.repeats)
        print_table(result)
        results.append(result)
    meta = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.machine(), "cpus": os.cpu_count()}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
