"""CIFAR-100-C (Hendrycks & Dietterich): the ``.npy`` release ``CIFAR-100-C/<corruption>.npy`` + ``labels.npy``.

Each corruption file holds the 10,000 CIFAR-100 test images at severities 1..5, severity-major (rows
``[(s-1)·10000, s·10000)`` are severity ``s``), as ``uint8 (50000, 32, 32, 3)``. The paper's benchmark uses the 15
standard corruptions; the MixMo official code pooled 19 files (the 15 plus speckle_noise, gaussian_blur, spatter,
saturate; spec mixmo-mixshare §6.1) into one 950k-image set. ``corruptions=None`` takes every known file present
(the 15 standard ones must be). :func:`iter_cifar100c` yields one (corruption, severity) block at a time for
per-corruption reports without holding 2.9 GB in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from mixlab.data._files import locate, malformed
from mixlab.data.cifar import CIFAR_MEAN, CIFAR_STD
from mixlab.data.dataset import ImageDataset
from mixlab.data.registry import DatasetInfo, register_dataset, resolve_data_root
from mixlab.errors import DatasetError

STANDARD_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
#: The 4 extra files of the release that the MixMo official code also pooled.
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS: tuple[str, ...] = STANDARD_CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
FOLDER = "CIFAR-100-C"
LABEL = "CIFAR-100-C"


def _corruption_list(folder: Path, corruptions: Sequence[str] | None) -> list[str]:
    if corruptions is None:
        missing = [c for c in STANDARD_CORRUPTIONS if not (folder / f"{c}.npy").is_file()]
        if missing:
            raise DatasetError(
                f"{LABEL} lacks standard corruption files in {folder} ({len(missing)} of {len(STANDARD_CORRUPTIONS)}). "
                f"Missing: {', '.join(m + '.npy' for m in missing)}; all 15 standard corruptions are needed when "
                "corruptions=None. Restore them from the official release (re-run with --download after moving the "
                "folder away), or pass corruptions=[...] explicitly."
            )
        return [c for c in ALL_CORRUPTIONS if (folder / f"{c}.npy").is_file()]
    if isinstance(corruptions, str):
        corruptions = [corruptions]
    unknown = [c for c in corruptions if c not in ALL_CORRUPTIONS]
    if unknown:
        raise DatasetError(f"unknown {LABEL} corruption(s) {', '.join(unknown)}; known: {', '.join(ALL_CORRUPTIONS)}.")
    absent = [c for c in corruptions if not (folder / f"{c}.npy").is_file()]
    if absent:
        raise DatasetError(
            f"{LABEL}: {', '.join(a + '.npy' for a in absent)} not found in {folder}; restore the file(s) from the "
            "official release (https://zenodo.org/record/3555552)."
        )
    return list(dict.fromkeys(corruptions))


def _severity_list(severities: Sequence[int] | int) -> list[int]:
    values = [severities] if isinstance(severities, int) else list(severities)
    bad = [s for s in values if s not in SEVERITIES]
    if bad or not values:
        raise DatasetError(f"{LABEL} severities must be a non-empty subset of 1..5, got {values}.")
    return list(dict.fromkeys(values))


def _open(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise malformed(LABEL, path, f"{type(error).__name__}: {error}") from None


def _labels(folder: Path) -> np.ndarray:
    path = folder / "labels.npy"
    labels = _open(path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise malformed(LABEL, path, f"labels have dtype {labels.dtype} and shape {labels.shape}, expected 1-D ints")
    return np.asarray(labels, dtype=np.int64)


def _block_size(path: Path, array: np.ndarray, labels: np.ndarray) -> int:
    """Images per severity ``n`` (10,000 in the release), checking shapes against ``labels``."""
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != (32, 32, 3) or array.shape[0] % 5:
        raise malformed(LABEL, path, f"dtype {array.dtype} and shape {array.shape}; expected uint8 (5·n, 32, 32, 3)")
    n = array.shape[0] // 5
    if labels.shape[0] not in (n, 5 * n):
        raise malformed(LABEL, path, f"{array.shape[0]} images but labels.npy has {labels.shape[0]} entries")
    return n


def _severity_block(array: np.ndarray, labels: np.ndarray, n: int, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = slice((severity - 1) * n, severity * n)
    images = torch.from_numpy(np.ascontiguousarray(array[rows].transpose(0, 3, 1, 2)))
    targets = labels[rows] if labels.shape[0] == 5 * n else labels
    return images, torch.from_numpy(np.array(targets, dtype=np.int64))


def _folder(root: Path, download: bool) -> Path:
    return locate(
        "cifar100c",
        LABEL,
        root,
        FOLDER,
        ("labels.npy",),
        download=download,
        looked_for=f"a folder {FOLDER!r} holding labels.npy and the <corruption>.npy files",
    )


CIFAR100C_INFO = DatasetInfo(
    name="cifar100c",
    num_classes=100,
    image_size=32,
    splits=("test",),
    mean=CIFAR_MEAN,
    std=CIFAR_STD,
    description="CIFAR-100-C: the CIFAR-100 test set under 15 standard (+4 extra) corruptions x 5 severities, "
    "10,000 images each; test only.",
    layout=f"{FOLDER}/ with labels.npy and <corruption>.npy for the 15 standard corruptions (optionally the 4 "
    "extra ones): the Zenodo release CIFAR-100-C.tar, extracted",
    has_download=True,
    options=("corruptions", "severities"),
)


@register_dataset(CIFAR100C_INFO)
def build_cifar100c(
    root: Path,
    split: str,
    download: bool,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] | int = SEVERITIES,
) -> ImageDataset:
    """All requested (corruption, severity) blocks pooled, corruption-major then severity-major."""
    folder = _folder(root, download)
    names, levels = _corruption_list(folder, corruptions), _severity_list(severities)
    labels = _labels(folder)
    arrays = {c: _open(folder / f"{c}.npy") for c in names}
    sizes = {c: _block_size(folder / f"{c}.npy", a, labels) for c, a in arrays.items()}
    total = sum(sizes[c] * len(levels) for c in names)
    images = torch.empty((total, 3, 32, 32), dtype=torch.uint8)
    targets = torch.empty(total, dtype=torch.int64)
    start = 0
    for c in names:
        for s in levels:
            block, block_targets = _severity_block(arrays[c], labels, sizes[c], s)
            images[start : start + len(block)] = block
            targets[start : start + len(block)] = block_targets
            start += len(block)
    return ImageDataset(images, targets, 100, CIFAR_MEAN, CIFAR_STD, "cifar100c", split)


def iter_cifar100c(
    data_root: str | Path | None = None,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] | int = SEVERITIES,
    download: bool = False,
) -> Iterator[tuple[str, int, ImageDataset]]:
    """Yield ``(corruption, severity, dataset)`` one block at a time (same selection rules as the pooled set)."""
    folder = _folder(resolve_data_root(data_root), download)
    names, levels = _corruption_list(folder, corruptions), _severity_list(severities)
    labels = _labels(folder)
    for c in names:
        path = folder / f"{c}.npy"
        array = _open(path)
        n = _block_size(path, array, labels)
        for s in levels:
            images, targets = _severity_block(array, labels, n, s)
            yield c, s, ImageDataset(images, targets, 100, CIFAR_MEAN, CIFAR_STD, "cifar100c", "test")
