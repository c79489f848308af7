"""Dataset registry: names -> (facts about the dataset, a builder that returns an :class:`ImageDataset`, or a
:class:`FileImageDataset` for a dataset too large for memory).

Loaders register themselves with :func:`register_dataset`; importing :mod:`mixlab.data` imports every built-in
loader, so ``build_dataset("cifar10")`` works after ``import mixlab.data``. A method package can register its own
dataset the same way without touching this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixlab.data.dataset import FileImageDataset, ImageDataset
from mixlab.errors import DatasetError

#: Default data root when neither ``--data-root`` nor ``$MIXLAB_DATA`` is given.
DEFAULT_DATA_ROOT = Path("~/.cache/mixlab/data")
DATA_ROOT_ENV = "MIXLAB_DATA"


@dataclass(frozen=True)
class DatasetInfo:
    """What a recipe or a CLI needs to know about a dataset without loading it.

    ``layout`` describes the on-disk files the loader reads (relative to the data root), so an error message or
    ``--help`` can tell the user exactly what to put where. ``options`` lists the keyword options the builder
    accepts; :func:`build_dataset` rejects any other with a :class:`DatasetError`.
    """

    name: str
    num_classes: int
    image_size: int
    splits: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    description: str
    layout: str
    has_download: bool
    builtin: bool = False
    options: tuple[str, ...] = ()

    @property
    def default_split(self) -> str:
        return self.splits[0]


#: A builder is called as ``builder(root, split, download, **options)``; ``root`` is the resolved data root.
Builder = Callable[..., ImageDataset | FileImageDataset]


def _canonical(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


class DatasetRegistry:
    """Names -> (facts, builder), with the spellings people type accepted and the split and options checked.

    One instance for classification datasets (this module's functions), one for segmentation datasets
    (:mod:`mixlab.seg.data.registry`): a command of one kind never offers the other kind's datasets.
    """

    def __init__(self, kind: str, builtin_hint: str):
        self.kind, self.builtin_hint = kind, builtin_hint  # "dataset" / "segmentation dataset"; the built-in one
        self._entries: dict[str, tuple[DatasetInfo, Callable[..., Any]]] = {}

    def register(self, info: DatasetInfo) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a builder under ``info.name`` (a second registration of a name is a bug)."""

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            if info.name in self._entries:
                raise ValueError(f"{self.kind} {info.name!r} is registered twice")
            self._entries[info.name] = (info, builder)
            return builder

        return decorator

    def names(self) -> list[str]:
        """Registered names, in registration order (the built-in default first)."""
        return list(self._entries)

    def lookup(self, name: str) -> tuple[DatasetInfo, Callable[..., Any]]:
        known = ", ".join(self._entries)
        if not isinstance(name, str):
            raise DatasetError(f"a dataset name must be a string, got {name!r}; known: {known}.")
        if name in self._entries:
            return self._entries[name]
        # Accept the spellings people actually type (CIFAR-10, tiny_imagenet, cifar-100-c).
        matches = [key for key in self._entries if _canonical(key) == _canonical(name)]
        if len(matches) == 1:
            return self._entries[matches[0]]
        raise DatasetError(f"unknown {self.kind} {name!r}. Known: {known} ({self.builtin_hint}).")

    def checked(self, name: str, split: str, options: dict[str, Any]) -> tuple[DatasetInfo, Callable[..., Any]]:
        """The entry of ``name`` once ``split`` and ``options`` are known to be ones it takes."""
        info, builder = self.lookup(name)
        if split not in info.splits:
            raise DatasetError(
                f"dataset {info.name!r} has no split {split!r}; its splits are: {', '.join(info.splits)}."
            )
        unknown = sorted(set(options) - set(info.options))
        if unknown:
            accepted = ", ".join(info.options) if info.options else "none"
            raise DatasetError(
                f"dataset {info.name!r} does not take the option(s) {', '.join(unknown)}; accepted options: {accepted}."
            )
        return info, builder


_REGISTRY = DatasetRegistry("dataset", "digits is built in and needs no download")


def register_dataset(info: DatasetInfo) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` under ``info.name`` (a second registration of a name is a bug)."""
    return _REGISTRY.register(info)


def available_datasets() -> list[str]:
    """Registered names, the built-in default (``digits``) first, then in registration order."""
    return _REGISTRY.names()


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a registered dataset; unknown names raise :class:`DatasetError`."""
    return _REGISTRY.lookup(name)[0]


def resolve_data_root(data_root: str | Path | None) -> Path:
    """``data_root`` if given, else ``$MIXLAB_DATA`` if set and non-empty, else ``~/.cache/mixlab/data``.

    The folder is not created here: nothing is written under it unless a download or a cache is asked for.
    """
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV, "")
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_ROOT.expanduser()


def build_dataset(
    name: str,
    split: str = "train",
    data_root: str | Path | None = None,
    download: bool = False,
    **options: Any,
) -> ImageDataset | FileImageDataset:
    """Load split ``split`` of dataset ``name`` from ``data_root`` (see :func:`resolve_data_root`).

    Nothing is fetched unless ``download=True``; a missing or malformed dataset raises a :class:`DatasetError`
    saying what was looked for, where, and how to get it. ``options`` are dataset-specific (listed in
    ``dataset_info(name).options``), e.g. ``corruptions=`` for ``cifar100c`` or ``fold=`` for ``stl10``.
    """
    info, builder = _REGISTRY.checked(name, split, options)
    root = resolve_data_root(data_root)
    return builder(root, split, download, **options)
