"""STL-10 from the official binary release ``stl10_binary/``.

``*_X.bin`` are raw uint8 images of 3x96x96, each channel stored column-major (so a row-major reshape gives
``(N, 3, W, H)`` and the loader swaps the last two axes); ``*_y.bin`` are uint8 labels 1..10 (mapped to 0..9).
The ``unlabeled`` split (100,000 images, 2.7 GB) is a copy-on-write memory map: only the pages a batch touches are
read, so building it is instant and costs no RAM; its targets are -1. ``fold=k`` (0..9) selects the k-th of the
official 1,000-image training folds (``fold_indices.txt``). Normalization: the commonly used STL-10 statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mixlab.data._files import locate, malformed
from mixlab.data.dataset import ImageDataset
from mixlab.data.registry import DatasetInfo, register_dataset
from mixlab.errors import DatasetError

STL10_MEAN = (0.4467, 0.4398, 0.4066)
STL10_STD = (0.2603, 0.2566, 0.2713)
FOLDER = "stl10_binary"
LABEL = "STL-10"
SIDE = 96
_IMAGE_BYTES = 3 * SIDE * SIDE

STL10_INFO = DatasetInfo(
    name="stl10",
    num_classes=10,
    image_size=SIDE,
    splits=("train", "test", "unlabeled"),
    mean=STL10_MEAN,
    std=STL10_STD,
    description="STL-10: 5,000 train / 8,000 test labeled and 100,000 unlabeled colour images of 96x96, 10 classes.",
    layout=f"{FOLDER}/ with train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin (and "
    "class_names.txt, fold_indices.txt): the binary release stl10_binary.tar.gz, extracted",
    has_download=True,
    options=("fold",),
)


def read_images(path: Path, lazy: bool) -> torch.Tensor:
    """``uint8 (N, 3, 96, 96)`` from a column-major ``*_X.bin``; ``lazy`` keeps it a memory-mapped view."""
    size = path.stat().st_size
    if size == 0 or size % _IMAGE_BYTES:
        raise malformed(LABEL, path, f"{size} bytes is not a whole number of 3x96x96 images")
    count = size // _IMAGE_BYTES
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="c", shape=(count, 3, SIDE, SIDE))
    except (OSError, ValueError) as error:
        raise malformed(LABEL, path, f"{type(error).__name__}: {error}") from None
    images = torch.from_numpy(raw).transpose(2, 3)
    return images if lazy else images.contiguous()


def read_labels(path: Path, count: int) -> torch.Tensor:
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if labels.shape[0] != count:
        raise malformed(LABEL, path, f"{labels.shape[0]} labels for {count} images")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise malformed(LABEL, path, f"labels range over [{labels.min()}, {labels.max()}], expected 1..10")
    return torch.from_numpy(labels - 1)


def _fold(folder: Path, fold: int, count: int) -> torch.Tensor:
    path = folder / "fold_indices.txt"
    if not isinstance(fold, int) or not 0 <= fold <= 9:
        raise DatasetError(f"{LABEL} fold must be an integer in 0..9, got {fold!r}.")
    if not path.is_file():
        raise DatasetError(f"{LABEL}: fold={fold} needs {path}, which is missing; restore it from the release.")
    lines = path.read_text().splitlines()
    try:
        index = torch.tensor([int(v) for v in lines[fold].split()], dtype=torch.long)
    except (IndexError, ValueError) as error:
        raise malformed(LABEL, path, f"{type(error).__name__}: {error}") from None
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= count):
        raise malformed(LABEL, path, f"fold {fold} indexes past the {count} training images")
    return index


@register_dataset(STL10_INFO)
def build_stl10(root: Path, split: str, download: bool, fold: int | None = None) -> ImageDataset:
    required = (f"{split}_X.bin",) if split == "unlabeled" else (f"{split}_X.bin", f"{split}_y.bin")
    folder = locate("stl10", LABEL, root, FOLDER, required, download=download)
    images = read_images(folder / f"{split}_X.bin", lazy=split == "unlabeled")
    if split == "unlabeled":
        targets = torch.full((images.shape[0],), -1, dtype=torch.int64)
    else:
        targets = read_labels(folder / f"{split}_y.bin", images.shape[0])
    names_file = folder / "class_names.txt"
    names = names_file.read_text().split() if names_file.is_file() else None
    dataset = ImageDataset(
        images, targets, 10, STL10_MEAN, STL10_STD, "stl10", split, names if names and len(names) == 10 else None
    )
    if fold is not None:
        if split != "train":
            raise DatasetError(f"{LABEL}: fold= selects part of the train split; it does not apply to {split!r}.")
        dataset = dataset.subset(_fold(folder, fold, len(dataset)))
    return dataset
