"""MNIST-M-style data of SAMOSA's case study (spec samosa-scimix §2.7): MNIST digits composed on BSDS500 crops.

Each image is Ganin et al.'s MNIST-M rule applied to a 32x32 zero-padded MNIST digit ``d`` (grey, in [0, 1]) and a
random 32x32 crop ``b`` of a BSDS500 photograph: ``x = |b - d|`` per channel. On the uint8 scale this is exactly
``|b - D|`` with ``D`` the padded digit's byte, so the composition needs no rounding. The digit mask is
``m = 1[d < 0.5]`` (``D <= 127``), i.e. 1 on the background. ``b`` and ``m`` are kept per image (the attributes
``backgrounds`` and ``masks`` of :class:`MnistMDataset`) for the background variant of SAMOSA's ``s_r`` metric (§2.8).

Protocol (a choice of mixlab, documented because the spec leaves it open):

* train: the **first 50,000** MNIST training digits (the spec's 50,000 training images; ``size`` takes fewer) on
  crops of the 300 BSDS500 ``train`` + ``val`` photographs; MNIST's last 10,000 training digits are not used.
* test: the 10,000 MNIST test digits on crops of the 200 BSDS500 ``test`` photographs, so no test background comes
  from a photograph seen in training.
* For split ``s``, a numpy ``Generator`` seeded with ``(seed, 0 if s == "train" else 1)`` draws, for every digit of
  the MNIST split in order, the photograph (uniform over the split's pool, files sorted by name, train before val)
  and then the crop's top and left corner (uniform over the positions inside it). All draws are made for every digit
  of the file, so a ``size=n`` build is the first ``n`` images of the full one. Labels are MNIST's.

Files: MNIST's idx files exactly as :mod:`mixlab.data.mnist` reads them (``<root>/mnist/`` or torchvision's
``<root>/MNIST/raw/``; ``--download`` fetches them), and BSDS500's JPEGs in the layout of the Berkeley archive
``BSR_bsds500.tgz`` extracted into the data root, ``<root>/BSR/BSDS500/data/images/{train,val,test}/*.jpg`` (or the
same without the ``BSR/`` level). ``--download`` cannot fetch BSDS500: no checksum of that archive could be pinned,
so it is put there by hand. Decoding the split's 300 (or 200) photographs takes about a second on one core, so they
are decoded on every build, in threads, and not cached.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from mixlab.data._files import ROOT_HINT, malformed, open_rgb
from mixlab.data.dataset import ImageDataset
from mixlab.data.mnist import MNIST, PADDED, locate_split, read_split, to_tensor
from mixlab.data.registry import DatasetInfo, register_dataset
from mixlab.errors import DatasetError

NAME = "mnistm"
LABEL = "MNIST-M"
BSDS_LABEL = "BSDS500"
SIDE = PADDED  # 32: MNIST's 28x28 digits zero-padded, and the BSDS500 crops
DEFAULT_SEED = 0
TRAIN_SIZE = 50_000  # the spec's training-set size: the first 50,000 MNIST training digits

#: The official archive (Arbelaez et al. 2011). Not a --download source: its checksum could not be verified.
BSDS_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
#: Where the photographs are looked for under the data root, in order (the archive's layout first).
BSDS_FOLDERS = ("BSR/BSDS500/data/images", "BSDS500/data/images")
#: The BSDS500 folders whose photographs are the backgrounds of each split (the split's pool).
BSDS_SPLITS = {"train": ("train", "val"), "test": ("test",)}
_SPLIT_STREAM = {"train": 0, "test": 1}

# Normalization: a documented approximation, not a measurement. x = |b - d| is the BSDS500 crop on the background
# (about 90% of a padded digit's pixels) and its negative on the strokes, so its statistics are roughly those of
# natural photographs; mean 0.5 and std 0.25 per channel are the round values of that, since the real composition
# could not be measured here (BSDS500 was not available).
MNISTM_MEAN = (0.5, 0.5, 0.5)
MNISTM_STD = (0.25, 0.25, 0.25)

MNISTM_INFO = DatasetInfo(
    name=NAME,
    num_classes=10,
    image_size=SIDE,
    splits=("train", "test"),
    mean=MNISTM_MEAN,
    std=MNISTM_STD,
    description="MNIST-M-style digits (SAMOSA case study): MNIST digits zero-padded to 32x32 and composed as "
    "|b - d| on random 32x32 crops b of BSDS500 photographs; 50,000 train (the first MNIST training digits, on "
    "BSDS500 train+val crops) / 10,000 test (on BSDS500 test crops), 10 classes; each image keeps its crop and "
    "digit mask (backgrounds, masks).",
    layout=f"MNIST's idx files in mnist/ (or MNIST/raw/; --download fetches them) and BSDS500's photographs in "
    f"{BSDS_FOLDERS[0]}/{{train,val,test}}/*.jpg (or {BSDS_FOLDERS[1]}/...): {BSDS_URL} extracted into the data "
    "root by hand (--download cannot fetch it)",
    has_download=False,  # only the MNIST half can be downloaded
    options=("seed", "size"),
)


@dataclass(repr=False)
class MnistMDataset(ImageDataset):
    """An :class:`ImageDataset` of MNIST-M images that also carries, per image, the BSDS500 crop it was composed on
    (``backgrounds``, ``uint8 (N, 3, 32, 32)``) and the digit mask (``masks``, ``bool (N, 1, 32, 32)``, True on the
    background: ``d < 0.5``). ``subset`` keeps the three aligned."""

    backgrounds: torch.Tensor = field(kw_only=True)
    masks: torch.Tensor = field(kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        n, _, height, width = self.images.shape
        if self.backgrounds.dtype != torch.uint8 or tuple(self.backgrounds.shape) != (n, 3, height, width):
            raise DatasetError(
                f"dataset {self.name!r} (split {self.split!r}) has backgrounds that do not fit its images. They have "
                f"dtype {self.backgrounds.dtype} and shape {tuple(self.backgrounds.shape)}; expected uint8 of shape "
                f"{(n, 3, height, width)}."
            )
        if self.masks.dtype != torch.bool or tuple(self.masks.shape) != (n, 1, height, width):
            raise DatasetError(
                f"dataset {self.name!r} (split {self.split!r}) has masks that do not fit its images. They have "
                f"dtype {self.masks.dtype} and shape {tuple(self.masks.shape)}; expected bool of shape "
                f"{(n, 1, height, width)}."
            )

    def subset(self, indices: torch.Tensor | Sequence[int]) -> MnistMDataset:
        """The images at ``indices`` with their crops and masks (in that order; repeats allowed)."""
        index = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        return replace(
            self,
            images=self.images[index],
            targets=self.targets[index],
            backgrounds=self.backgrounds[index],
            masks=self.masks[index],
        )


# --- BSDS500 ------------------------------------------------------------------------------------------------------


def _jpegs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(folder / entry.name for entry in os.scandir(folder) if entry.name.lower().endswith(".jpg"))


def locate_bsds(root: Path, split: str) -> list[Path] | None:
    """The split's photographs (sorted by name, folder after folder) from the first candidate folder holding
    photographs of any split; None when none does. There, a folder of the split without a ``.jpg`` (a partial
    extraction) is the incomplete-data error."""
    for images in (root / folder for folder in BSDS_FOLDERS):
        parts = {part: _jpegs(images / part) for part in ("train", "val", "test")}
        if not any(parts.values()):
            continue
        empty = [str(images / part) for part in BSDS_SPLITS[split] if not parts[part]]
        if empty:
            raise DatasetError(
                f"{BSDS_LABEL} is incomplete in {images}. The backgrounds of {LABEL}'s {split} split are the "
                f"photographs of {' and '.join(f'{p}/' for p in BSDS_SPLITS[split])}, but {', '.join(empty)} holds "
                f"no .jpg; extract the whole archive {BSDS_URL} into {root} again. {ROOT_HINT}"
            )
        return [path for part in BSDS_SPLITS[split] for path in parts[part]]
    return None


def _decode(path: Path) -> np.ndarray:
    image = np.asarray(open_rgb(path, BSDS_LABEL, downloadable=False))
    if image.shape[0] < SIDE or image.shape[1] < SIDE:
        raise malformed(
            BSDS_LABEL,
            path,
            f"the image is {image.shape[1]}x{image.shape[0]}, smaller than the {SIDE}x{SIDE} crop",
            downloadable=False,
        )
    return image


def decode_pool(files: list[Path]) -> list[np.ndarray]:
    """The photographs as ``uint8 (H, W, 3)`` arrays (PIL releases the GIL while decoding, so threads scale)."""
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        return list(pool.map(_decode, files))


# --- composition --------------------------------------------------------------------------------------------------


def draw_crops(pool_shapes: list[tuple[int, int]], count: int, seed: int, split: str) -> np.ndarray:
    """``int64 (count, 3)``: per digit, the photograph's index in the pool and the crop's top and left corner."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    heights = np.asarray([h for h, _ in pool_shapes], dtype=np.int64)
    widths = np.asarray([w for _, w in pool_shapes], dtype=np.int64)
    which = rng.integers(0, len(pool_shapes), size=count)
    tops = rng.integers(0, heights[which] - SIDE + 1)
    lefts = rng.integers(0, widths[which] - SIDE + 1)
    return np.stack([which, tops, lefts], axis=1)


def compose(digits: torch.Tensor, pool: list[np.ndarray], crops: np.ndarray) -> tuple[torch.Tensor, ...]:
    """``digits``: ``uint8 (N, 1, 32, 32)`` padded MNIST; ``crops``: :func:`draw_crops`'s first ``N`` rows.
    Returns ``(images, backgrounds, masks)``: ``x = |b - d|`` and ``b`` as ``uint8 (N, 3, 32, 32)``, ``m = d < 0.5``
    as ``bool (N, 1, 32, 32)``."""
    n = digits.shape[0]
    which, tops, lefts = crops[:n].T
    offsets = np.arange(SIDE)
    backgrounds = np.empty((n, 3, SIDE, SIDE), dtype=np.uint8)
    for k in np.unique(which).tolist():  # one fancy-indexing gather per photograph
        rows = np.flatnonzero(which == k)
        ys, xs = tops[rows, None] + offsets, lefts[rows, None] + offsets
        backgrounds[rows] = pool[k][ys[:, :, None], xs[:, None, :]].transpose(0, 3, 1, 2)
    b = torch.from_numpy(backgrounds)
    images = torch.maximum(b, digits) - torch.minimum(b, digits)  # |b - 255 d| on the byte scale, without overflow
    return images, b, digits < 128  # d < 0.5  <=>  255 d <= 127


# --- the dataset --------------------------------------------------------------------------------------------------


def _bsds_missing(root: Path, split: str, mnist_error: DatasetError | None) -> DatasetError:
    folders = ", ".join(str(root / folder) for folder in BSDS_FOLDERS)
    parts = " and ".join(f"{part}/*.jpg" for part in BSDS_SPLITS[split])
    mnist = (
        f" MNIST's {split} idx files are missing too (looked for in {root / MNIST.folders[0]} and "
        f"{root / MNIST.folders[1]}); --download fetches those."
        if mnist_error is not None
        else ""
    )
    return DatasetError(
        f"{LABEL} needs BSDS500, which was not found under {root}. Its {split} split composes MNIST digits on crops "
        f"of the BSDS500 photographs {parts}, looked for in {folders}. --download cannot fetch them (no checksum of "
        f"the archive could be pinned): download BSR_bsds500.tgz (about 70 MB) from {BSDS_URL} and extract it into "
        f"{root}, which gives BSR/BSDS500/data/images/.{mnist} {ROOT_HINT}"
    )


def _options(seed: object, size: object) -> tuple[int, int | None]:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise DatasetError(f"{LABEL}: seed must be a non-negative integer, got {seed!r}.")
    if size is not None and (not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1):
        raise DatasetError(
            f"{LABEL}: size must be a positive number of images (or None for the default), got {size!r}."
        )
    return int(seed), None if size is None else int(size)


@register_dataset(MNISTM_INFO)
def build_mnistm(
    root: Path, split: str, download: bool, seed: int = DEFAULT_SEED, size: int | None = None
) -> MnistMDataset:
    """``size``: the first ``size`` images (default: 50,000 for train, all 10,000 for test)."""
    seed, size = _options(seed, size)
    try:  # BSDS500 is checked first, so a missing one is reported before any MNIST download
        digit_files: tuple[Path, Path] | None = locate_split(MNIST, root, split, download=False)
        mnist_error = None
    except DatasetError as error:
        digit_files, mnist_error = None, error
    files = locate_bsds(root, split)
    if files is None:
        raise _bsds_missing(root, split, mnist_error)
    if digit_files is None:
        if not download:
            details = str(mnist_error).removeprefix(f"{MNIST.label} was not found under {root}. ")
            raise DatasetError(f"{LABEL} needs MNIST, which was not found under {root}. {details}")
        digit_files = locate_split(MNIST, root, split, download=True)
    raw, labels = read_split(*digit_files, MNIST.label)
    available = raw.shape[0]
    if size is None:
        size = min(TRAIN_SIZE, available) if split == "train" else available
    elif size > available:
        raise DatasetError(
            f"{LABEL}: size={size} is more than the {available} MNIST {split} digits in {digit_files[0]}; give at "
            f"most {available}."
        )
    pool = decode_pool(files)
    crops = draw_crops([image.shape[:2] for image in pool], available, seed, split)
    images, backgrounds, masks = compose(to_tensor(raw[:size], 1, True), pool, crops)
    return MnistMDataset(
        images,
        torch.from_numpy(labels[:size].astype(np.int64)),
        10,
        MNISTM_MEAN,
        MNISTM_STD,
        NAME,
        split,
        list(MNIST.class_names),
        backgrounds=backgrounds,
        masks=masks,
    )
