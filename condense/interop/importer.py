"""``condense import``: a set made elsewhere, checked against its dataset, saved as a SynthSet that records where
it came from (method ``imported:<layout>``, the source path, the SHA-256 of every file read).

The dataset and the file's normalisation are given on the command line (files from the official scripts do not
say them) and checked against the data: image shape and channels, label range and class count (class names
too when the file names them), and the pixel statistics the normalisation implies against the dataset's own,
which catches images saved in [0, 1] declared normalised and the reverse. The default normalisation is the one
the official scripts use for a torchvision dataset (``condense.data.official_normalisation``), else the
dataset's own statistics. Images are stored in the dataset's normalised space, bit for bit when the file's
normalisation is the dataset's.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import torch

from ..data import ImageDataset, fit_zca, load_dataset, official_normalisation
from ..errors import CondenseError
from ..io import check_output
from ..store import SynthSet, infer_label_kind
from .layouts import Found, read
from .torch_files import file_sha256, load_torch_file

PIXELS = ("normalised", "unit")


def _differs(a: Optional[Sequence[float]], b: Optional[Sequence[float]]) -> bool:
    return a is not None and b is not None and tuple(map(float, a)) != tuple(map(float, b))


def _images(found: Found, data: ImageDataset, where: str) -> torch.Tensor:
    x = found.images
    if x.dtype == torch.uint8:
        if found.pixels not in (None, "unit"):
            raise CondenseError(f"{where} stores 8-bit images but says they are {found.pixels}.")
        x, found.pixels = x.float() / 255, "unit"
    if not x.is_floating_point() or x.dim() != 4:
        raise CondenseError(f"{where} holds images of dtype {str(x.dtype).removeprefix('torch.')} and shape "
                            f"{tuple(x.shape)}; expected floats N×C×H×W.")
    want = tuple(data.image_shape)
    if tuple(x.shape[1:]) != want:
        hint = " (channels last: save them N×C×H×W)" if (x.shape[3], x.shape[1], x.shape[2]) == want else ""
        raise CondenseError(f"{where} holds images of shape {tuple(x.shape[1:])} but {data.name} has "
                            f"{want}{hint}.")
    if len(x) == 0:
        raise CondenseError(f"{where} holds no images.")
    if not bool(torch.isfinite(x).all()):
        raise CondenseError(f"{where} holds NaN or infinite pixel values.")
    return x.float().contiguous()


def _folder_classes(found: Found, data: ImageDataset, where: str) -> torch.Tensor:
    """The class of every image of an image folder: its folder is a class name, an index, or ``<index>_<name>``."""
    names = list(data.class_names)
    index = {n: i for i, n in enumerate(names)}
    if found.meta.get("class_folders"):
        index.update((f, i) for i, f in enumerate(found.meta["class_folders"]) if i < len(names))
    out = []
    for folder in found.class_folders or []:
        prefix = folder.split("_", 1)[0]
        c = index.get(folder, int(prefix) if prefix.isdigit() else None)
        if c is None or not 0 <= c < len(names):
            raise CondenseError(f"{where} has a class folder '{folder}' that is neither a class of {data.name} "
                                f"({', '.join(names[:12])}{', ...' if len(names) > 12 else ''}) nor a class index.")
        out.append(c)
    return torch.tensor(out, dtype=torch.long)


def _labels(found: Found, data: ImageDataset, n: int, where: str) -> tuple[torch.Tensor, str]:
    """(labels as stored in the SynthSet, label_kind)."""
    k = data.num_classes
    if found.layout == "imagefolder":
        hard = _folder_classes(found, data, where)
    else:
        hard = found.labels
    names = found.meta.get("class_names")
    if names is not None and list(names) != list(data.class_names):
        raise CondenseError(f"{where} names its classes {names[:5]}... but {data.name} has {list(data.class_names)[:5]}"
                            f"...; give the dataset it was made from.")
    soft = found.soft_labels
    if soft is None and hard.dim() == 2:
        soft = hard
    if soft is not None:
        if not soft.is_floating_point() or tuple(soft.shape) != (n, k) or not bool(torch.isfinite(soft).all()):
            raise CondenseError(f"{where} holds soft labels of shape {tuple(soft.shape)}; expected finite floats "
                                f"{n}×{k} ({data.name} has {k} classes).")
        kind = found.meta.get("label_kind") or infer_label_kind(soft.float())
        if kind not in ("probabilities", "logits"):
            raise CondenseError(f"{where} holds soft labels but says they are '{kind}'.")
        return soft.float().contiguous(), kind
    if hard.dim() != 1 or len(hard) != n:
        raise CondenseError(f"{where} holds {len(hard) if hard.dim() else 0} labels of shape {tuple(hard.shape)} for "
                            f"{n} images; expected one class index per image (or N×K soft labels).")
    if hard.is_floating_point():
        if not bool((hard == hard.round()).all()):
            raise CondenseError(f"{where} holds labels that are not whole numbers.")
        hard = hard.round()
    hard = hard.long()
    if int(hard.min()) < 0 or int(hard.max()) >= k:
        raise CondenseError(f"{where} holds labels {int(hard.min())}..{int(hard.max())}, outside the {k} classes "
                            f"0..{k - 1} of {data.name}.")
    kind = found.meta.get("label_kind") if found.meta.get("label_kind") in ("hard", "relabel") else "hard"
    return hard.contiguous(), kind


def _check_stats(x01: torch.Tensor, data: ImageDataset, described: str, where: str) -> None:
    """The pixels a normalisation implies, against the dataset's: a wrong normalisation shows as a mean shifted by
    more than 0.25, a spread off by more than ×2.5 (the dataset's std is 0.25–0.4 for the usual data, so reading
    [0, 1] pixels as normalised shrinks the spread by that factor and the reverse inflates it), or over 10% of the
    values outside [-0.5, 1.5]. Distilled sets stay well inside these bounds; --skip-stats-check accepts others."""
    n = len(data.train_x)
    ref = data.denormalize(data.train_x[::max(1, n // 4000)].float().cpu())
    ref_mean, ref_std = ref.mean((0, 2, 3)), float(ref.std())
    mean, std = x01.mean((0, 2, 3)), float(x01.std())
    inside = float(((x01 >= -0.5) & (x01 <= 1.5)).float().mean())
    ratio = std / max(ref_std, 1e-6)
    if inside < 0.9 or float((mean - ref_mean).abs().max()) > 0.25 or not 0.5 <= ratio <= 2.5:
        raise CondenseError(
            f"{where}, read as {described}, has pixels of mean {', '.join(f'{v:.2f}' for v in mean.tolist())} and "
            f"spread {std:.2f} with {inside:.0%} inside [-0.5, 1.5], unlike {data.name} (mean "
            f"{', '.join(f'{v:.2f}' for v in ref_mean.tolist())}, spread {ref_std:.2f}); give the normalisation it was "
            f"saved with (--pixels, --mean, --std), or --skip-stats-check if these pixels are right.")


def _syn_lr(value: Any, where: str) -> Optional[float]:
    """A learned step size from the command line: a number, or a torch file holding one."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = load_torch_file(value, "Step-size file")
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value == value or value <= 0 \
            or value == float("inf"):
        raise CondenseError(f"{where}: the learned step size (--syn-lr) must be a finite number > 0 or a .pt file "
                            f"holding one.")
    return float(value)


def import_set(path: str, dataset: str, out: str, *, layout: str = "auto", data_root: Optional[str] = None,
               pixels: Optional[str] = None, mean: Optional[Sequence[float]] = None,
               std: Optional[Sequence[float]] = None, entry: Optional[int] = None, syn_lr: Any = None,
               zca: bool = False, check_stats: bool = True) -> SynthSet:
    """Read ``path`` (``layout``: see ``condense.interop.layouts``), check it against ``dataset`` and save it to
    ``out`` as a SynthSet; returns the set. ``pixels``/``mean``/``std`` describe the file's images (``zca``:
    they live in condense's ZCA space of the dataset, as MTT's ``--zca`` sets)."""
    check_output(out)
    if pixels is not None and pixels not in PIXELS:
        raise CondenseError(f"Unknown pixels '{pixels}'; choose one of: {', '.join(PIXELS)}.")
    if (mean is None) != (std is None):
        raise CondenseError("--mean and --std go together; give both or neither.")
    if zca and (pixels == "unit" or mean is not None):
        raise CondenseError("--zca images live in the ZCA space of the dataset; --pixels unit and --mean/--std do "
                            "not apply to them.")
    lr_given = _syn_lr(syn_lr, path)
    data = load_dataset(dataset, root=data_root, device="cpu")
    found = read(path, layout, entry, data.channels)
    where = f"{path} ({found.layout})"
    x = _images(found, data, where)
    labels, kind = _labels(found, data, len(x), where)

    # the file's normalisation: what it says, else the command line, else the official one for the dataset
    if found.pixels and pixels and found.pixels != pixels:
        raise CondenseError(f"{where} says its pixels are {found.pixels}, not {pixels}.")
    if found.mean is not None and (_differs(found.mean, mean) or _differs(found.std, std)):
        raise CondenseError(f"{where} says it is normalised with mean {list(found.mean)} and std {list(found.std)}, "
                            f"not the --mean/--std given.")
    space = "zca" if zca or found.zca is not None or found.pixels == "zca" else (found.pixels or pixels or "normalised")
    if space == "zca" and found.pixels == "unit":
        raise CondenseError(f"{where} holds [0, 1] pixels, not ZCA-space images; drop --zca.")
    official = official_normalisation(dataset)
    file_mean, file_std = (found.mean, found.std) if found.mean is not None else (mean, std) if mean is not None \
        else official if official is not None else (tuple(data.mean), tuple(data.std))
    for name, values in (("mean", file_mean), ("std", file_std)):
        if space == "normalised" and len(values) != data.channels:
            raise CondenseError(f"--{name} needs {data.channels} value(s), one per channel of {data.name}.")
    if space == "normalised" and min(file_std) <= 0:
        raise CondenseError("--std must be positive.")

    shape = (1, -1, 1, 1)
    zca_arrays = None
    if space == "zca":
        if found.zca is not None:
            zca_arrays = (found.zca[0].float().contiguous(), found.zca[1].float().reshape(-1).contiguous())
            d = x[0].numel()
            if tuple(zca_arrays[0].shape) != (d, d) or tuple(zca_arrays[1].shape) != (d,):
                raise CondenseError(f"{where} holds a ZCA transform that does not fit {data.name}'s images.")
        else:
            zca_arrays = fit_zca(data.denormalize(data.train_x))
        images, described = x, "ZCA-space images"
    elif space == "unit":
        x01, described = x, "[0, 1] pixels"
        images = data.normalize(x01)
    else:
        described = f"pixels normalised with mean {list(map(float, file_mean))} and std {list(map(float, file_std))}"
        x01 = x * torch.tensor(file_std, dtype=x.dtype).view(shape) + torch.tensor(file_mean, dtype=x.dtype).view(shape)
        same = tuple(map(float, file_mean)) == tuple(data.mean) and tuple(map(float, file_std)) == tuple(data.std)
        images = x if same else data.normalize(x01)  # bit for bit when the file is in the dataset's space already
    if check_stats and space != "zca":
        _check_stats(x01, data, described, where)

    if found.lr is not None and lr_given is not None and found.lr != lr_given:
        raise CondenseError(f"{where} records its learned step size ({found.lr:g}); drop --syn-lr.")
    lr = found.lr if found.lr is not None else lr_given
    counts = torch.bincount(labels.argmax(1) if labels.dim() == 2 else labels, minlength=data.num_classes)
    meta = found.meta
    provenance = {"layout": found.layout, "source": path, "files": [
        {"name": os.path.basename(f.rstrip("/")), "sha256": file_sha256(f)} for f in found.files],
        "pixels": space, "mean": list(map(float, file_mean)) if space == "normalised" else None,
        "std": list(map(float, file_std)) if space == "normalised" else None,
        "syn_lr": "file" if found.lr is not None else "command line" if lr_given is not None else None,
        **found.notes, **({"exported_from": {k: meta.get(k) for k in ("dataset", "dataset_fingerprint", "method",
                                                                       "source", "source_sha256")}} if meta else {})}
    synth = SynthSet(
        images=images.float().contiguous(), labels=labels, dataset=dataset, num_classes=data.num_classes,
        class_names=list(data.class_names), mean=tuple(data.mean), std=tuple(data.std),
        method=f"imported:{found.layout}",
        config={"imported": provenance, "run": {"dataset": dataset, "ipc": int(counts.max()), "data_root": None,
                                                "max_per_class": None}},
        lr=torch.tensor(lr, dtype=torch.float32) if lr is not None else None, label_kind=kind,
        label_temperature=float(meta.get("label_temperature", 1.0)) if kind == "logits" else 1.0,
        relabel_network=meta.get("relabel_network") if kind == "relabel" else None,
        zca_matrix=zca_arrays[0] if zca_arrays else None, zca_mean=zca_arrays[1] if zca_arrays else None,
        dataset_fingerprint=data.fingerprint())
    synth.save(out)
    return synth
