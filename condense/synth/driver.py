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
from typing import Any, Optional

import torch

from .. import dist
from ..checkpoint import checkpoint_path, read_checkpoint as read_checked, write_checkpoint
from ..errors import CondenseError
from ..progress import loss_progress
from ..seeding import seed_for
from ..store import SynthSet
from .base import OnStep, Synthesizer

CHECKPOINT_FORMAT = 2  # 2: a checksum over every field
# Fields of a checkpoint and the type each must have ("lr" may also be None).
_FIELDS = {"format": int, "config_key": str, "iteration": int, "images": torch.Tensor, "labels": torch.Tensor,
           "lr": torch.Tensor, "method_state": dict}


@dataclass
class DriverOptions:
    out: Optional[str] = None        # final SynthSet path; None keeps everything in memory
    checkpoint_every: int = 25       # iterations between checkpoints (0 disables them)
    resume: bool = False
    restart: bool = False            # discard an existing checkpoint and start from iteration 0
    quiet: bool = False
    on_step: Optional[OnStep] = None  # called after every iteration (logging, quick evals)


def _without_hints(value: Any) -> Any:
    """``value`` without the file names of the networks it names by checksum (teachers, KRR-ST's target): hints
    for finding them, not settings, so a run resumes after its networks were moved or renamed."""
    if isinstance(value, dict):
        return {k: _without_hints(v) for k, v in value.items() if not (k == "file" and "checksum" in value)}
    if isinstance(value, list):
        return [_without_hints(v) for v in value]
    return value


def _config_key(method: Synthesizer) -> str:
    """The settings a checkpoint must agree on to be resumed: everything but the budget, which may grow unless
    the method's lr schedule spans it, and the file-name hints of named networks."""
    cfg = _without_hints(json.loads(json.dumps(method.synth.config, default=str)))
    if not method.scheduled:
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
    write_checkpoint(path, payload)


def read_checkpoint(path: str) -> dict[str, Any]:
    """The checkpoint's fields, checked for type and against its checksum; any problem is one sentence."""
    if not os.path.isfile(path):
        raise CondenseError(f"Nothing to resume: checkpoint {path} does not exist.")
    payload = read_checked(path, what="Checkpoint", version=CHECKPOINT_FORMAT, fields=_FIELDS, nullable=("lr",),
                           fix="delete it or rerun with --restart to start over")
    if payload["iteration"] < 0:
        raise CondenseError(f"Checkpoint {path} is at iteration {payload['iteration']}; "
                            "delete it or rerun with --restart to start over.")
    return payload


def _spec(t: Optional[torch.Tensor]) -> Optional[tuple]:
    return None if t is None else (tuple(t.shape), t.dtype)


def load_checkpoint(path: str, method: Synthesizer) -> int:
    """Restore the method from ``path``; returns the iteration to continue from."""
    payload = read_checkpoint(path)
    if payload["config_key"] != _config_key(method):
        raise CondenseError(f"Checkpoint {path} was made with different settings; "
                            "rerun with the same options, or with --restart to start over.")
    synth = method.synth
    for name in ("images", "labels", "lr"):
        if _spec(payload[name]) != _spec(getattr(synth, name)):
            raise CondenseError(f"Checkpoint {path} holds '{name}' that do not fit this run's set; "
                                "rerun with --restart to start over.")
    with torch.no_grad():
        synth.images.copy_(payload["images"].to(synth.images.device))
        synth.labels.copy_(payload["labels"].to(synth.labels.device))
        if synth.lr is not None:
            synth.lr.copy_(payload["lr"].to(synth.lr.device))
    try:
        method.load_state_dict(payload["method_state"])
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError):
        raise CondenseError(f"Checkpoint {path} holds a method state this run cannot use; "
                            "rerun with --restart to start over.") from None
    return int(payload["iteration"])


def check_start(out: Optional[str], resume: bool, restart: bool) -> None:
    """Before any work: refuse a resume without a sound checkpoint, and a fresh start over an unfinished run."""
    if resume and restart:
        raise CondenseError("--resume continues a checkpoint and --restart discards it; give only one.")
    if out is None:
        if resume:
            raise CondenseError("--resume needs an output path to find the checkpoint.")
        return
    ckpt = checkpoint_path(out)
    if resume:
        read_checkpoint(ckpt)
    elif os.path.exists(ckpt) and not restart:
        raise CondenseError(f"{ckpt} holds an unfinished run; continue it with --resume or discard it with "
                            f"--restart.")


def _finite(stats: dict[str, float], synth: SynthSet) -> bool:
    if not all(math.isfinite(v) for v in stats.values() if isinstance(v, (int, float))):
        return False
    tensors = [synth.images] + ([synth.lr] if synth.lr is not None else [])
    return all(bool(torch.isfinite(t.detach()).all()) for t in tensors)



def run(method: Synthesizer, iterations: int, options: DriverOptions) -> SynthSet:
    """Initialise, iterate with checkpoints and guards, and save the final set (atomically)."""
    synth = method.init()
    method.synth = synth
    ckpt = checkpoint_path(options.out) if options.out else None
    check_start(options.out, options.resume, options.restart)
    start = 0
    if options.resume:
        start = load_checkpoint(ckpt, method)
        if start > iterations:
            raise CondenseError(f"Checkpoint {ckpt} is already at iteration {start}, beyond the requested "
                                f"{iterations}; ask for at least {start} iterations.")
    elif options.restart and ckpt and os.path.exists(ckpt) and dist.is_main():
        os.remove(ckpt)
    if method.iterative and iterations > 0:
        if ckpt and options.checkpoint_every > 0 and start == 0:
            save_checkpoint(ckpt, method, 0)
        last_good = start
        with loss_progress(options.quiet or not dist.is_main()) as bar:
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
    method.finish()  # e.g. the decoupled methods label their set with the teacher, once
    final = method.synth.detached()
    final.iterations_done = iterations if method.iterative else 0
    if options.out and dist.is_main():
        final.save(options.out)
        if ckpt and os.path.exists(ckpt):
            os.remove(ckpt)
    return final
