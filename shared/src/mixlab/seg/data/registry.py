"""The segmentation dataset registry: names -> (facts, a builder returning a :class:`SegDataset`).

Kept apart from the classification registry (:mod:`mixlab.data.registry`) because its samples are image + mask pairs
of varying size: a classification command listing its datasets must not offer ``voc``, and a segmentation command
must not offer ``cifar10``. The facts (:class:`mixlab.data.DatasetInfo`) and the data-root rule are shared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixlab.data.registry import DatasetInfo, resolve_data_root
from mixlab.errors import DatasetError
from mixlab.seg.data.dataset import SegDataset

SegBuilder = Callable[..., SegDataset]

_REGISTRY: dict[str, tuple[DatasetInfo, SegBuilder]] = {}


def register_seg_dataset(info: DatasetInfo) -> Callable[[SegBuilder], SegBuilder]:
    """Decorator registering a builder ``builder(root: Path, split: str, **options) -> SegDataset``."""

    def decorator(builder: SegBuilder) -> SegBuilder:
        if info.name in _REGISTRY:
            raise ValueError(f"segmentation dataset {info.name!r} is registered twice")
        _REGISTRY[info.name] = (info, builder)
        return builder

    return decorator


def available_seg_datasets() -> list[str]:
    return list(_REGISTRY)


def _canonical(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _lookup(name: str) -> tuple[DatasetInfo, SegBuilder]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    matches = [key for key in _REGISTRY if _canonical(key) == _canonical(str(name))]
    if len(matches) == 1:
        return _REGISTRY[matches[0]]
    raise DatasetError(
        f"unknown segmentation dataset {name!r}. Known: {', '.join(_REGISTRY)} "
        "(digit-scenes is built in and needs no download)."
    )


def seg_dataset_info(name: str) -> DatasetInfo:
    return _lookup(name)[0]


def build_seg_dataset(
    name: str, split: str = "train", data_root: str | Path | None = None, **options: Any
) -> SegDataset:
    """Load split ``split`` of segmentation dataset ``name`` from ``data_root`` (``--data-root``, ``$MIXLAB_DATA``,
    ``~/.cache/mixlab/data``). A missing or malformed dataset raises a :class:`DatasetError` saying what was looked
    for, where, and how to get it."""
    info, builder = _lookup(name)
    if split not in info.splits:
        raise DatasetError(f"dataset {info.name!r} has no split {split!r}; its splits are: {', '.join(info.splits)}.")
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        accepted = ", ".join(info.options) if info.options else "none"
        raise DatasetError(
            f"dataset {info.name!r} does not take the option(s) {', '.join(unknown)}; accepted options: {accepted}."
        )
    return builder(resolve_data_root(data_root), split, **options)
