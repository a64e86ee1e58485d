"""torch.distributed helpers for torchrun: rank, world, sharding and gathering. No home-made scheduler.

Under ``torchrun`` (WORLD_SIZE > 1 in the environment) ``init()`` joins the process group with
gloo on CPU and nccl when CUDA is present; the same code runs unchanged in a single process.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist

from .errors import CondenseError

T = TypeVar("T")


def env_int(name: str, default: int, low: int = 0) -> int:
    """A torchrun variable as an integer >= ``low``; a malformed one is one sentence."""
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low:
        raise CondenseError(f"The environment variable {name} must be a whole number >= {low} (torchrun sets it), "
                            f"got {raw!r}.")
    return value


def launched() -> bool:
    return env_int("WORLD_SIZE", 1, 1) > 1


def init() -> bool:
    """Join the torchrun process group (no-op outside torchrun or when already joined); True if it joined.

    On CPU the ranks share the cores instead of each spawning a thread per core.
    """
    if not launched() or dist.is_initialized():
        return False
    env_int("RANK", 0)
    try:
        if torch.cuda.is_available():
            torch.cuda.set_device(env_int("LOCAL_RANK", 0))
            dist.init_process_group(backend="nccl")
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // env_int("WORLD_SIZE", 1, 1)))
            dist.init_process_group(backend="gloo")
    except (ValueError, RuntimeError) as err:  # e.g. WORLD_SIZE set by hand, without torchrun's rendezvous
        raise CondenseError(f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but the torchrun process group cannot be "
                            f"joined ({str(err).splitlines()[0].rstrip('.')}); launch with torchrun or unset "
                            f"WORLD_SIZE.") from None
    return True


@contextmanager
def session() -> Iterator[None]:
    """The process group for the length of one library call: joined if torchrun launched us and nobody
    joined it yet, and left again afterwards (a caller that joined it keeps it)."""
    joined = init()
    try:
        yield
        if joined:  # every rank done talking before any tears the group down: gloo aborts a rank whose peer's
            barrier()  # socket vanished mid-exchange (skipped after an error, where a peer may be gone)
    finally:
        if joined:
            finish()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0, also before joining and after leaving the group (from torchrun's RANK)."""
    return (rank() if dist.is_initialized() else env_int("RANK", 0)) == 0


def device_name(requested: str) -> str:
    """Each rank on its own GPU under nccl; CPU/other requests unchanged."""
    if requested in ("auto", "cuda") and dist.is_initialized() and torch.cuda.is_available():
        return f"cuda:{env_int('LOCAL_RANK', 0)}"
    return requested


def shard(items: Sequence[T]) -> list[T]:
    """This rank's share: round robin, so every rank gets a mix (e.g. of architectures)."""
    return list(items[rank()::world()])


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` on every rank, in rank order (pickled by torch; our own objects only)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def sum_stats(stats: dict[str, float]) -> dict[str, float]:
    """Numbers summed over ranks (per-class loss shares -> the total); unchanged in one process."""
    if not dist.is_initialized():
        return stats
    keys = sorted(k for k, v in stats.items() if isinstance(v, (int, float)))
    t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {**stats, **dict(zip(keys, t.tolist()))}


def share_rows(tensor: torch.Tensor, mine: torch.Tensor) -> None:
    """In place: row i of ``tensor`` becomes the value held by the rank whose ``mine`` mask has it.

    Ranks own disjoint rows (e.g. the synthetic images of their classes); after this every rank
    holds every rank's latest rows, bit for bit.
    """
    if not dist.is_initialized():
        return
    parts = gather((mine.cpu(), tensor.detach()[mine].cpu()))
    with torch.no_grad():
        for rows, values in parts:
            tensor[rows.to(tensor.device)] = values.to(tensor.device, tensor.dtype)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
