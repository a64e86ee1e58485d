"""SynthSet: the one artifact passed between stages, and its validated HDF5 format.

A SynthSet file is readable with plain h5py: arrays are datasets, metadata are attributes. Format
version 2 fixes the extension points methods build on, so none invents its own: ``label_kind``
(hard, probabilities, logits, relabel, regression), a ``decoder`` that :meth:`SynthSet.decode`
applies (identity, IDC's multi-formation, INFER's compensators, or DQ's kept patches filled by a masked
autoencoder) with its arrays in the group ``decoder/``, ``source_indices`` for subsets of the source training
split (the subset form), and ``dataset_fingerprint``.
Version-1 files still load. Saving goes through :func:`condense.io.write_hdf5`. Loading checks
the metadata of every dataset before reading any array; any problem is one CondenseError sentence.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import operator
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import h5py
import kornia
import numpy as np
import torch
import torch.nn.functional as F

from .errors import CondenseError
from .fields import INT64, fits
from .io import unreadable, write_hdf5
from .patches import MaskedAutoencoder, check_grid, patchify, unpack, unpatchify
from .version import __version__

FORMAT_VERSION = 2
# Stored arrays in checksum order, then ``decoder/<name>`` sorted. Only ever append, so that
# version-1 files (the first five names) hash exactly as they always did.
_ARRAYS = ("images", "labels", "lr", "zca_matrix", "zca_mean", "source_indices")
_V1_ARRAYS = _ARRAYS[:5]
_CAST = ("lr", "zca_matrix", "zca_mean")  # written as float32 whatever their dtype in memory
_LAYOUT = {"images": ("float32", 4), "lr": ("float32", 0), "zca_matrix": ("float32", 2),
           "zca_mean": ("float32", 1), "source_indices": ("int64", 1)}
_LABEL_LAYOUT = {"hard": ("int64", 1), "probabilities": ("float32", 2), "logits": ("float32", 2),
                 "relabel": ("int64", 1), "regression": ("float32", 2)}
LABEL_KINDS = tuple(_LABEL_LAYOUT)
_DECODER_DTYPES = ("float32", "float16", "int64", "int32", "uint8")
_IDENTITY = {"kind": "identity"}
_NETWORK = "mae."  # decoder arrays named so are a decoder network's weights (storage_bytes shows them apart)
FILLS = ("mae", "zero")

def _integer(v: Any) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(v)
    return operator.index(v)  # ints of any width, never a float or a string


def _number(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(v)
    return float(v)


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(v)
    return v


def _json(hint: Any) -> Callable[[Any], Any]:
    """Parse a JSON attribute and insist on its type (``Any`` when a later check looks inside)."""
    def parse(v: Any) -> Any:
        value = json.loads(_string(v))
        if not fits(value, hint):
            raise TypeError(value)
        return value
    return parse


# Attributes and how to parse them (each parser raises ValueError or TypeError on a wrong type); the
# version-2 ones do not exist in version 1.
_ATTRS: dict[str, Callable[[Any], Any]] = {
    "dataset": _string, "num_classes": _integer, "class_names": _json(list[str]), "image_shape": _json(list[int]),
    "mean": lambda v: tuple(_json(list[float])(v)), "std": lambda v: tuple(_json(list[float])(v)),
    "method": _string, "config": _json(dict), "seed": _integer, "iterations_done": _integer, "created": _string,
    "versions": _json(dict[str, str])}
_ATTRS_V2: dict[str, Callable[[Any], Any]] = {
    "label_kind": _string, "label_temperature": _number, "relabel_network": _json(Any), "decoder": _json(Any),
    "dataset_fingerprint": _string}


def _library_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "kornia": kornia.__version__, "h5py": h5py.__version__,
            "numpy": np.__version__, "condense": __version__}


def checksum(arrays: Mapping[str, np.ndarray], header: Optional[dict] = None) -> str:
    """SHA-256 over the stored arrays (fixed order) and, when given, the canonical JSON of ``header``."""
    digest = hashlib.sha256()
    for name in [n for n in _ARRAYS if n in arrays] + sorted(set(arrays) - set(_ARRAYS)):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(name.encode())
        digest.update(str(arr.dtype).encode() + str(arr.shape).encode())
        digest.update(arr.tobytes())
    if header is not None:
        digest.update(json.dumps(header, sort_keys=True).encode())
    return digest.hexdigest()


def _signed_header(s: "SynthSet") -> Optional[dict]:
    """The label/decoder attributes the checksum covers, or None when they hold only what a version-1
    reader infers: such a set hashes exactly as in version 1 (a re-saved zoo file keeps its catalog
    checksum), while any change to them, either way, still changes the hash."""
    header = {"label_kind": s.label_kind, "label_temperature": float(s.label_temperature),
              "relabel_network": s.relabel_network, "decoder": s.decoder}
    plain = {"label_kind": infer_label_kind(s.labels), "label_temperature": 1.0, "relabel_network": None,
             "decoder": _IDENTITY}
    return None if header == plain else header


def infer_label_kind(labels: torch.Tensor) -> str:
    """What version 1 left implicit, decided as the evaluator always has: 1-D hard; 2-D rows that are
    distributions (non-negative, summing to 1 within 1e-3) probabilities; any other 2-D logits."""
    if labels.dim() == 1:
        return "hard"
    sums = labels.sum(-1)
    is_dist = bool((labels >= 0).all()) and torch.allclose(sums, torch.ones_like(sums), atol=1e-3)
    return "probabilities" if is_dist else "logits"


# ---- decoders: stored images -> the training set they stand for ------------------------------
def _identity(images, labels, spec, mean, std, arrays):
    return images, labels


def _multi_formation(images, labels, spec, mean, std, arrays):
    """IDC's ``decode_zoom`` (Kim et al., ICML 2022, snu-mllab/Efficient-Dataset-Condensation), IDM's
    partition-and-expansion (Zhao et al., CVPR 2023): each stored image holds f×f smaller ones."""
    f = spec["factor"]
    n, c, h, w = images.shape
    sh, sw = -(-h // f), -(-w // f)
    if (sh * f, sw * f) != (h, w):  # IDC pads right/bottom with pixel value 0.5
        if mean is None:
            raise CondenseError(f"A multi_formation decoder with factor {f} must pad {h}×{w} images, but these "
                                f"live in ZCA space where pixel value 0.5 has no meaning; use a factor dividing "
                                f"both sides.")
        fill = ((0.5 - images.new_tensor(mean)) / images.new_tensor(std)).view(1, c, 1, 1)
        images = torch.cat([images, fill.expand(n, c, h, sw * f - w)], 3)
        images = torch.cat([images, fill.expand(n, c, sh * f - h, sw * f)], 2)
    crops = [images[:, :, i * sh:(i + 1) * sh, j * sw:(j + 1) * sw] for i in range(f) for j in range(f)]
    decoded = F.interpolate(torch.cat(crops), size=(h, w), mode="bilinear", align_corners=False)
    return decoded, torch.cat([labels] * (f * f))


def _compensators(images, labels, spec, mean, std, arrays):
    """INFER's universal feature compensators (Zhang et al., ICLR 2025; official zhangxin-xd/UFC): the stored
    images are base batches of one image per class (row k·K + c), and the array ``compensators`` (n, M, C, H, W)
    holds one perturbation u[k, m] per base batch k and teacher m, shared by the whole batch. The training set
    is the stored images, then clip(X_k + u[k, m]) for every m, k, class (pixels clipped to [0, 1], as the
    official saves them). Hard labels repeat; soft labels of the compensated images are the array ``labels``."""
    if mean is None:
        raise CondenseError("A compensators decoder clips pixels to [0, 1], which has no meaning in ZCA space.")
    u = arrays["compensators"]
    n, m = u.shape[:2]
    shape = images.shape[1:]
    view = (1, 1, 1, -1, 1, 1)
    lo = ((0 - images.new_tensor(mean)) / images.new_tensor(std)).view(view)
    hi = ((1 - images.new_tensor(mean)) / images.new_tensor(std)).view(view)
    mixed = images.view(n, 1, -1, *shape) + u.unsqueeze(2)           # (n, M, K, C, H, W)
    mixed = torch.minimum(torch.maximum(mixed, lo), hi).transpose(0, 1)  # teacher-major: (M, n, K, C, H, W)
    decoded = torch.cat([images, mixed.reshape(-1, *shape)])
    extra = arrays["labels"] if labels.dim() == 2 else torch.cat([labels] * m)
    return decoded, torch.cat([labels, extra])


def _mae(spec: dict, arrays: Mapping[str, torch.Tensor], channels: int) -> MaskedAutoencoder:
    """The decoder's masked autoencoder, built from ``spec['mae']['model_args']`` (raises TypeError, ValueError
    or CondenseError on arguments that do not build one); its classifier's outputs are read off its weights."""
    classes = arrays.get(_NETWORK + "classifier.weight")
    args = spec["mae"]["model_args"]
    if not isinstance(args, dict) or "channels" in args or "image_size" in args:
        raise TypeError(args)
    h, w = spec["image_shape"][1:]
    return MaskedAutoencoder(channels, classes.shape[0] if classes is not None and classes.dim() == 2 else 1, (h, w),
                             **args)


def _patches(images, labels, spec, mean, std, arrays):
    """DQ's pixel quantisation (Zhou et al., ICCV 2023; official magic-research/Dataset_Quantization): each stored
    image is a strip of the patches it kept (``condense.patches``), ``keep`` (N, gh, gw) says where they go, and
    the dropped ones are predicted by the masked autoencoder whose weights are the arrays ``mae.*`` (``fill``
    "mae") or left at zero, the dataset mean (``fill`` "zero", the ablation). Kept pixels come out unchanged."""
    shape, patch = tuple(spec["image_shape"]), spec["patch"]
    keep = arrays["keep"].reshape(len(images), -1).to(images.device).bool()
    holes = unpack(images, keep, patch, shape)
    if spec["fill"] == "zero":
        return holes, labels
    net = _mae(spec, arrays, shape[0]).to(images.device)
    net.load_state_dict({k[len(_NETWORK):]: v.to(images.device) for k, v in arrays.items() if k.startswith(_NETWORK)})
    with torch.no_grad():  # the prediction is a fixed function of the kept pixels; they keep their gradient below
        pred = torch.cat([net.eval().reconstruct(h, k) for h, k in zip(holes.detach().split(256), keep.split(256))])
    tokens = torch.where(keep.unsqueeze(-1), patchify(holes, patch), pred)
    return unpatchify(tokens, patch, shape), labels


DECODERS: dict[str, Callable] = {"identity": _identity, "multi_formation": _multi_formation,
                                 "compensators": _compensators, "patches": _patches}


def _check_compensators(s: "SynthSet", where: str) -> None:
    """The arrays a compensators decoder needs, with shapes that fit the stored images and labels."""
    arrays, k = s.decoder_arrays, s.num_classes
    u = arrays.get("compensators")
    if u is None or u.dim() != 5 or u.dtype != torch.float32 or tuple(u.shape[2:]) != s.image_shape \
            or 0 in u.shape[:2] or u.shape[0] * k != s.images.shape[0]:
        raise CondenseError(f"{where} has a compensators decoder but no float32 'compensators' array of shape "
                            f"(n, M, {', '.join(map(str, s.image_shape))}) with n × {k} classes = "
                            f"{s.images.shape[0]} stored images.")
    want = {"compensators", "labels"} if s.soft_labels else {"compensators"}
    rows = u.shape[0] * u.shape[1] * k
    extra = arrays.get("labels")
    if set(arrays) != want or (extra is not None and (extra.dtype != torch.float32 or tuple(extra.shape) != (rows, k))):
        also = f" and float32 labels of shape ({rows}, {k})" if s.soft_labels else " only"
        raise CondenseError(f"{where} has a compensators decoder whose arrays are {sorted(arrays)}; expected "
                            f"'compensators'{also}.")
    if s.zca_matrix is not None:
        raise CondenseError(f"{where} lives in ZCA space, where a compensators decoder cannot clip pixels.")


def _check_patches(s: "SynthSet", where: str) -> None:
    """A patches decoder's spec and arrays: where the kept patches go, how many, and the network that fills."""
    spec, arrays, n = s.decoder, s.decoder_arrays, s.images.shape[0]
    shape, fill = spec.get("image_shape"), spec.get("fill")
    if not fits(shape, list[int]) or len(shape) != 3 or min(shape) < 1 or shape[0] != s.images.shape[1]:
        raise CondenseError(f"{where} has a patches decoder whose image_shape {shape!r} is not [C, H, W] with the "
                            f"stored {s.images.shape[1]} channels.")
    gh, gw = check_grid(tuple(shape), spec.get("patch"), f"{where}'s patches decoder")
    if fill not in FILLS:
        raise CondenseError(f"{where} has a patches decoder with fill {fill!r}; expected one of: {', '.join(FILLS)}.")
    keep = arrays.get("keep")
    if keep is None or keep.dtype != torch.uint8 or tuple(keep.shape) != (n, gh, gw) or bool((keep > 1).any()):
        raise CondenseError(f"{where} has a patches decoder but no uint8 'keep' mask of 0s and 1s of shape "
                            f"({n}, {gh}, {gw}), one per stored image.")
    counts = keep.reshape(n, -1).sum(1)
    k, p = int(counts[0]), spec["patch"]
    if k < 1 or bool((counts != k).any()) or tuple(s.images.shape[2:]) != (p, k * p):
        raise CondenseError(f"{where} has a patches decoder whose images are not strips of the same number of kept "
                            f"{p}×{p} patches per image (keep mask counts {sorted(set(counts.tolist()))}, stored "
                            f"images {tuple(s.images.shape[1:])}).")
    if s.zca_matrix is not None:
        raise CondenseError(f"{where} lives in ZCA space, where a patches decoder has no pixels to fill.")
    network = {k: v for k, v in arrays.items() if k.startswith(_NETWORK)}
    if set(arrays) != {"keep", *network} or (fill == "zero") == bool(network) or (fill == "zero") == ("mae" in spec):
        raise CondenseError(f"{where} has a patches decoder with fill '{fill}' and arrays {sorted(arrays)[:4]}; fill "
                            f"'mae' needs the masked autoencoder's 'mae.*' weights and a 'mae' entry, fill 'zero' "
                            f"neither.")
    if fill == "zero":
        return
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            net = _mae(spec, arrays, shape[0]) if isinstance(spec["mae"], dict) else None
    except (TypeError, ValueError, KeyError, CondenseError):
        net = None
    want = net.state_dict() if net is not None else {}
    got = {k[len(_NETWORK):]: v for k, v in network.items()}
    if net is None or set(want) != set(got) or any(
            got[k].dtype != torch.float32 or got[k].shape != want[k].shape for k in want):
        raise CondenseError(f"{where} has a patches decoder whose masked autoencoder cannot be rebuilt from its "
                            f"'mae' entry and weights (a damaged or foreign network).")
    if net.patch != p:
        raise CondenseError(f"{where} stores {p}-pixel patches but its masked autoencoder fills {net.patch}-pixel "
                            f"ones.")


def _check_decoder(spec: Any, where: str) -> None:
    if not isinstance(spec, dict) or spec.get("kind") not in tuple(DECODERS):  # tuple: no hashing of JSON values
        raise CondenseError(f"{where} has decoder {spec!r}; expected a dict whose 'kind' is one of: "
                            f"{', '.join(DECODERS)}.")
    f = spec.get("factor")
    if spec["kind"] == "multi_formation" and (isinstance(f, bool) or not isinstance(f, int) or f < 1):
        raise CondenseError(f"{where} has a multi_formation decoder with factor {f!r}; expected an integer ≥ 1.")


def decode_images(images: torch.Tensor, labels: torch.Tensor, decoder: dict, mean: Optional[tuple],
                  std: Optional[tuple], arrays: Optional[Mapping[str, torch.Tensor]] = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``DECODERS[decoder['kind']]`` applied to stored images and labels; pure and differentiable
    w.r.t. ``images``, so distillation can optimise through it. ``mean``/``std`` are None when the
    images are not normalised pixels (ZCA space); ``arrays`` are a learned decoder's parameters."""
    _check_decoder(decoder, "the call to decode_images")
    return DECODERS[decoder["kind"]](images, labels, decoder, mean, std, arrays or {})


@dataclass
class SynthSet:
    """A synthetic (or coreset) training set plus everything needed to use it correctly."""

    images: torch.Tensor                      # float32 (N, C, H, W) in the learned space
    labels: torch.Tensor                      # per label_kind: int64 (N,) or float32 (N, K) / (N, D)
    dataset: str
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    method: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    iterations_done: int = 0
    lr: Optional[torch.Tensor] = None         # learned step size (MTT), scalar tensor
    zca_matrix: Optional[torch.Tensor] = None  # (D, D) whitening matrix when images live in ZCA space
    zca_mean: Optional[torch.Tensor] = None    # (D,)
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    label_kind: str = ""                      # one of LABEL_KINDS; "" infers it from the labels
    label_temperature: float = 1.0            # logits only: the temperature they are softened with
    relabel_network: Optional[dict] = None    # relabel only: at least "checksum" and "architecture"
    decoder: dict = field(default_factory=lambda: dict(_IDENTITY))
    decoder_arrays: dict[str, torch.Tensor] = field(default_factory=dict)
    source_indices: Optional[torch.Tensor] = None  # int64 (N,): rows in the source training split
    dataset_fingerprint: str = ""

    def __post_init__(self) -> None:
        # Pass label_kind explicitly when labels are learned: the inference sees only today's values.
        self.label_kind = self.label_kind or infer_label_kind(self.labels)

    # ---- convenience -------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape of a training image; a patches decoder stores strips of kept patches and names it."""
        named = self.decoder.get("image_shape") if isinstance(self.decoder, dict) and \
            self.decoder.get("kind") == "patches" else None
        return tuple(int(s) for s in (named if fits(named, list[int]) else self.images.shape[1:]))  # type: ignore

    @property
    def soft_labels(self) -> bool:
        """Whether labels are class probabilities or logits."""
        return self.label_kind in ("probabilities", "logits")

    @property
    def hard_labels(self) -> torch.Tensor:
        if self.label_kind == "regression":
            raise CondenseError(f"The {self.method} set has regression targets, which carry no class labels.")
        return self.labels.argmax(1) if self.soft_labels else self.labels

    @property
    def ipc(self) -> int:
        """Stored images per class (the storage budget, before any decoder)."""
        if self.label_kind == "regression":
            return self.images.shape[0] // self.num_classes
        return int(torch.bincount(self.hard_labels.cpu(), minlength=self.num_classes).max())

    def decode(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (images, labels) to train on: every consumer calls this rather than reading ``images``."""
        pixels = self.zca_matrix is None  # in ZCA space there is no pixel value to pad with
        return decode_images(self.images, self.labels, self.decoder, self.mean if pixels else None,
                             self.std if pixels else None, self.decoder_arrays)

    def as_dataset(self, hard: bool = False, pixels: bool = False) -> torch.utils.data.TensorDataset:
        """A torch ``Dataset`` of the decoded set: ``(image, label)`` pairs, the label a class index, or the stored
        row of soft labels (probabilities or logits, see ``label_kind``) when the set has them (``hard``: their
        argmax). Images are normalised as the set's real data (``pixels``: in [0, 1], clamped; not in ZCA space)."""
        if pixels and self.zca_matrix is not None:
            raise CondenseError("The set lives in ZCA space, which has no [0, 1] pixels; ask for normalised images.")
        images, labels = (t.detach().cpu() for t in self.decode())
        if hard and labels.dim() == 2:
            if self.label_kind == "regression":
                raise CondenseError(f"The {self.method} set has regression targets, which carry no class labels.")
            labels = labels.argmax(1)
        return torch.utils.data.TensorDataset(self.denormalized(images) if pixels else images.clone(), labels.clone())

    def storage_bytes(self) -> dict[str, int]:
        """Bytes of each array as the file stores it; ``total`` is the set, while ``preprocessing``
        (the ZCA transform, a property of the real dataset) is reported apart and not counted. A decoder's
        network (DQ's masked autoencoder) is counted in the total and shown apart as ``decoder_network``."""
        sizes = dict.fromkeys(("images", "labels", "lr", "decoder", "decoder_network", "source_indices",
                               "preprocessing"), 0)
        for name, t in self._tensors().items():
            # a decoder's "labels" are the labels of the images it adds (compensators): labels, not decoder
            key = "preprocessing" if name.startswith("zca") else "labels" if name == "decoder/labels" \
                else "decoder_network" if name.startswith("decoder/" + _NETWORK) else name.split("/")[0]
            sizes[key] += t.numel() * (4 if name in _CAST else t.element_size())
        return {**sizes, "total": sum(v for k, v in sizes.items() if k != "preprocessing")}

    def detached(self) -> "SynthSet":
        """A copy with CPU tensors that own their memory (safe to save while training goes on)."""
        copy = dict(self.__dict__)
        for name in _ARRAYS:
            if copy[name] is not None:
                copy[name] = copy[name].detach().cpu().clone()
        copy["decoder_arrays"] = {k: v.detach().cpu().clone() for k, v in self.decoder_arrays.items()}
        return SynthSet(**copy)

    def denormalized(self, images: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The stored (or the given, e.g. decoded) images in [0, 1] pixel space; ZCA is not undone here."""
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return ((self.images if images is None else images).detach().cpu() * std + mean).clamp(0, 1)

    def config_hash(self) -> str:
        """A short hash of the resolved configuration (how the set was made, not what it holds)."""
        return hashlib.sha256(json.dumps(self.config, sort_keys=True, default=str).encode()).hexdigest()[:12]

    # ---- persistence -------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        """Every stored array under its name in the file, in checksum order."""
        named = {n: getattr(self, n) for n in _ARRAYS}
        named.update((f"decoder/{k}", v) for k, v in sorted(self.decoder_arrays.items()))
        return {n: t for n, t in named.items() if t is not None}

    def _layout(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """(dtype, shape) of each array as it will be stored, for the rules load() also applies."""
        return {n: ("float32" if n in _CAST and t.is_floating_point() else str(t.dtype).removeprefix("torch."),
                    tuple(t.shape)) for n, t in self._tensors().items()}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {n: t.detach().cpu().numpy().astype(np.float32, copy=False) if n in _CAST
                else t.detach().cpu().numpy() for n, t in self._tensors().items()}

    def save(self, path: str) -> str:
        """Validate, then write format version 2 atomically. Returns the path."""
        validate(self)
        arrays = self._arrays()
        created = self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        attrs = {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "num_classes": int(self.num_classes),
            "class_names": json.dumps(list(self.class_names)),
            "image_shape": json.dumps(list(self.image_shape)),
            "mean": json.dumps([float(m) for m in self.mean]),
            "std": json.dumps([float(s) for s in self.std]),
            "method": self.method,
            "config": json.dumps(self.config, sort_keys=True, default=str),
            "seed": int(self.seed),
            "iterations_done": int(self.iterations_done),
            "created": created,
            "versions": json.dumps(self.versions or _library_versions(), sort_keys=True),
            "label_kind": self.label_kind,
            "label_temperature": float(self.label_temperature),
            "relabel_network": json.dumps(self.relabel_network, sort_keys=True),
            "decoder": json.dumps(self.decoder, sort_keys=True),
            "dataset_fingerprint": self.dataset_fingerprint,
            "checksum": checksum(arrays, _signed_header(self)),
        }

        def fill(f: h5py.File) -> None:
            f.create_group("decoder")
            for name, arr in arrays.items():
                f.create_dataset(name, data=arr)
            for key, value in attrs.items():
                f.attrs[key] = value

        write_hdf5(path, fill)
        return path

    @classmethod
    def load(cls, path: str) -> "SynthSet":
        return load(path)


def _check_layout(layout: Mapping[str, tuple[str, tuple[int, ...]]], kind: str, num_classes: int, where: str,
                  image_shape: Any = None) -> None:
    """The dtype and shape rules, applied by validate() and by load() to HDF5 metadata before reading."""
    if kind not in LABEL_KINDS:
        raise CondenseError(f"{where} has label_kind {kind!r}; expected one of: {', '.join(LABEL_KINDS)}.")
    for name, (dtype, shape) in layout.items():
        if name.startswith("decoder/"):
            if dtype not in _DECODER_DTYPES:
                raise CondenseError(f"{where} has decoder array '{name[8:]}' of dtype {dtype}; expected one of: "
                                    f"{', '.join(_DECODER_DTYPES)}.")
            continue
        want = _LABEL_LAYOUT[kind] if name == "labels" else _LAYOUT[name]
        if (dtype, len(shape)) != want:
            what = f"labels for label_kind '{kind}'" if name == "labels" else name
            raise CondenseError(f"{where} has {what} of dtype {dtype} and shape {tuple(shape)}; expected "
                                f"{want[0]} with {want[1]} dimensions.")
    images = layout["images"][1]
    if images[0] == 0:
        raise CondenseError(f"{where} holds no images.")
    for name in ("labels", "source_indices"):
        if name in layout and layout[name][1][0] != images[0]:
            raise CondenseError(f"{where} has {images[0]} images but {layout[name][1][0]} {name.replace('_', ' ')}.")
    if kind in ("probabilities", "logits") and layout["labels"][1][1] != num_classes:
        raise CondenseError(f"{where} has {kind} labels of shape {tuple(layout['labels'][1])}; expected "
                            f"N×{num_classes}.")
    if image_shape is not None and list(images[1:]) != image_shape:
        raise CondenseError(f"{where} declares image_shape {image_shape} but stores {list(images[1:])}.")


def validate(s: SynthSet, where: str = "the synthetic set") -> None:
    """Raise CondenseError with one sentence if the set breaks any rule of the format."""
    named = s.decoder_arrays
    if not isinstance(named, dict) or not all(isinstance(k, str) and k and "/" not in k and isinstance(v, torch.Tensor)
                                              for k, v in named.items()):
        raise CondenseError(f"{where} has decoder_arrays that are not a dict of tensors with names free of '/'.")
    _check_layout(s._layout(), s.label_kind, s.num_classes, where)
    kind, labels, temp, net = s.label_kind, s.labels, s.label_temperature, s.relabel_network
    if kind in ("hard", "relabel") and (int(labels.min()) < 0 or int(labels.max()) >= s.num_classes):
        raise CondenseError(f"{where} has labels outside 0..{s.num_classes - 1}.")
    if kind == "probabilities" and infer_label_kind(labels) != "probabilities":
        raise CondenseError(f"{where} has label_kind 'probabilities' but not every label row is non-negative "
                            f"and sums to 1 (within 1e-3).")
    if isinstance(temp, bool) or not isinstance(temp, (int, float)) or not math.isfinite(temp) or temp <= 0:
        raise CondenseError(f"{where} has label_temperature {temp!r}; expected a finite number > 0.")
    if kind != "logits" and temp != 1.0:
        raise CondenseError(f"{where} has label_temperature {temp} but label_kind '{kind}'; only logits take one.")
    if kind == "relabel" and not (isinstance(net, dict) and all(
            isinstance(net.get(k), str) and net[k] for k in ("checksum", "architecture"))):
        raise CondenseError(f"{where} has label_kind 'relabel' but no relabel_network dict with non-empty "
                            f"string 'checksum' and 'architecture'.")
    if kind != "relabel" and net is not None:
        raise CondenseError(f"{where} has a relabel_network but label_kind '{kind}'; only 'relabel' sets name one.")
    _check_decoder(s.decoder, where)
    if s.decoder["kind"] == "compensators":
        _check_compensators(s, where)
    if s.decoder["kind"] == "patches":
        _check_patches(s, where)
    if s.zca_matrix is not None and s.decoder["kind"] == "multi_formation" and any(
            d % s.decoder["factor"] for d in s.image_shape[1:]):
        raise CondenseError(f"{where} lives in ZCA space, so its multi_formation factor {s.decoder['factor']} "
                            f"must divide the image sides {s.image_shape[1:]} (there is no pixel value to pad with).")
    try:
        json.dumps([s.decoder, net], allow_nan=False)
    except (TypeError, ValueError):
        raise CondenseError(f"{where} has a decoder or relabel_network that is not plain JSON.") from None
    if s.source_indices is not None and int(s.source_indices.min()) < 0:
        raise CondenseError(f"{where} has negative source_indices; they are rows of the source training split.")
    if not isinstance(s.dataset_fingerprint, str):
        raise CondenseError(f"{where} has a dataset_fingerprint that is not a string.")
    for name in ("seed", "iterations_done", "num_classes"):
        v = getattr(s, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not -INT64 - 1 <= v <= INT64:
            raise CondenseError(f"{where} has {name} {v!r}; expected an integer that fits in 64 bits.")
    if s.num_classes < 1 or s.iterations_done < 0:
        raise CondenseError(f"{where} has num_classes {s.num_classes} and iterations_done {s.iterations_done}; "
                            f"expected at least 1 and 0.")
    if not (fits(list(s.class_names), list[str]) and isinstance(s.config, dict) and isinstance(s.versions, dict)):
        raise CondenseError(f"{where} needs class_names as a list of strings and config and versions as dicts.")
    if len(s.class_names) != s.num_classes:
        raise CondenseError(f"{where} names {len(s.class_names)} classes but has num_classes={s.num_classes}.")
    channels = s.images.shape[1]
    if len(s.mean) != channels or len(s.std) != channels:
        raise CondenseError(f"{where} has mean/std for {len(s.mean)} channels but images have {channels}.")
    if not (fits(list(s.mean), list[float]) and fits(list(s.std), list[float]) and min(s.std) > 0):
        raise CondenseError(f"{where} has mean {s.mean} and std {s.std}; expected finite numbers, std > 0.")
    for name, t in s._tensors().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CondenseError(f"{where} contains NaN or infinite values in '{name}'.")
    if (s.zca_matrix is None) != (s.zca_mean is None):
        raise CondenseError(f"{where} has only half of its ZCA transform (matrix and mean go together).")


def check_source(s: SynthSet, fingerprint: str, rows: int, where: str = "the set") -> None:
    """Refuse, in one sentence, a subset whose ``source_indices`` cannot be rows of the training split at hand:
    made from data with another fingerprint, or pointing past its ``rows`` rows."""
    if s.source_indices is None:
        return
    if s.dataset_fingerprint and s.dataset_fingerprint != fingerprint:
        raise CondenseError(f"{where} indexes the training rows of {s.dataset} data with fingerprint "
                            f"{s.dataset_fingerprint}, not of this data (fingerprint {fingerprint}: other data or "
                            f"another --max-per-class), so its source_indices would name other images.")
    if int(s.source_indices.max()) >= rows:
        raise CondenseError(f"{where} names training row {int(s.source_indices.max())}, but this data has "
                            f"{rows} training rows.")


def source_images(s: SynthSet, train_x: torch.Tensor, fingerprint: str, where: str = "the set") -> torch.Tensor:
    """The images a subset's ``source_indices`` name, as the training split holds them (e.g. every pixel of the
    images a DQ set quantised), after :func:`check_source`."""
    if s.source_indices is None:
        raise CondenseError(f"{where} is not a subset of a training split: it has no source_indices.")
    check_source(s, fingerprint, len(train_x), where)
    return train_x[s.source_indices.to(train_x.device)]


def _attr(f: h5py.File, key: str, path: str):
    if key not in f.attrs:
        raise CondenseError(f"{path} is not a valid SynthSet file: attribute '{key}' is missing.")
    value = f.attrs[key]
    return value.decode() if isinstance(value, bytes) else value


def _datasets(f: h5py.File, version: int, path: str) -> dict[str, h5py.Dataset]:
    found = {n: f[n] for n in (_ARRAYS if version > 1 else _V1_ARRAYS) if n in f}
    group = f.get("decoder") if version > 1 else None
    if group is not None and not isinstance(group, h5py.Group):
        raise CondenseError(f"{path} is not a valid SynthSet file: 'decoder' is not a group.")
    found.update((f"decoder/{k}", v) for k, v in (group or {}).items())
    for name in ("images", "labels"):
        if name not in found:
            raise CondenseError(f"{path} is not a valid SynthSet file: dataset '{name}' is missing.")
    for name, ds in found.items():
        if not isinstance(ds, h5py.Dataset):
            raise CondenseError(f"{path} is not a valid SynthSet file: '{name}' is not a dataset.")
    return found


def load(path: str) -> SynthSet:
    """Load and validate a SynthSet file (version 1 or 2); any problem is one CondenseError sentence.

    Dtypes and shapes are checked from HDF5 metadata before any array is read, and an uncompressed
    dataset stored smaller than it declares is refused, so a small file cannot make us allocate gigabytes.
    """
    if not os.path.isfile(path):
        raise CondenseError(f"SynthSet file {path} does not exist.")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise (unreadable(path, err, "SynthSet file") or
               CondenseError(f"{path} is not a readable HDF5 file (corrupt or truncated?).")) from None
    try:
        with f:
            version = _attr(f, "format_version", path)
            if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)) \
                    or version not in (1, 2):
                raise CondenseError(f"{path} has SynthSet format version {version}; this condense reads "
                                    f"versions 1 and {FORMAT_VERSION}.")
            meta = {}
            for key, parse in {**_ATTRS, **(_ATTRS_V2 if version > 1 else {})}.items():
                try:
                    meta[key] = parse(_attr(f, key, path))
                except (ValueError, TypeError):
                    raise CondenseError(f"{path} is not a valid SynthSet file: its metadata cannot be parsed "
                                        f"(attribute '{key}' is malformed or of the wrong type).") from None
            stored_checksum = str(_attr(f, "checksum", path))
            datasets = _datasets(f, version, path)
            kind = meta.get("label_kind") or ("hard" if datasets["labels"].ndim == 1 else "logits")  # v1: layout only
            declared = meta.pop("image_shape")
            spec = meta.get("decoder")
            if isinstance(spec, dict) and spec.get("kind") == "patches":  # strips are stored; validate() checks them
                if spec.get("image_shape") != declared:
                    raise CondenseError(f"{path} declares image_shape {declared} but its patches decoder "
                                        f"{spec.get('image_shape')!r}.")
                declared = None
            _check_layout({n: (str(d.dtype), d.shape) for n, d in datasets.items()}, kind, meta["num_classes"], path,
                          declared)
            for name, d in datasets.items():
                if d.compression is None and d.id.get_storage_size() < d.size * d.dtype.itemsize:
                    raise CondenseError(f"{path} declares '{name}' of shape {d.shape} ({d.size * d.dtype.itemsize} "
                                        f"bytes) but stores only {d.id.get_storage_size()} bytes uncompressed "
                                        f"(truncated or forged).")
            try:
                arrays = {n: d[()] for n, d in datasets.items()}
            except (OSError, KeyError, ValueError):
                raise CondenseError(f"{path} is corrupt or truncated: its arrays cannot be read.") from None
    except OSError:
        raise CondenseError(f"{path} is corrupt or truncated: HDF5 read failed.") from None
    tensors = {name: torch.from_numpy(np.array(arr)) for name, arr in arrays.items()}  # keeps 0-d lr 0-d
    decoder_arrays = {n[len("decoder/"):]: tensors.pop(n) for n in list(tensors) if n.startswith("decoder/")}
    synth = SynthSet(**tensors, **meta, decoder_arrays=decoder_arrays)
    if checksum(arrays, _signed_header(synth)) != stored_checksum:
        raise CondenseError(f"{path} fails its checksum: its arrays or label/decoder attributes were modified "
                            f"or corrupted.")
    validate(synth, where=path)
    return synth
