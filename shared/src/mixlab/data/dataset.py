"""The in-memory dataset every loader returns: uint8 images and int64 targets, plus the constants recipes need.

Small image datasets (CIFAR, SVHN, Tiny ImageNet, digits) fit in memory as uint8, so batches are made by indexing
tensors (see :mod:`mixlab.data.loader`) instead of decoding per sample in DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from mixlab.errors import DatasetError


@dataclass
class ImageDataset:
    """Images ``uint8 (N, 3, H, W)`` and targets ``int64 (N,)`` (``-1`` marks an unlabeled image).

    ``mean``/``std`` are the per-channel normalization constants (on the [0, 1] scale) the recipes use for this
    dataset; ``images`` may be a lazily read view (STL-10's 2.7 GB unlabeled split is a memory map).
    """

    images: torch.Tensor
    targets: torch.Tensor
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str
    split: str
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        # A malformed file that decodes to the wrong shape must fail here, with the dataset named, rather than as
        # a shape error deep inside a model.
        where = f"dataset {self.name!r} (split {self.split!r})"
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise DatasetError(
                f"{where} decoded to images of dtype {self.images.dtype} and shape {tuple(self.images.shape)}, "
                "but mixlab expects uint8 images of shape (N, 3, H, W); the files on disk are probably malformed."
            )
        if self.targets.dtype != torch.int64 or self.targets.shape != (self.images.shape[0],):
            raise DatasetError(
                f"{where} has {self.images.shape[0]} images but targets of dtype {self.targets.dtype} and shape "
                f"{tuple(self.targets.shape)}; expected int64 of shape ({self.images.shape[0]},). The files on "
                "disk are probably malformed or from a different release."
            )
        if self.targets.numel() and int(self.targets.max()) >= self.num_classes:
            raise DatasetError(
                f"{where} has a target {int(self.targets.max())} outside [0, {self.num_classes}); the label file "
                "is probably from another dataset or malformed."
            )
        if self.targets.numel() and int(self.targets.min()) < -1:
            raise DatasetError(f"{where} has a target {int(self.targets.min())} < -1; the label file is malformed.")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def is_labeled(self) -> bool:
        """True when no target is ``-1``."""
        return bool((self.targets >= 0).all())

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ImageDataset:
        """The images at ``indices`` (in that order; repeats allowed), with every constant kept."""
        index = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        return replace(self, images=self.images[index], targets=self.targets[index])

    def class_counts(self) -> torch.Tensor:
        """Number of labeled images per class, ``int64 (num_classes,)``."""
        labeled = self.targets[self.targets >= 0]
        return torch.bincount(labeled, minlength=self.num_classes)

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image_size={self.image_size}, num_classes={self.num_classes})"
        )
