"""The shared distillation loop: iterations, progress, atomic checkpoints, resume, NaN guard.

Each iteration reseeds torch's global RNG from (seed, iteration), so a run resumed from a
checkpoint replays exactly the draws the uninterrupted run would have made.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Optional

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .. import dist
from ..errors import CondenseError
from ..io import atomic_write
from ..seeding import seed_for
from ..store import SynthSet
from .base import OnStep, Synthesizer

CHECKPOINT_FORMAT = 1


@dataclass
class DriverOptions:
    out: Optional[str] = None        # final SynthSet path; None keeps everything in memory
    checkpoint_every: int = 25       # iterations between checkpoints (0 disables them)
    resume: bool = False
    quiet: bool = False
    on_step: Optional[OnStep] = None  # called after every iteration (logging, quick evals)


def checkpoint_path(out: str) -> str:
    return out + ".ckpt.pt"


def _config_key(method: Synthesizer) -> str:
    """The settings a checkpoint must agree on to be resumed (everything but the budget)."""
    cfg = json.loads(json.dumps(method.synth.config, default=str))
    cfg["method_config"].pop("iterations", None)
    return json.dumps(cfg, sort_keys=True)


def save_checkpoint(path: str, method: Synthesizer, iteration: int) -> None:
    """Every rank shares its part first (torchrun); rank 0 alone writes."""
    method.sync()
    if not dist.is_main():
        return
    synth = method.synth
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config_key": _config_key(method),
        "iteration": iteration,
        "images": synth.images.detach().cpu().clone(),
        "labels": synth.labels.detach().cpu().clone(),
        "lr": None if synth.lr is None else synth.lr.detach().cpu().clone(),
        "method_state": method.state_dict(),
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str, method: Synthesizer) -> int:
    """Restore the method from ``path``; returns the iteration to continue from."""
    if not os.path.isfile(path):
        raise CondenseError(f"Nothing to resume: checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise CondenseError(f"Checkpoint {path} is corrupt or truncated; delete it to start over.") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CondenseError(f"Checkpoint {path} has an unknown format; delete it to start over.")
    if payload["config_key"] != _config_key(method):
        raise CondenseError(f"Checkpoint {path} was made with different settings; "
                            "rerun with the same options or delete it to start over.")
    synth = method.synth
    with torch.no_grad():
        synth.images.copy_(payload["images"].to(synth.images.device))
        synth.labels.copy_(payload["labels"].to(synth.labels.device))
        if synth.lr is not None and payload["lr"] is not None:
            synth.lr.copy_(payload["lr"].to(synth.lr.device))
    method.load_state_dict(payload["method_state"])
    return int(payload["iteration"])


def _finite(stats: dict[str, float], synth: SynthSet) -> bool:
    if not all(math.isfinite(v) for v in stats.values() if isinstance(v, (int, float))):
        return False
    tensors = [synth.images] + ([synth.lr] if synth.lr is not None else [])
    return all(bool(torch.isfinite(t.detach()).all()) for t in tensors)


def _progress(quiet: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), disable=quiet, transient=False)


def run(method: Synthesizer, iterations: int, options: DriverOptions) -> SynthSet:
    """Initialise, iterate with checkpoints and guards, and save the final set (atomically)."""
    synth = method.init()
    method.synth = synth
    ckpt = checkpoint_path(options.out) if options.out else None
    start = 0
    if options.resume:
        if ckpt is None:
            raise CondenseError("--resume needs an output path to find the checkpoint.")
        start = load_checkpoint(ckpt, method)
        if start > iterations:
            raise CondenseError(f"Checkpoint {ckpt} is already at iteration {start}, beyond the requested "
                                f"{iterations}; ask for at least {start} iterations.")
    if method.iterative and iterations > 0:
        if ckpt and options.checkpoint_every > 0 and start == 0:
            save_checkpoint(ckpt, method, 0)
        last_good = start
        with _progress(options.quiet or not dist.is_main()) as bar:
            task = bar.add_task(method.name, total=iterations, completed=start, loss="-")
            for it in range(start, iterations):
                torch.manual_seed(seed_for("iteration", synth.seed, it))
                t0 = time.perf_counter()
                stats = dist.sum_stats(method.step(it))  # per-rank loss shares -> the total
                stats["seconds"] = time.perf_counter() - t0
                if not _finite(stats, synth):
                    where = f"; the last good checkpoint (iteration {last_good}) is kept in {ckpt}" if ckpt else ""
                    raise CondenseError(f"The {method.name} loss diverged (NaN or inf) at iteration {it + 1}{where}; "
                                        "lower the learning rate and resume or restart.")
                bar.update(task, advance=1, loss=f"{stats.get('loss', float('nan')):.4g}")
                done = it + 1
                if ckpt and options.checkpoint_every > 0 and (done % options.checkpoint_every == 0 or done == iterations):
                    save_checkpoint(ckpt, method, done)
                    last_good = done
                if options.on_step:  # after the checkpoint, so an interrupt here loses nothing
                    options.on_step(done, stats)
    method.sync()
    final = synth.detached()
    final.iterations_done = iterations if method.iterative else 0
    if options.out and dist.is_main():
        final.save(options.out)
        if ckpt and os.path.exists(ckpt):
            os.remove(ckpt)
    return final
