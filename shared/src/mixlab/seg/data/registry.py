"""The segmentation dataset registry: names -> (facts, a builder returning a :class:`SegDataset`).

Kept apart from the classification registry (:mod:`mixlab.data.registry`, the same :class:`DatasetRegistry` class)
because its samples are image + mask pairs of varying size: a classification command listing its datasets must not
offer ``voc``, and a segmentation command must not offer ``cifar10``. The facts (:class:`mixlab.data.DatasetInfo`)
and the data-root rule are shared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixlab.data.registry import DatasetInfo, DatasetRegistry, resolve_data_root
from mixlab.seg.data.dataset import SegDataset

#: A builder is called as ``builder(root, split, **options)``; ``root`` is the resolved data root.
SegBuilder = Callable[..., SegDataset]

_REGISTRY = DatasetRegistry("segmentation dataset", "digit-scenes is built in and needs no download")


def register_seg_dataset(info: DatasetInfo) -> Callable[[SegBuilder], SegBuilder]:
    """Decorator registering a builder ``builder(root: Path, split: str, **options) -> SegDataset``."""
    return _REGISTRY.register(info)


def available_seg_datasets() -> list[str]:
    return _REGISTRY.names()


def seg_dataset_info(name: str) -> DatasetInfo:
    return _REGISTRY.lookup(name)[0]


def build_seg_dataset(
    name: str, split: str = "train", data_root: str | Path | None = None, **options: Any
) -> SegDataset:
    """Load split ``split`` of segmentation dataset ``name`` from ``data_root`` (``--data-root``, ``$MIXLAB_DATA``,
    ``~/.cache/mixlab/data``). A missing or malformed dataset raises a :class:`DatasetError` saying what was looked
    for, where, and how to get it."""
    _, builder = _REGISTRY.checked(name, split, options)
    return builder(resolve_data_root(data_root), split, **options)
