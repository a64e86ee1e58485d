"""Full-data references: a network trained on the whole real training split under the ``full`` protocol,
measured once per (dataset, architecture) and kept as a network file with its test accuracy, so HLR
never retrains on full data. Files are named by the data's fingerprint, not by where the data lives,
so a reference built on one machine serves every copy of the same data.

The folder is ``$CONDENSE_REFERENCES``, else ``synth_sets/references`` of a source checkout. Its ``catalog.json``
(rewritten from the files after each build) keeps each file's accuracy, so the accuracy outlives the weights,
which are not committed: HLR reads the file when present, else its catalog row.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..augment import dsa_for
from ..data import ImageDataset
from ..errors import CondenseError
from ..models import NetworkInfo, create_model, read_network_info, save_network
from ..models.catalog import CATALOG, network_infos, read_network_catalog, write_network_catalog
from ..seeding import seed_for
from ..train import Labels, fit, test_accuracy
from .protocol import get_protocol
from .tables import plural


ROLE = "reference"
_KEY = "references"  # catalog.json is {"references": [rows]}
_TEXT = ("file", "dataset_fingerprint", "architecture", "model_args_hash", "protocol_hash")


def references_dir() -> str:
    return os.environ.get("CONDENSE_REFERENCES") or str(Path(__file__).resolve().parents[2] / "synth_sets" / "references")


def is_references_folder(names: list[str]) -> bool:
    """Whether a folder holds only what `condense reference` writes (so it may write there again)."""
    return all(n.startswith("full_") or n in (CATALOG, "README.md") for n in names)


def args_hash(model_args: Optional[dict]) -> str:
    return hashlib.sha256(json.dumps(model_args or {}, sort_keys=True).encode()).hexdigest()[:8]


def reference_path(folder: str, data: ImageDataset, model: str, model_args: Optional[dict] = None) -> str:
    """The file of this reference under the current ``full`` protocol: named by the data's fingerprint, the
    architecture and its arguments, and the protocol's hash, so a reference trained under an older ``full.json``
    is neither used nor overwritten."""
    return os.path.join(folder, f"full_{data.fingerprint()}_{model}_{args_hash(model_args)}_"
                                f"{get_protocol('full').digest()}.h5")


# ---- the catalog ---------------------------------------------------------------------------------------
def _row(info: NetworkInfo) -> dict[str, Any]:
    """What the catalog keeps of one reference file: enough to use its accuracy, and to rebuild and check it."""
    return {"file": os.path.basename(info.path), "dataset": info.dataset,
            "dataset_fingerprint": info.dataset_fingerprint, "architecture": info.architecture,
            "model_args": info.model_args, "model_args_hash": args_hash(info.model_args),
            "protocol": info.metrics.get("protocol"), "protocol_hash": info.metrics.get("protocol_hash"),
            "seed": info.training.get("seed"), "test_accuracy": info.metrics.get("test_accuracy"),
            "train_seconds": info.metrics.get("train_seconds"), "checksum": info.checksum,
            "bytes": os.path.getsize(info.path), "created": info.created}


def _usable(row: dict) -> bool:
    accuracy = row.get("test_accuracy")
    return all(isinstance(row.get(k), str) for k in _TEXT) and \
        isinstance(accuracy, (int, float)) and not isinstance(accuracy, bool) and 0 <= accuracy <= 100


def read_catalog(folder: str) -> list[dict[str, Any]]:
    """The catalog's rows ([] without a catalog), every field a lookup reads typed; one sentence otherwise."""
    rows = read_network_catalog(folder, _KEY, "Reference catalog")
    bad = next((r for r in rows if not _usable(r)), None)
    if bad is not None:
        raise CondenseError(f"Reference catalog {os.path.join(folder, CATALOG)} has an invalid row for "
                            f"{bad['file']} (it needs {', '.join(_TEXT)} as text and test_accuracy as a percentage); "
                            f"restore it from git.")
    return rows


def _lookup_key(row: dict) -> tuple:
    return row["dataset_fingerprint"], row["architecture"], row["model_args_hash"], row["protocol_hash"]


def write_catalog(folder: str) -> str:
    """Rewrite ``folder/catalog.json`` from its reference files; rows whose file is absent stay, since the weights
    are not committed and a fresh clone has only the rows, unless a file present measures the same reference
    (a rebuild of it under a newer file name)."""
    present = {_lookup_key(_row(i)) for i in network_infos(folder, (ROLE,))}
    kept = [r for r in read_catalog(folder) if _lookup_key(r) not in present]
    return write_network_catalog(folder, _KEY, (ROLE,), _row, kept=kept)


def catalog_row(folder: str, data: ImageDataset, model: str, model_args: Optional[dict] = None) -> Optional[dict]:
    """The catalog row of this reference measured under the current ``full`` protocol, or None. A row of another
    protocol version (full.json changed since) is not used: its accuracy measures another recipe, and HLR would
    silently compare sets against it; `condense reference` retrains instead."""
    want = (data.fingerprint(), model, args_hash(model_args), get_protocol("full").digest())
    return next((r for r in read_catalog(folder) if _lookup_key(r) == want), None)


# ---- lookup and build ------------------------------------------------------------------------------------
def full_accuracy(data: ImageDataset, model: str, model_args: Optional[dict] = None,
                  folder: Optional[str] = None) -> Optional[float]:
    """The stored full-data test accuracy (percent) for ``model`` on ``data``: the network file's, else its
    catalog row's; None when neither is here."""
    folder = folder or references_dir()
    path = reference_path(folder, data, model, model_args)
    if os.path.isfile(path):
        return float(read_network_info(path).metrics["test_accuracy"])
    row = catalog_row(folder, data, model, model_args)
    return None if row is None else float(row["test_accuracy"])


def build_reference(data: ImageDataset, model: str, model_args: Optional[dict] = None, folder: Optional[str] = None,
                    seed: int = 0, log: Callable[[str], None] = lambda m: None, weights: bool = False) -> str:
    """Train ``model`` on the whole training split under ``full`` and store it; returns the network file (kept if
    present), or the catalog when only its row is here and ``weights`` (rebuild the network anyway) is not asked:
    the accuracy is known, and retraining a large network costs hours."""
    folder = folder or references_dir()
    path = reference_path(folder, data, model, model_args)
    if not os.path.isfile(path):
        if not weights and catalog_row(folder, data, model, model_args) is not None:
            return os.path.join(folder, CATALOG)
        _train(path, data, model, model_args, seed, log)
    write_catalog(folder)  # also lists files built before the catalog existed
    return path


def _train(path: str, data: ImageDataset, model: str, model_args: Optional[dict], seed: int,
           log: Callable[[str], None]) -> str:
    """``path``: ``model`` trained on the whole training split under ``full``, its test accuracy in its metrics."""
    proto = get_protocol("full")
    c, h, w = data.image_shape
    torch.manual_seed(seed_for("eval_run", seed, 0))
    net = create_model(model, c, data.num_classes, (h, w), **(model_args or {})).to(data.train_x.device)
    log(f"Full-data reference: {model} on {len(data.train_y)} images of {data.name}, {plural(proto.epochs, 'epoch')}")
    out = fit([net], [torch.Generator().manual_seed(seed_for("eval_run", seed, 0))], data.train_x,
              Labels(data.train_y), proto.recipe(proto.lr), dsa=dsa_for(data.hflip_safe) if proto.augment == "dsa" else None)
    accuracy = 100 * test_accuracy(net, data.test_x, data.test_y)
    return save_network(path, net, architecture=model, model_args=model_args or {}, channels=c,
                        num_classes=data.num_classes, image_size=(h, w), role=ROLE, dataset=data.name,
                        dataset_fingerprint=data.fingerprint(),
                        metrics={"test_accuracy": accuracy, "protocol": proto.name, "protocol_hash": proto.digest(),
                                 "train_seconds": out[0]["seconds"]},
                        training={**proto.to_dict(), "seed": seed})
