"""DQ's bins: every class split into N non-overlapping bins by successive greedy GraphCut selections, the bin
file that keeps them, and the class-balanced sampling of the same fraction from every bin.

Bin generation (DQ's ``quantize_sample.py``, Zhou et al., ICCV 2023, magic-research/Dataset_Quantization): per
class, bin 0 is the GraphCut selection over the whole class, bin 1 the selection over what bin 0 left, and so on;
the last bin is what remains. Sizes split the class evenly (the first n mod N bins one larger). Early bins come
out representative, later ones diverse.

Bin sampling (``quantize_bin.py``): the same fraction ρ of every bin, uniformly, per class. Asked for m images of
a class of n, bin b of size s_b gives ⌊m·s_b/n⌋ and the remaining images go to the bins with the largest
fractional parts (equal parts: earlier bins first), so a class always gives exactly m; the rows of bin b come
from ``generator("bin_sample", seed, b)``, drawn class after class.

Bin file (HDF5, written atomically, never pickled): datasets ``bin`` and ``rank`` (int64, one per training row:
its bin, and its place in that bin's greedy order) and attributes naming the data (dataset, fingerprint,
rows), how the bins were made (the embedding network's checksum, N, λ, greedy, ε, seed) with the seconds and
similarity-matrix bytes of every class, and a SHA-256 over all of it. Reading checks each of them against the
run and refuses, in one sentence, bins of other data.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import h5py
import numpy as np
import torch

from ..errors import CondenseError
from ..io import unreadable, write_hdf5
from ..seeding import generator
from .grad_embed import GradEmbedding
from .submodular import greedy_graphcut

KIND = "condense-dq-bins"
FORMAT = 1


@dataclass
class Bins:
    """Every training row's bin and rank, and how they were made (``meta``: see the module docstring)."""

    bin: torch.Tensor   # (N,) int64
    rank: torch.Tensor  # (N,) int64
    meta: dict[str, Any] = field(default_factory=dict)


def bin_sizes(n: int, num_bins: int) -> list[int]:
    return [n // num_bins + (b < n % num_bins) for b in range(num_bins)]


def class_bins(emb: GradEmbedding, num_bins: int, lam: float, greedy: str, epsilon: float,
               gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bins of one class's embeddings: (bin, rank) per row."""
    n = emb.bias.shape[0]
    sim = None if greedy == "stochastic" else emb.cosine().numpy()
    bins, rank = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    sizes = bin_sizes(n, num_bins)
    for b, size in enumerate(sizes):
        if b == len(sizes) - 1:  # the last bin is what is left, as DQ saves it
            picks = list(np.flatnonzero(free))
        else:
            picks = greedy_graphcut(emb, size, lam, greedy, pool=free, sim=sim, epsilon=epsilon, generator=gen)
        bins[picks], rank[picks] = b, np.arange(len(picks))
        free[picks] = False
    return bins, rank


def generate_bins(emb: GradEmbedding, labels: torch.Tensor, num_classes: int, num_bins: int, lam: float = 1.0,
                  greedy: str = "naive", epsilon: float = 0.01, seed: int = 0,
                  on_class: Optional[Callable[[int, float], None]] = None) -> Bins:
    """Bins of every class; ``meta`` records the seconds and similarity bytes per class."""
    labels = labels.cpu()
    n = len(labels)
    bins, rank = torch.full((n,), -1, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    seconds, sim_bytes = [], []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).squeeze(1)
        t0 = time.perf_counter()
        b, r = class_bins(emb.rows(members), num_bins, lam, greedy, epsilon, generator("bin_greedy", seed, c))
        seconds.append(time.perf_counter() - t0)
        sim_bytes.append(0 if greedy == "stochastic" else 4 * len(members) ** 2)
        bins[members], rank[members] = torch.from_numpy(b), torch.from_numpy(r)
        if on_class is not None:
            on_class(c, seconds[-1])
    return Bins(bins, rank, {"seconds_per_class": seconds, "similarity_bytes_per_class": sim_bytes})


def allocate(m: int, sizes: list[int]) -> list[int]:
    """How many of m images each bin gives: the same fraction m/n of every bin, largest remainders first."""
    n = sum(sizes)
    take = [m * s // n for s in sizes]
    by_remainder = sorted(range(len(sizes)), key=lambda b: (-(m * sizes[b] % n), b))
    for b in by_remainder[:m - sum(take)]:
        take[b] += 1
    return take


def sample_bins(bins: Bins, labels: torch.Tensor, num_classes: int, per_class: list[int], seed: int) -> torch.Tensor:
    """Training rows, class by class (bins in order within a class): ``per_class[c]`` from class c, the same
    fraction of each of its bins, uniformly at random; bit-exact for a seed."""
    labels = labels.cpu()
    num_bins = int(bins.bin.max()) + 1
    chosen: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
    members = [[torch.nonzero((labels == c) & (bins.bin == b)).squeeze(1) for b in range(num_bins)]
               for c in range(num_classes)]
    takes = [allocate(per_class[c], [len(rows) for rows in members[c]]) for c in range(num_classes)]
    for b in range(num_bins):
        g = generator("bin_sample", seed, b)
        for c in range(num_classes):
            rows = members[c][b]
            chosen[c].append(rows[torch.randperm(len(rows), generator=g)[:takes[c][b]]])
    return torch.cat([torch.cat(parts) for parts in chosen])


# ---- bin files -------------------------------------------------------------------------------------------------
def _checksum(bin_: np.ndarray, rank: np.ndarray, attrs: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for arr in (bin_, rank):
        digest.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
    digest.update(json.dumps(attrs, sort_keys=True).encode())
    return digest.hexdigest()


def save_bins(path: str, bins: Bins) -> str:
    attrs = {"kind": KIND, "format_version": str(FORMAT), "meta": json.dumps(bins.meta, sort_keys=True),
             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    b, r = bins.bin.numpy(), bins.rank.numpy()

    def fill(f: h5py.File) -> None:
        f.create_dataset("bin", data=b)
        f.create_dataset("rank", data=r)
        f.attrs.update({**attrs, "checksum": _checksum(b, r, attrs)})

    return write_hdf5(path, fill)


def load_bins(path: str, expect: dict[str, Any], rows: int) -> Bins:
    """The bins in ``path``, refused in one sentence unless they are sound bins of ``rows`` training rows made as
    ``expect`` says (its keys must match the file's: dataset fingerprint, network, N, λ, greedy, ...)."""
    if not os.path.isfile(path):
        raise CondenseError(f"Bins file {path} does not exist.")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            if attrs.get("kind") != KIND or attrs.get("format_version") != str(FORMAT):
                raise CondenseError(f"{path} is not a condense DQ bins file (format {FORMAT}).")
            ok = all(isinstance(f.get(n), h5py.Dataset) and f[n].dtype == np.int64 and f[n].shape == (rows,)
                     for n in ("bin", "rank"))
            if not ok:
                raise CondenseError(f"Bins file {path} does not hold one int64 bin and rank for each of the "
                                    f"{rows} training rows of this data.")
            b, r = f["bin"][()], f["rank"][()]
    except OSError as err:
        raise (unreadable(path, err, "Bins file") or
               CondenseError(f"{path} is not a readable HDF5 file (corrupt or truncated?).")) from None
    stored = attrs.pop("checksum", None)
    try:
        meta = json.loads(attrs["meta"])
    except (KeyError, TypeError, ValueError):
        meta = None
    if not isinstance(meta, dict) or stored != _checksum(b, r, {k: v for k, v in attrs.items()}):
        raise CondenseError(f"Bins file {path} fails its checksum (modified or corrupted).")
    if meta.get("dataset_fingerprint") != expect["dataset_fingerprint"]:
        raise CondenseError(f"Bins file {path} bins the rows of data with fingerprint "
                            f"{meta.get('dataset_fingerprint')}, not of this run's data "
                            f"({expect['dataset_fingerprint']}: other data or another --max-per-class), so its "
                            f"indices would name other images.")
    for key, want in expect.items():
        if meta.get(key) != want:
            raise CondenseError(f"Bins file {path} was made with {key} {meta.get(key)!r}, not this run's {want!r}; "
                                f"drop bins_file to bin again.")
    if b.min() < 0 or b.max() >= expect["num_bins"] or r.min() < 0:
        raise CondenseError(f"Bins file {path} has bins outside 0..{expect['num_bins'] - 1}.")
    return Bins(torch.from_numpy(b), torch.from_numpy(r), meta)
