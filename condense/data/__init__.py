"""Datasets: embedded (mnist5k, digits), torchvision on-disk formats, image folders; per-class sampler; ZCA;
a validation split carved from the training data."""
from .dataset import ImageDataset
from .refs import DATA_ENV, LEGACY_FINGERPRINTS, LEGACY_NAMES, data_root, named_folder, resolve_reference
from .registry import (DatasetInfo, dataset_info, distilled_fingerprint, list_datasets, load_dataset,
                       official_normalisation, other_layout)
from .sampler import RealSampler
from .splits import ValidationSpec, carve_validation
from .views import View, split_view
from .zca import apply_zca, fit_zca, zca_dataset

__all__ = ["ImageDataset", "DatasetInfo", "RealSampler", "ValidationSpec", "View", "apply_zca", "carve_validation",
           "dataset_info", "fit_zca", "list_datasets", "load_dataset", "split_view", "zca_dataset",
           "DATA_ENV", "LEGACY_FINGERPRINTS", "LEGACY_NAMES", "data_root", "distilled_fingerprint", "named_folder",
           "official_normalisation", "other_layout", "resolve_reference"]
