"""CIFAR-10 and CIFAR-100 from the official python-pickle releases (``cifar-10-batches-py/``, ``cifar-100-python/``).

Normalization follows the MixMo official code (spec mixmo-mixshare §6.1): mean (0.4914, 0.4824, 0.4467), std
(0.2023, 0.1994, 0.2010) for both datasets. Class indices are the release's (CIFAR-100: the 100 fine labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mixlab.data._files import as_text, load_pickle, locate, malformed
from mixlab.data.dataset import ImageDataset
from mixlab.data.registry import DatasetInfo, register_dataset

CIFAR_MEAN = (0.4914, 0.4824, 0.4467)
CIFAR_STD = (0.2023, 0.1994, 0.2010)

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)
CIFAR100_FOLDER = "cifar-100-python"


def decode_batches(folder: Path, files: Sequence[str], label_key: str, label: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate the pickled batches ``files``: ``data`` rows of 3072 bytes (R, G, B planes of 32x32)."""
    images, targets = [], []
    for name in files:
        path = folder / name
        batch = load_pickle(path, label)
        if "data" not in batch or label_key not in batch:
            raise malformed(label, path, f"expected the keys 'data' and {label_key!r}, found {sorted(batch)}")
        data = np.asarray(batch["data"])
        labels = np.asarray(batch[label_key])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise malformed(label, path, f"'data' has dtype {data.dtype} and shape {data.shape}, not uint8 (N, 3072)")
        if labels.shape != (data.shape[0],):
            raise malformed(label, path, f"{data.shape[0]} images but {labels.shape} labels")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        targets.append(torch.from_numpy(labels.astype(np.int64)))
    return torch.cat(images), torch.cat(targets)


def _class_names(folder: Path, meta_file: str, key: str, label: str) -> list[str] | None:
    path = folder / meta_file
    if not path.exists():
        return None
    meta = load_pickle(path, label)
    return as_text(meta[key]) if key in meta else None


CIFAR10_INFO = DatasetInfo(
    name="cifar10",
    num_classes=10,
    image_size=32,
    splits=("train", "test"),
    mean=CIFAR_MEAN,
    std=CIFAR_STD,
    description="CIFAR-10: 50,000 train / 10,000 test colour images of 32x32, 10 classes.",
    layout=f"{CIFAR10_FOLDER}/ with data_batch_1..data_batch_5, test_batch (and batches.meta): the python "
    "release cifar-10-python.tar.gz, extracted",
    has_download=True,
)


@register_dataset(CIFAR10_INFO)
def build_cifar10(root: Path, split: str, download: bool) -> ImageDataset:
    label = "CIFAR-10"
    files = CIFAR10_TRAIN if split == "train" else CIFAR10_TEST
    folder = locate("cifar10", label, root, CIFAR10_FOLDER, CIFAR10_TRAIN + CIFAR10_TEST, download=download)
    images, targets = decode_batches(folder, files, "labels", label)
    return ImageDataset(
        images,
        targets,
        10,
        CIFAR_MEAN,
        CIFAR_STD,
        "cifar10",
        split,
        _class_names(folder, "batches.meta", "label_names", label),
    )


CIFAR100_INFO = DatasetInfo(
    name="cifar100",
    num_classes=100,
    image_size=32,
    splits=("train", "test"),
    mean=CIFAR_MEAN,
    std=CIFAR_STD,
    description="CIFAR-100: 50,000 train / 10,000 test colour images of 32x32, 100 fine classes.",
    layout=f"{CIFAR100_FOLDER}/ with train, test (and meta): the python release cifar-100-python.tar.gz, extracted",
    has_download=True,
)


@register_dataset(CIFAR100_INFO)
def build_cifar100(root: Path, split: str, download: bool) -> ImageDataset:
    label = "CIFAR-100"
    folder = locate("cifar100", label, root, CIFAR100_FOLDER, ("train", "test"), download=download)
    images, targets = decode_batches(folder, (split,), "fine_labels", label)
    return ImageDataset(
        images,
        targets,
        100,
        CIFAR_MEAN,
        CIFAR_STD,
        "cifar100",
        split,
        _class_names(folder, "meta", "fine_label_names", label),
    )
