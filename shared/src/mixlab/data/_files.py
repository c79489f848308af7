"""What every on-disk loader shares: finding the dataset folder, the user-facing errors, a data-only unpickler.

Loaders turn every failure into one :class:`DatasetError` paragraph (what was looked for, where, how to get it);
nothing from deep inside numpy/scipy/PIL reaches the user as a traceback.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixlab.data.download import download_dataset, how_to_get
from mixlab.errors import DatasetError

ROOT_HINT = "(The data root is --data-root, else $MIXLAB_DATA, else ~/.cache/mixlab/data.)"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def _candidates(root: Path, folder: str) -> list[Path]:
    # The documented place is root/folder; accepting root itself lets --data-root point at the folder directly.
    return [root / folder, root] if folder else [root]


def _complete(directory: Path, required: Sequence[str]) -> bool:
    return directory.is_dir() and all((directory / name).exists() for name in required)


def locate(
    name: str,
    label: str,
    root: Path,
    folder: str,
    required: Sequence[str],
    *,
    download: bool,
    split: str | None = None,
    looked_for: str | None = None,
    download_into_existing: bool = False,
) -> Path:
    """Return the folder holding ``required`` (``root/folder``, or ``root`` itself), downloading it if asked.

    ``label`` is the human name used in messages (``"CIFAR-10"``); ``looked_for`` overrides the description of
    the files in the error message. ``download_into_existing``: the release is several independent files (SVHN),
    so an existing folder holding only some of them is completed by a download instead of refused.
    """
    for candidate in _candidates(root, folder):
        if _complete(candidate, required):
            return candidate
    partial = root / folder if folder else root
    if download and (download_into_existing or not (folder and partial.is_dir())):
        download_dataset(name, root, split)
        for candidate in _candidates(root, folder):
            if _complete(candidate, required):
                return candidate
        raise DatasetError(
            f"{label} is still incomplete after the download. {', '.join(required)} are still missing under "
            f"{partial}; the release layout may have changed. Please report this."
        )
    what = looked_for or f"{', '.join(required)}" + (f" in a folder {folder!r}" if folder else "")
    if folder and partial.is_dir() and not download_into_existing:
        missing = [name for name in required if not (partial / name).exists()]
        raise DatasetError(
            f"{label} is incomplete in {partial}. The folder exists but lacks {', '.join(missing)}; delete or move "
            f"that folder and re-run with --download (download=True in Python), or restore the missing files "
            f"from the official release. {ROOT_HINT}"
        )
    raise DatasetError(
        f"{label} was not found under {root}. Looked for {what}. {how_to_get(name, root, split)} {ROOT_HINT}"
    )


def malformed(label: str, path: Path, problem: str, *, downloadable: bool = True) -> DatasetError:
    """The error for a file that exists but cannot be read as the release's format."""
    fix = (
        "delete it and re-run with --download (download=True in Python), or replace it with the official file"
        if downloadable
        else "replace it with the file of the official release"
    )
    return DatasetError(
        f"{label}: {path} could not be read. The file is probably truncated, corrupted or from another release "
        f"({problem}); {fix}."
    )


def is_image_file(name: str) -> bool:
    """An image of a JPEG/PNG folder release (ImageNet's ``.JPEG``, any case)."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def open_rgb(path: Path, label: str, *, downloadable: bool = True) -> Any:
    """The image at ``path`` as an RGB ``PIL.Image`` (greyscale and CMYK files converted), or the malformed error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise malformed(label, path, f"{type(error).__name__}: {error}", downloadable=downloadable) from None


# Globals a numpy-array pickle (the CIFAR python release, written by Python 2 numpy) may name. Anything else in a
# file that claims to be a CIFAR batch is refused: unpickling arbitrary globals would run code from the data root.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("multiarray", "scalar"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),
}


def _numpy_multiarray() -> Any:
    try:  # numpy >= 2 renamed numpy.core to numpy._core; importing the old name warns
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        target = _NUMPY_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        where, attribute = target
        holder = _numpy_multiarray() if where == "multiarray" else importlib.import_module(where)
        return getattr(holder, attribute)


def load_pickle(path: Path, label: str) -> dict[str, Any]:
    """Load a CIFAR-style pickled dict (Python 2 ``latin1`` strings, numpy arrays) with text keys."""
    try:
        with open(path, "rb") as handle:
            value = _DataUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError) as error:
        raise malformed(label, path, f"{type(error).__name__}: {error}") from None
    if not isinstance(value, dict):
        raise malformed(label, path, f"expected a pickled dict, found {type(value).__name__}")
    return {key.decode("latin1") if isinstance(key, bytes) else str(key): item for key, item in value.items()}


def as_text(values: Sequence[Any]) -> list[str]:
    return [v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values]
