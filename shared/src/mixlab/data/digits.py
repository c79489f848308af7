"""``digits``: the built-in dataset every command can use on a fresh machine with no download.

scikit-learn bundles the UCI handwritten digits (1,797 real 8x8 grey images, 10 classes). They are upsampled to
32x32 (bilinear, intensities scaled to 0..255; the ``image_size`` option picks another side, e.g. 16 for runs four
times cheaper with no detail lost) and coloured: each image gets a background and a foreground colour
drawn from a fixed-seed generator, the digit always at least ``MIN_CONTRAST`` brighter than its background (the
polarity is fixed, as in every handwritten-digit dataset, so the hues vary but the stroke stays the light part).
Colour is therefore a nuisance factor independent of the class, which the content-mixing methods (SAMOSA, SciMix)
need to show they separate semantics from style. The train/test split is fixed and stratified (1,437 / 360).
Everything is deterministic: the same tensors on every machine.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.data.dataset import ImageDataset
from mixlab.data.registry import DatasetInfo, register_dataset
from mixlab.errors import DatasetError

SIDE = 32
NUM_TEST = 360
COLOUR_SEED = 0
SPLIT_SEED = 0
#: Minimum |luminance(foreground) - luminance(background)| on the 0..255 scale (Rec. 601 weights).
MIN_CONTRAST = 96.0
_LUMA = np.array([0.299, 0.587, 0.114])

# Per-channel statistics of the train split on the [0, 1] scale, computed once with digits_statistics() and
# hard-coded (a test recomputes them).
DIGITS_MEAN = (0.4289, 0.3732, 0.4775)
DIGITS_STD = (0.2492, 0.2466, 0.2535)

DIGITS_INFO = DatasetInfo(
    name="digits",
    num_classes=10,
    image_size=SIDE,
    splits=("train", "test"),
    mean=DIGITS_MEAN,
    std=DIGITS_STD,
    description="Built in: scikit-learn's 1,797 real handwritten digits, upsampled to 32x32 RGB with seeded "
    "random foreground/background colours (colour is not related to the class); 1,437 train / 360 test.",
    layout="none: bundled with scikit-learn, nothing is read from the data root",
    has_download=False,
    builtin=True,
    options=("image_size",),
)


def _colours(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background and foreground RGB colours (float, 0..255), the foreground at least MIN_CONTRAST brighter.

    A fixed polarity keeps colour a nuisance factor without also asking a small network to learn contrast
    inversion, which made the built-in runs slow to start learning.
    """
    background = rng.integers(0, 256, size=(count, 3)).astype(np.float64)
    foreground = rng.integers(0, 256, size=(count, 3)).astype(np.float64)
    bad = (foreground - background) @ _LUMA < MIN_CONTRAST
    while bad.any():  # resample only the failing rows: deterministic given the seed
        background[bad] = rng.integers(0, 256, size=(int(bad.sum()), 3))
        foreground[bad] = rng.integers(0, 256, size=(int(bad.sum()), 3))
        bad = (foreground - background) @ _LUMA < MIN_CONTRAST
    return background, foreground


def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: ``float (1797, 8, 8)`` in 0..16 and ``int (1797,)``.

    The CSV is read straight from scikit-learn's data folder because importing ``sklearn.datasets`` costs seconds;
    ``load_digits`` (the same file) is the fallback if that layout ever changes.
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0], "datasets", "data", "digits.csv.gz") if locations else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",")
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int64)


def stratified_split(targets: np.ndarray, num_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, test) indices, sorted; class c gets its largest-remainder share of ``num_test``.

    Written here rather than taken from scikit-learn so the split cannot change with a library upgrade.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(targets, return_counts=True)
    quota = counts * num_test / counts.sum()
    per_class = np.floor(quota).astype(np.int64)
    remainder_order = np.lexsort((classes, -(quota - per_class)))  # largest remainder first, ties by class
    per_class[remainder_order[: num_test - int(per_class.sum())]] += 1
    test = np.concatenate([rng.permutation(np.flatnonzero(targets == c))[:k] for c, k in zip(classes, per_class)])
    train = np.setdiff1d(np.arange(len(targets)), test)
    return train, np.sort(test)


@lru_cache(maxsize=2)
def _all_digits(side: int = SIDE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All 1,797 coloured images (``side`` x ``side``) and targets, and the (train, test) index tensors."""
    raw, labels = _raw_digits()
    grey = torch.from_numpy(raw.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    alpha = F.interpolate(grey, size=(side, side), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    background, foreground = _colours(len(grey), np.random.default_rng(COLOUR_SEED))
    bg = torch.from_numpy(background).float()[:, :, None, None]
    fg = torch.from_numpy(foreground).float()[:, :, None, None]
    images = (bg + alpha * (fg - bg)).round_().clamp_(0, 255).to(torch.uint8)
    train, test = stratified_split(labels, NUM_TEST, SPLIT_SEED)
    return images, torch.from_numpy(labels), torch.from_numpy(train), torch.from_numpy(test)


@lru_cache(maxsize=2)
def digits_statistics(side: int = SIDE) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the train split on the [0, 1] scale (the source of DIGITS_MEAN/STD)."""
    images, _, train, _ = _all_digits(side)
    x = images[train].double() / 255.0
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist())


@register_dataset(DIGITS_INFO)
def build_digits(root: Path, split: str, download: bool, image_size: int = SIDE) -> ImageDataset:
    """``root`` and ``download`` are accepted for a uniform interface and ignored: the data is built in."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise DatasetError(
            f"digits: image_size must be a whole number of pixels >= 8 (the originals are 8x8), got {image_size!r}."
        )
    images, targets, train, test = _all_digits(image_size)
    mean, std = (DIGITS_MEAN, DIGITS_STD) if image_size == SIDE else digits_statistics(image_size)
    index = train if split == "train" else test
    return ImageDataset(images[index], targets[index], 10, mean, std, "digits", split, [str(d) for d in range(10)])
