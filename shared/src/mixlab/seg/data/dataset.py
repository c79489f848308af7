"""The segmentation dataset contract: images with per-pixel class masks, held in memory or read from files.

A segmentation sample is ``(image uint8 (3, H, W), mask uint8 (H, W))``; mask values are class indices in
``[0, num_classes)`` or :data:`IGNORE_INDEX` (255: object boundaries, void, padding). Sizes vary between samples of
a file dataset (VOC, Cityscapes, PASCAL-Context); an in-memory dataset (``digit-scenes``) holds one stacked tensor
pair, which is what lets the training loop index whole batches and augment them on the device.

Every sample has an ``id`` (the file stem: ``2007_000032``, ``aachen_000000_000019``) so that published split
lists (one id per line) can name it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from mixlab.errors import DatasetError

IGNORE_INDEX = 255

#: ImageNet statistics (spec §3.3): what every segmentation encoder here is normalised with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Loader = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def voc_palette(count: int = 256) -> torch.Tensor:
    """The PASCAL VOC colour map (``uint8 (count, 3)``): the bit-interleaving rule of the VOC devkit's ``labelcolormap``."""
    palette = torch.zeros(count, 3, dtype=torch.uint8)
    for index in range(count):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = torch.tensor([r, g, b], dtype=torch.uint8)
    return palette


@dataclass(repr=False)
class SegDataset:
    """One split of a segmentation dataset.

    ``ids`` names the samples in order. ``tensors`` holds ``(images uint8 (N, 3, H, W), masks uint8 (N, H, W))`` for
    an in-memory dataset; otherwise ``loader(i)`` decodes sample ``i`` (from the files) on demand. ``palette`` is the
    colour of each class for pictures (``uint8 (num_classes, 3)``).
    """

    name: str
    split: str
    num_classes: int
    class_names: tuple[str, ...]
    ids: list[str]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    tensors: tuple[torch.Tensor, torch.Tensor] | None = None
    loader: Loader | None = None
    palette: torch.Tensor = field(default_factory=lambda: voc_palette(256))

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes")
        if (self.tensors is None) == (self.loader is None):
            raise ValueError(f"{self.name}: give exactly one of tensors (in memory) or loader (files)")
        if self.tensors is not None:
            images, masks = self.tensors
            if images.dtype != torch.uint8 or masks.dtype != torch.uint8 or images.dim() != 4 or masks.dim() != 3:
                raise ValueError(f"{self.name}: tensors must be uint8 (N, 3, H, W) and uint8 (N, H, W)")
            if len(images) != len(self.ids) or len(masks) != len(self.ids) or images.shape[-2:] != masks.shape[-2:]:
                raise ValueError(f"{self.name}: {len(images)} images / {len(masks)} masks for {len(self.ids)} ids")

    @property
    def in_memory(self) -> bool:
        return self.tensors is not None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image uint8 (3, H, W), mask uint8 (H, W))`` of sample ``index``."""
        if self.tensors is not None:
            return self.tensors[0][index], self.tensors[1][index]
        assert self.loader is not None
        return self.loader(index)

    def subset(self, indices: Sequence[int] | torch.Tensor) -> SegDataset:
        """The samples at ``indices``, in that order (a view for in-memory data, a re-indexed loader for files)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        ids = [self.ids[i] for i in index.tolist()]
        if self.tensors is not None:
            return replace(self, ids=ids, tensors=(self.tensors[0][index], self.tensors[1][index]))
        assert self.loader is not None
        parent, positions = self.loader, index.tolist()
        return replace(self, ids=ids, loader=lambda i: parent(positions[i]))

    def index_of(self, ids: Sequence[str]) -> list[int]:
        """Positions of ``ids`` (a published split list); an id not in this split is a :class:`DatasetError`."""
        where = {sample_id: i for i, sample_id in enumerate(self.ids)}
        missing = [sample_id for sample_id in ids if sample_id not in where]
        if missing:
            shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise DatasetError(
                f"{len(missing)} id(s) of the split list are not in {self.name}'s {self.split} split ({shown}). "
                "The list is probably for another dataset or split."
            )
        return [where[sample_id] for sample_id in ids]

    def __repr__(self) -> str:
        kind = "in memory" if self.in_memory else "files"
        return (
            f"SegDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, classes={self.num_classes}, {kind})"
        )
