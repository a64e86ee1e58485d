"""Teacher files: where they live, how a run finds and checks them, how a set names them.

A teacher is a network file (``condense.models.netfile``) with role ``teacher``, written by ``condense
teachers`` as ``<data>_<architecture>_s<seed>.h5``. A run asks for teachers by a folder (every teacher in
it trained on this run's data, sorted by file name), one file, or a comma-separated list of files; the
default folder is ``$CONDENSE_TEACHERS``, else ``synth_sets/teachers`` of a source checkout, whose
``catalog.json`` lists what it holds: its teachers, the self-supervised targets (role ``ssl``, written by
``condense ssl``) that KRR-ST sets name by checksum and the masked autoencoders (role ``autoencoder``, written by
``condense mae``) that DQ sets name so (``condense.teachers.named``). Each teacher is checked (role, classes,
image size, the data fingerprint, BatchNorm when a method reads its statistics) before its weights are read, and
its weights against their checksum; every refusal is one sentence. A set labelled at train time names its
teachers by ``reference_of`` (their checksums), which ``check_reference`` verifies.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..errors import CondenseError
from ..models import NetworkInfo, create_model, has_batchnorm, load_network, read_network_info
from ..models.catalog import CATALOG, network_infos, read_network_catalog, write_network_catalog
_OWNED = (CATALOG, "README.md")
CATALOG_ROLES = ("teacher", "ssl", "autoencoder")  # the network files a teacher folder's catalog lists
_NOT_COMMITTED = ("ssl", "autoencoder")  # rebuilt by the command their sets name: rows outlive absent files


@dataclass
class Teacher:
    net: nn.Module          # frozen, eval mode
    info: NetworkInfo


def default_teachers_dir() -> str:
    return os.environ.get("CONDENSE_TEACHERS") or str(Path(__file__).resolve().parents[2] / "synth_sets" / "teachers")


def data_label(dataset: str) -> str:
    """A short file-name-safe name of a dataset: ``imagefolder:/tmp/cifar10`` -> ``cifar10``."""
    if dataset.startswith("imagefolder:"):
        dataset = os.path.basename(os.path.normpath(dataset.split(":", 1)[1])) or "imagefolder"
    return re.sub(r"[^\w.-]+", "_", dataset)


def teacher_file(folder: str, dataset: str, model: str, seed: int) -> str:
    return os.path.join(folder, f"{data_label(dataset)}_{model}_s{seed}.h5")


def is_teacher_folder(names: Sequence[str]) -> bool:
    """Whether a folder holds only what ``condense teachers`` writes (so it may write there again)."""
    return all(n.endswith((".h5", ".ckpt.pt")) or n in _OWNED or n.startswith(".tmp-") for n in names)


def _describe(info: NetworkInfo) -> str:
    return f"{info.path} ({info.architecture}, {info.dataset}, data fingerprint {info.dataset_fingerprint or 'none'})"


def _check(info: NetworkInfo, *, dataset: str, fingerprint: str, num_classes: int, image_shape: Sequence[int],
           need_batchnorm: str) -> None:
    if info.role != "teacher":
        raise CondenseError(f"{info.path} is a '{info.role}' network, not a teacher; train teachers with "
                            f"`condense teachers`.")
    if info.num_classes != num_classes:
        raise CondenseError(f"Teacher {info.path} predicts {info.num_classes} classes but {dataset} has {num_classes}.")
    shape = (info.channels, *info.image_size)
    if tuple(shape) != tuple(image_shape):
        raise CondenseError(f"Teacher {info.path} takes {'×'.join(map(str, shape))} images but {dataset} has "
                            f"{'×'.join(map(str, image_shape))}.")
    if info.dataset_fingerprint != fingerprint:
        raise CondenseError(f"Teacher {_describe(info)} was not trained on this run's data, {dataset} (fingerprint "
                            f"{fingerprint}); train one with `condense teachers --dataset {dataset}` on the same data "
                            f"(same --max-per-class).")
    if need_batchnorm:
        with torch.device("meta"):  # the architecture alone says it, before any weight is read
            net = create_model(info.architecture, info.channels, info.num_classes, info.image_size, **info.model_args)
        if not has_batchnorm(net):
            raise CondenseError(f"{need_batchnorm} matches the teacher's BatchNorm statistics, but teacher {info.path} "
                                f"({info.architecture}) has no BatchNorm layer; use one such as ConvNetBN.")


def _files(spec: str, fingerprint: str) -> list[str]:
    """The files a teacher spec names: a folder's teachers for this data, or explicit files."""
    folder = spec or default_teachers_dir()
    if os.path.isdir(folder):
        infos = network_infos(folder, ("teacher",))
        mine = [i.path for i in infos if i.dataset_fingerprint == fingerprint]
        if not mine:
            held = sorted({f"{i.dataset} ({i.dataset_fingerprint})" for i in infos})
            raise CondenseError(f"Teacher folder {folder} holds no teacher for this data (fingerprint {fingerprint})"
                                f"{'; it holds teachers for ' + ', '.join(held) if held else ''}; train one with "
                                f"`condense teachers --out {folder}` or give --teacher.")
        return mine
    files = [p.strip() for p in spec.split(",") if p.strip()]
    if not files:
        raise CondenseError(f"The default teacher folder {folder} does not exist; give --teacher or train teachers "
                            f"with `condense teachers --out {folder}`.")
    for path in files:
        if not os.path.isfile(path):
            raise CondenseError(f"Teacher {path} is neither a network file nor a folder of teachers.")
    return files


def load_teachers(spec: str, *, dataset: str, fingerprint: str, num_classes: int, image_shape: Sequence[int],
                  device: torch.device, count: Optional[int] = None, need_batchnorm: str = "") -> list[Teacher]:
    """The teachers ``spec`` names (a folder, a file, or comma-separated files; "" = the default folder), checked
    against the data (``dataset`` and its ``fingerprint``, classes, image shape) and, when ``need_batchnorm``
    names a method, for BatchNorm layers; a folder gives its first ``count`` teachers of this data."""
    files = _files(spec, fingerprint)
    if count is not None:
        if len(files) < count:
            raise CondenseError(f"{count} teachers are needed but {spec or default_teachers_dir()} names "
                                f"{len(files)} for this data; train more with `condense teachers --seeds {count}`.")
        files = files[:count]
    teachers = []
    for path in files:
        info = read_network_info(path)
        _check(info, dataset=dataset, fingerprint=fingerprint, num_classes=num_classes, image_shape=image_shape,
               need_batchnorm=need_batchnorm)
        net, info = load_network(path, device=device)  # verifies the weights against their checksum
        teachers.append(Teacher(net.eval().requires_grad_(False), info))
    return teachers


def reference_of(teachers: Sequence[Teacher]) -> dict:
    """How a set names the teachers that label it: one checksum for the ensemble (the average of logits does not
    depend on the order, so neither does it), plus each member's architecture, checksum and file name."""
    members = [{"architecture": t.info.architecture, "model_args": t.info.model_args, "checksum": t.info.checksum,
                "file": os.path.basename(t.info.path)} for t in teachers]
    sums = sorted(m["checksum"] for m in members)
    checksum = sums[0] if len(sums) == 1 else hashlib.sha256("+".join(sums).encode()).hexdigest()
    return {"architecture": "+".join(m["architecture"] for m in members), "checksum": checksum,
            "dataset_fingerprint": teachers[0].info.dataset_fingerprint, "members": members}


def check_reference(reference: dict, teachers: Sequence[Teacher], where: str) -> None:
    """Refuse teachers that are not the ones ``reference`` (a set's relabel_network) names."""
    given = reference_of(teachers)
    if given["checksum"] != reference.get("checksum"):
        raise CondenseError(f"{where} is relabelled by {reference.get('architecture')} with checksum "
                            f"{str(reference.get('checksum'))[:12]}, but the teacher given is {given['architecture']} "
                            f"with checksum {given['checksum'][:12]}; give the set's own teacher.")


def find_reference(reference: dict, folder: Optional[str] = None, role: str = "teacher") -> Optional[str]:
    """The comma-separated network files of ``role`` in ``folder`` (default: the default folder) whose checksums
    make up ``reference``, or None when some member is not there."""
    folder = folder or default_teachers_dir()
    members = reference.get("members") if isinstance(reference.get("members"), list) else [reference]
    wanted = [m.get("checksum") for m in members if isinstance(m, dict)]
    if not os.path.isdir(folder) or not wanted:
        return None
    by_sum = {i.checksum: i.path for i in network_infos(folder, (role,))}
    return ",".join(by_sum[w] for w in wanted) if all(w in by_sum for w in wanted) else None


def _catalog_row(info: NetworkInfo) -> dict:
    """What the catalog says of one network file: its role, data, architecture, skill, recipe and checksum (a
    self-supervised target's skill is the 1-NN accuracy of its representation, a masked autoencoder's the error of
    its fill on dropped test patches; neither has classes)."""
    row = {"file": os.path.basename(info.path), "role": info.role, "dataset": info.dataset,
           "dataset_fingerprint": info.dataset_fingerprint, "architecture": info.architecture,
           "model_args": info.model_args, "num_classes": info.num_classes, "image_shape": [info.channels,
                                                                                         *info.image_size],
           "test_accuracy": info.metrics.get("test_accuracy"), "epochs": info.training.get("epochs"),
           "seed": info.training.get("seed"), "checksum": info.checksum, "created": info.created}
    if info.role == "ssl":
        row.update(num_classes=None, knn1_accuracy=info.metrics.get("knn1_accuracy"),
                   feature_dim=info.metrics.get("feature_dim"))
    elif info.role == "autoencoder":
        fill = [v for k, v in sorted(info.metrics.items()) if k.startswith("test_mse_dropped_")]
        row.update(num_classes=None, test_mse_dropped=fill[0] if fill else None, patch=info.metrics.get("patch"))
    return row


def write_catalog(folder: str) -> str:
    """``folder/catalog.json``: one row per teacher, self-supervised target and masked autoencoder file
    (``CATALOG_ROLES``), read back from the files themselves. Rows of targets and autoencoders whose file is absent
    are kept: those files are not committed (rebuilt by the command their sets name), and a clone that rewrites
    the catalog must not forget them; a teacher's row goes with its file, as teachers are committed and loaded
    from the files."""
    old = read_network_catalog(folder, "teachers", "Teacher catalog")
    return write_network_catalog(folder, "teachers", CATALOG_ROLES, _catalog_row,
                                 kept=[r for r in old if r.get("role") in _NOT_COMMITTED])


def record_in_catalog(path: str) -> Optional[str]:
    """After a network file is written: rewrite the catalog of its folder when that folder is a catalogued one
    (it holds a ``catalog.json``, or it is the default folder); returns the catalog, else None."""
    folder = os.path.dirname(os.path.abspath(path))
    catalogued = os.path.isfile(os.path.join(folder, CATALOG)) or \
        os.path.realpath(folder) == os.path.realpath(default_teachers_dir())
    return write_catalog(folder) if catalogued else None
