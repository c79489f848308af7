"""Tiny ImageNet (200 classes, 64x64) from the standard ``tiny-imagenet-200/`` folder of the cs231n zip.

Train: ``train/<wnid>/images/*.JPEG`` (500 per class). "test" is the official validation set (the labeled split
the MixMo/Puzzle-Mix protocol reports on): ``val/images/*.JPEG`` labeled by ``val/val_annotations.txt``. Class
index = position of the wnid in the **sorted** ``wnids.txt`` (torchvision ImageFolder's convention, which the
reference code used); ``words.txt``, when present, gives the class names. Normalization: mean = std = 0.5 (spec
mixmo-mixshare §6.1).

Decoding 110k JPEGs takes about a minute, so the decoded uint8 arrays are cached in ``.mixlab-cache/`` next to
the data, keyed by a fingerprint of the file list (names, sizes, mtimes) and of the label files. A read-only data
folder just means no cache (a warning, then decoding every time).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from mixlab.data._cache import fingerprint, load_cache, save_cache
from mixlab.data._files import is_image_file, locate, malformed, open_rgb
from mixlab.data.dataset import ImageDataset
from mixlab.data.registry import DatasetInfo, register_dataset

FOLDER = "tiny-imagenet-200"
LABEL = "Tiny ImageNet"
SIDE = 64
_CACHE_VERSION = 1

TINYIMAGENET_INFO = DatasetInfo(
    name="tinyimagenet",
    num_classes=200,
    image_size=SIDE,
    splits=("train", "test"),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    description="Tiny ImageNet: 100,000 train (500 per class) / 10,000 test (the official val set) colour images "
    "of 64x64, 200 classes.",
    layout=f"{FOLDER}/ with wnids.txt, words.txt (optional), train/<wnid>/images/*.JPEG, val/images/*.JPEG and "
    "val/val_annotations.txt: the cs231n release tiny-imagenet-200.zip, extracted",
    has_download=True,
    options=("cache", "workers"),
)


def _read_wnids(folder: Path) -> list[str]:
    wnids = sorted({line.strip() for line in (folder / "wnids.txt").read_text().splitlines() if line.strip()})
    if not wnids:
        raise malformed(LABEL, folder / "wnids.txt", "it lists no class")
    return wnids


def _class_names(folder: Path, wnids: list[str]) -> list[str]:
    words = folder / "words.txt"
    table: dict[str, str] = {}
    if words.is_file():
        for line in words.read_text(errors="replace").splitlines():
            key, _, value = line.partition("\t")
            table[key.strip()] = value.strip()
    return [table.get(w, w) for w in wnids]


def _train_files(folder: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for label, wnid in enumerate(wnids):
        directory = folder / "train" / wnid / "images"
        if not directory.is_dir():
            raise malformed(LABEL, directory, f"the training images of class {wnid} (listed in wnids.txt) are missing")
        names = sorted(entry.name for entry in os.scandir(directory) if is_image_file(entry.name))
        files += [directory / name for name in names]
        labels += [label] * len(names)
    return files, labels


def _test_files(folder: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    index = {w: i for i, w in enumerate(wnids)}
    annotations = folder / "val" / "val_annotations.txt"
    files, labels = [], []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in index:
            raise malformed(LABEL, annotations, f"line {number} is not '<file>\\t<wnid from wnids.txt>...': {line!r}")
        files.append(folder / "val" / "images" / fields[0].strip())
        labels.append(index[fields[1].strip()])
    return files, labels


def _decode_one(path: Path) -> np.ndarray:
    rgb = open_rgb(path, LABEL)
    if rgb.size != (SIDE, SIDE):
        raise malformed(LABEL, path, f"the image is {rgb.size[0]}x{rgb.size[1]}, expected {SIDE}x{SIDE}")
    return np.asarray(rgb).transpose(2, 0, 1)


def decode(files: list[Path], workers: int | None = None) -> np.ndarray:
    """Decode ``files`` into ``uint8 (N, 3, 64, 64)`` (PIL releases the GIL, so threads scale)."""
    out = np.empty((len(files), 3, SIDE, SIDE), dtype=np.uint8)
    count = workers or min(16, os.cpu_count() or 1)

    def work(item: tuple[int, Path]) -> None:
        out[item[0]] = _decode_one(item[1])

    with ThreadPoolExecutor(max_workers=count) as pool:
        for _ in pool.map(work, enumerate(files)):
            pass
    return out


@register_dataset(TINYIMAGENET_INFO)
def build_tinyimagenet(
    root: Path, split: str, download: bool, cache: bool = True, workers: int | None = None
) -> ImageDataset:
    folder = locate(
        "tinyimagenet", LABEL, root, FOLDER, ("wnids.txt", "train", "val/val_annotations.txt"), download=download
    )
    wnids = _read_wnids(folder)
    files, labels = (_train_files if split == "train" else _test_files)(folder, wnids)
    if not files:
        raise malformed(LABEL, folder / ("train" if split == "train" else "val"), f"no image of split {split!r}")
    print_ = fingerprint(folder, split, files, labels, LABEL, _CACHE_VERSION)
    cached = load_cache(folder, split, print_, SIDE, _CACHE_VERSION) if cache else None
    if cached is None:
        images, targets = decode(files, workers), np.asarray(labels, dtype=np.int64)
        if cache:
            save_cache(folder, split, print_, images, targets, LABEL, _CACHE_VERSION)
    else:
        images, targets = cached
    return ImageDataset(
        torch.from_numpy(images),
        torch.from_numpy(targets.astype(np.int64)),
        len(wnids),
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        "tinyimagenet",
        split,
        _class_names(folder, wnids),
    )
