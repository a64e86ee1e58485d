"""Datasets: embedded (mnist5k, digits), torchvision on-disk formats, image folders; per-class sampler."""
from .dataset import ImageDataset
from .registry import DatasetInfo, dataset_info, list_datasets, load_dataset
from .sampler import RealSampler

__all__ = ["ImageDataset", "DatasetInfo", "RealSampler", "dataset_info", "list_datasets", "load_dataset"]
