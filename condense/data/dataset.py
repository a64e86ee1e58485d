"""ImageDataset: a labelled image dataset held in memory as normalised tensors."""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Optional

import torch


@contextmanager
def one_thread():
    """torch on one CPU thread for the body; the previous thread count is restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (at least 1e-6) of (N, C, H, W) images, the same on any thread count.

    torch reduces a large CPU tensor to a single value (a grey dataset's mean) by adding per-thread partial sums,
    so the last bit of the mean, hence every normalised pixel and the fingerprint, changed with the thread count.
    One thread sums in the serial order, which a reduction to several values (RGB) already used for each channel
    on any thread count: RGB datasets (CIFAR-10) keep their fingerprints, grey ones keep their 1-thread ones."""
    with one_thread():
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


@dataclass
class ImageDataset:
    name: str
    train_x: torch.Tensor   # float32 (N, C, H, W), normalised with mean/std
    train_y: torch.Tensor   # int64 (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip_safe: bool = True  # a mirrored image keeps its label (not so for digits: a flipped 2 is not a 2)
    val_x: Optional[torch.Tensor] = None  # validation split carved from the training data (data/splits.py)
    val_y: Optional[torch.Tensor] = None
    validation: Optional[dict] = None  # how it was carved: fraction, seed, per-class counts, indices digest

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return self.image_shape[0]

    def class_counts(self) -> list[int]:
        return torch.bincount(self.train_y.cpu(), minlength=self.num_classes).tolist()

    def to(self, device) -> "ImageDataset":
        if device is None or self.train_x.device == torch.device(device):
            return self
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y", "val_x", "val_y")
                 if getattr(self, k) is not None}
        return replace(self, **moved)

    def fingerprint(self) -> str:
        """16 hex digits identifying the data wherever it lives: sizes, shape, class names, every label and
        the pixels of about 64 evenly strided training images (cheap even for a large dataset)."""
        n = len(self.train_y)
        digest = hashlib.sha256(json.dumps([n, len(self.test_y), self.image_shape, self.class_names]).encode())
        for t in (self.train_y, self.test_y, self.train_x[::max(1, n // 64)]):
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)
        return (torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape),
                torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape))

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x * std + mean

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x01)
        return (x01 - mean) / std


def from_uint8(name: str, train: tuple, test: tuple, class_names: list[str], mean=None, std=None,
               hflip_safe: bool = True) -> ImageDataset:
    """Build from (images, labels) numpy pairs, images uint8 N×H×W×C or float in [0, 1] N×C×H×W."""
    def to_float(images) -> torch.Tensor:
        t = torch.as_tensor(images)
        if t.dtype == torch.uint8:
            t = t.permute(0, 3, 1, 2).float().div_(255.0) if t.dim() == 4 else t.unsqueeze(1).float().div_(255.0)
        return t.float().contiguous()

    tx, vx = to_float(train[0]), to_float(test[0])
    if mean is None:
        mean, std = channel_stats(tx)
    ds = ImageDataset(name=name, train_x=tx, train_y=torch.as_tensor(train[1]).long(), test_x=vx,
                      test_y=torch.as_tensor(test[1]).long(), class_names=list(class_names), mean=tuple(mean),
                      std=tuple(std), hflip_safe=hflip_safe)
    ds.train_x, ds.test_x = ds.normalize(ds.train_x), ds.normalize(ds.test_x)
    return ds
