"""ImageDataset: a labelled image dataset held in memory as normalised tensors."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


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
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"

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
        return replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                       test_x=self.test_x.to(device), test_y=self.test_y.to(device))

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
               dsa_strategy: str = "color_crop_cutout_flip_scale_rotate") -> ImageDataset:
    """Build from (images, labels) numpy pairs, images uint8 N×H×W×C or float in [0, 1] N×C×H×W."""
    def to_float(images) -> torch.Tensor:
        t = torch.as_tensor(images)
        if t.dtype == torch.uint8:
            t = t.permute(0, 3, 1, 2).float().div_(255.0) if t.dim() == 4 else t.unsqueeze(1).float().div_(255.0)
        return t.float().contiguous()

    tx, vx = to_float(train[0]), to_float(test[0])
    if mean is None:
        mean = tuple(tx.mean(dim=(0, 2, 3)).tolist())
        std = tuple(tx.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist())
    ds = ImageDataset(name=name, train_x=tx, train_y=torch.as_tensor(train[1]).long(), test_x=vx,
                      test_y=torch.as_tensor(test[1]).long(), class_names=list(class_names), mean=tuple(mean),
                      std=tuple(std), dsa_strategy=dsa_strategy)
    ds.train_x, ds.test_x = ds.normalize(ds.train_x), ds.normalize(ds.test_x)
    return ds
