"""Named random streams: every seed the library derives from a user's seed comes from this one table.

A stream maps (seed, index) to ``a·seed + b·index + c``, reduced modulo ``m`` when ``m`` is set. The
index is what varies inside one run: the outer iteration, the expert, the evaluation run, the audit
draw, the shadow model. Reproducibility and resume rest on this rule: a run draws everything for
step ``i`` from a generator seeded with ``seed_for(stream, seed, i)``, never from a generator that
carried state across steps, so a run resumed at step ``i`` makes the draws of an uninterrupted one.

The constants are the ones the streams had when each was written separately; they are kept so that
published sets and results reproduce bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .errors import CondenseError


@dataclass(frozen=True)
class Stream:
    a: int
    b: int
    c: int
    modulus: Optional[int] = None
    meaning: str = ""


STREAMS: dict[str, Stream] = {
    "iteration": Stream(1_000_003, 7_919, 12_345, 2**62,
                        "synthesizer draws at outer iteration i; i = -1 the initial set, -2 a coreset's feature net"),
    "expert": Stream(1_000_003, 104_729, 77, 2**62, "initialisation, batch order and augmentation of expert i"),
    "eval_run": Stream(1000, 1, 0, None, "initialisation, batch order and augmentation of evaluation network i"),
    "audit": Stream(7919, 1, 0, None, "an audit check's draws; i names the draw (canaries, population, targets)"),
    "shadow_set": Stream(100_003, 1, 10_000, None, "the distillation of membership-inference shadow i"),
    "shadow_random": Stream(100_003, 1, 30_000, None, "the random subset of membership-inference shadow i"),
    "shadow_model": Stream(100_003, 1, 20_000, None, "the model trained in membership-inference shadow i"),
    "lr_grid": Stream(1_000_003, 67_867_967, 19, 2**62, "the network of candidate i of a learning-rate grid"),
    "ior_random": Stream(1_000_003, 49_979_687, 11, 2**62, "the random real subset of run i of an IOR comparison"),
    "pool_net": Stream(1_000_003, 15_485_863, 31, 2**62, "the initialisation of the i-th network of a network pool"),
    "pool_train": Stream(1_000_003, 32_452_843, 53, 2**62, "which pool networks train after outer iteration i, on which real batches"),
    "ssl": Stream(1_000_003, 104_395_301, 83, 2**62,
                  "self-supervised training: i = 0 the initialisation, i >= 1 the batch order and views of epoch i"),
    "transfer_labels": Stream(1_000_003, 122_949_823, 89, 2**62, "the labelled target images of transfer run i"),
    "transfer_random": Stream(1_000_003, 141_650_963, 97, 2**62, "the random source subset of transfer run i"),
    "teacher": Stream(1_000_003, 86_028_121, 71, 2**62,
                      "teacher training: i = 0 the initialisation, i >= 1 the batch order and augmentation of epoch i"),
    "mae": Stream(1_000_003, 179_424_673, 101, 2**62,
                  "masked-autoencoder training: i = 0 the initialisation, i >= 1 the batch order and masks of epoch i"),
    "embedding_net": Stream(1_000_003, 217_645_177, 103, 2**62,
                            "graphcut/dq's gradient-embedding network: i = 0 its initialisation, i = 1 its training"),
    "bin_greedy": Stream(1_000_003, 236_887_691, 107, 2**62, "stochastic greedy's candidate draws binning class i"),
    "bin_sample": Stream(1_000_003, 256_203_161, 109, 2**62, "dq: the rows sampled from bin i of every class"),
}


def seed_for(stream: str, seed: int, index: int = 0) -> int:
    if stream not in STREAMS:
        raise CondenseError(f"Unknown random stream '{stream}'; streams are: {', '.join(STREAMS)}.")
    s = STREAMS[stream]
    value = s.a * int(seed) + s.b * int(index) + s.c
    return value % s.modulus if s.modulus else value


def generator(stream: str, seed: int, index: int = 0) -> torch.Generator:
    """A CPU generator for one step of one stream (draws are moved to the device afterwards)."""
    return torch.Generator().manual_seed(seed_for(stream, seed, index))


def int31(seed: int) -> int:
    """A seed for libraries that take 31-bit seeds (faiss k-means, numpy's legacy API)."""
    return int(seed) % (2**31)
