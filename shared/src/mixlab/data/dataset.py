"""The datasets loaders return: uint8 images and int64 targets, plus the constants recipes need.

Small image datasets (CIFAR, SVHN, Tiny ImageNet, digits) fit in memory as uint8 (:class:`ImageDataset`), so
batches are made by indexing tensors (see :mod:`mixlab.data.loader`) instead of decoding per sample in DataLoader
workers. Large ones (ImageNet-100: 126,689 full-size JPEGs) are :class:`FileImageDataset`: a list of files decoded
on demand, in DataLoader workers for training (:class:`mixlab.data.loader.FileBatchLoader`) and through the lazy
``images`` view for evaluation, with the same ``targets``, ``num_classes``, ``mean``/``std`` and ``class_names``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from mixlab.data._files import open_rgb
from mixlab.errors import DatasetError


def check_targets(where: str, targets: torch.Tensor, count: int, num_classes: int) -> None:
    """Targets must be int64 (count,) in [-1, num_classes): a malformed label file fails here, with the dataset named."""
    if targets.dtype != torch.int64 or targets.shape != (count,):
        raise DatasetError(
            f"{where} has targets that do not fit its {count} images. They have dtype {targets.dtype} and shape "
            f"{tuple(targets.shape)}; expected int64 of shape ({count},). The files on disk are probably malformed "
            "or from a different release."
        )
    if targets.numel() and int(targets.max()) >= num_classes:
        raise DatasetError(
            f"{where} has a target {int(targets.max())} outside [0, {num_classes}); the label file "
            "is probably from another dataset or malformed."
        )
    if targets.numel() and int(targets.min()) < -1:
        raise DatasetError(f"{where} has a target {int(targets.min())} < -1; the label file is malformed.")


def require_rgb(dataset: ImageDataset | FileImageDataset, needed_by: str) -> None:
    """Refuse a grey (``channels=1``) dataset where ``needed_by`` takes 3-channel images (the backbones' stems,
    RandAugment), with the fix in the message instead of a shape error inside a convolution."""
    channels = getattr(dataset, "channels", 3)
    if channels != 3:
        raise DatasetError(
            f"3-channel (RGB) images are needed, but dataset {dataset.name!r} has {channels}-channel images. They "
            f"are needed by {needed_by}, and the dataset was built with channels={channels}; build it with "
            "channels=3 (the default: the grey channel repeated)."
        )


class _Labels:
    """What both dataset kinds derive from their ``targets`` and ``num_classes``."""

    targets: torch.Tensor
    num_classes: int

    @property
    def is_labeled(self) -> bool:
        """True when no target is ``-1``."""
        return bool((self.targets >= 0).all())

    def class_counts(self) -> torch.Tensor:
        """Number of labeled images per class, ``int64 (num_classes,)``."""
        labeled = self.targets[self.targets >= 0]
        return torch.bincount(labeled, minlength=self.num_classes)

    def __repr__(self) -> str:  # the dataclasses below keep it (repr=False): never print the images
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image_size={self.image_size}, num_classes={self.num_classes})"
        )


@dataclass(repr=False)
class ImageDataset(_Labels):
    """Images ``uint8 (N, C, H, W)`` and targets ``int64 (N,)`` (``-1`` marks an unlabeled image).

    C is 3 (RGB, what every mixlab backbone takes) except for a grey dataset built with ``channels=1`` (MNIST,
    Fashion-MNIST), for code of one's own. ``mean``/``std`` are the per-channel normalization constants (on the
    [0, 1] scale, one per channel) the recipes use for this dataset; ``images`` may be a lazily read view (STL-10's
    2.7 GB unlabeled split is a memory map).
    """

    images: torch.Tensor
    targets: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str
    split: str
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        # A malformed file that decodes to the wrong shape must fail here, with the dataset named, rather than as
        # a shape error deep inside a model.
        where = f"dataset {self.name!r} (split {self.split!r})"
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] not in (1, 3):
            raise DatasetError(
                f"{where} decoded to images of the wrong dtype or shape. They have dtype {self.images.dtype} and "
                f"shape {tuple(self.images.shape)}, but mixlab expects uint8 images of shape (N, 3, H, W) (or "
                "(N, 1, H, W) for a grey dataset); the files on disk are probably malformed."
            )
        channels = int(self.images.shape[1])
        if len(self.mean) != channels or len(self.std) != channels:
            raise DatasetError(
                f"{where} has {channels}-channel images but {len(self.mean)} mean and {len(self.std)} std "
                "constants; give one per channel."
            )
        check_targets(where, self.targets, int(self.images.shape[0]), self.num_classes)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ImageDataset:
        """The images at ``indices`` (in that order; repeats allowed), with every constant kept."""
        index = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        return replace(self, images=self.images[index], targets=self.targets[index])


#: A file-backed dataset's per-image transform: an RGB ``PIL.Image`` -> ``uint8 (3, S, S)`` (see
#: :func:`mixlab.data.transforms.random_resized_crop` and :func:`~mixlab.data.transforms.resize_center_crop`).
ImageTransform = Callable[[Any], torch.Tensor]


@dataclass(repr=False)
class FileImageDataset(_Labels):
    """Images on disk, decoded on demand: ``files[i]`` opened with PIL, then ``transform`` -> ``uint8 (3, S, S)``.

    ``dataset[i]`` is ``(image, target)``; ``dataset[(i, seed)]`` draws the transform's randomness from ``seed``
    (torch's CPU RNG, forked so the caller's stream is untouched), which makes an augmented stream a function of
    the seeds alone, whatever DataLoader worker decodes it. ``images`` is a lazy view with the in-memory dataset's
    indexing (``images[a:b]`` decodes those files in a thread pool), so code written for :class:`ImageDataset`
    evaluates a file-backed test split unchanged. ``side`` is the transform's output size S; ``label`` the human
    name used in error messages; ``downloadable`` whether those messages may suggest ``--download``.
    """

    files: list[Path]
    targets: torch.Tensor
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str
    split: str
    transform: ImageTransform
    side: int
    class_names: list[str] | None = None
    label: str = ""
    downloadable: bool = False
    workers: int = field(default_factory=lambda: min(16, os.cpu_count() or 1))

    def __post_init__(self) -> None:
        check_targets(f"dataset {self.name!r} (split {self.split!r})", self.targets, len(self.files), self.num_classes)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.side, self.side

    @property
    def images(self) -> LazyImages:
        return LazyImages(self)

    def load(self, index: int, seed: int | None = None) -> torch.Tensor:
        """Decode and transform one image; with ``seed``, its randomness is a function of that seed alone."""
        image = open_rgb(self.files[index], self.label or self.name, downloadable=self.downloadable)
        if seed is None:
            return self.transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        return self.load(int(index), seed), int(self.targets[index])

    def with_transform(self, transform: ImageTransform, side: int | None = None) -> FileImageDataset:
        """The same files and targets under another per-image transform (e.g. with AutoAugment appended)."""
        return replace(self, transform=transform, side=self.side if side is None else side)

    def subset(self, indices: torch.Tensor | Sequence[int]) -> FileImageDataset:
        """The files at ``indices`` (in that order; repeats allowed), with every constant kept."""
        index = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        return replace(self, files=[self.files[i] for i in index.tolist()], targets=self.targets[index])


class LazyImages:
    """``FileImageDataset.images``: tensor-like indexing that decodes the selected files into ``uint8 (n, 3, S, S)``.

    Supports what evaluation code does with an in-memory ``images`` tensor: ``len``, ``shape``, ``dtype`` and
    indexing by an int, a slice or a sequence/tensor of indices. Decoding runs in ``dataset.workers`` threads (PIL
    releases the GIL while decoding and resizing), in the order of the indices.
    """

    dtype = torch.uint8

    def __init__(self, dataset: FileImageDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.dataset), 3, *self.dataset.image_size)

    def __getitem__(self, key: int | slice | Sequence[int] | torch.Tensor) -> torch.Tensor:
        if isinstance(key, int):
            return self.dataset.load(key)
        indices = range(len(self.dataset))[key] if isinstance(key, slice) else torch.as_tensor(key).reshape(-1).tolist()
        if len(indices) == 0:
            return torch.zeros((0, *self.shape[1:]), dtype=torch.uint8)
        with ThreadPoolExecutor(max_workers=max(1, self.dataset.workers)) as pool:
            return torch.stack(list(pool.map(self.dataset.load, indices)))
