"""The decoded-image cache of the JPEG datasets (Tiny ImageNet, CUB-200): uint8 arrays in ``.mixlab-cache/`` next
to the data, valid while a fingerprint of the source files (paths, sizes, mtimes, labels) matches."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from mixlab.data._files import malformed

CACHE_DIR = ".mixlab-cache"


def fingerprint(folder: Path, key: str, files: list[Path], labels: list[int], label: str, version: int) -> str:
    """Cheap validity key of a cache: every file's relative path, size and mtime, and the labels."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"{version}:{key}:{len(files)}".encode())
    for path, target in zip(files, labels, strict=True):
        try:
            stat = path.stat()
        except OSError:
            raise malformed(label, path, "the file listed for this split does not exist") from None
        digest.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}|{target}\n".encode())
    return digest.hexdigest()


def cache_paths(folder: Path, key: str) -> tuple[Path, Path, Path]:
    directory = folder / CACHE_DIR
    return directory / f"{key}-images.npy", directory / f"{key}-targets.npy", directory / f"{key}.json"


def load_cache(folder: Path, key: str, print_: str, side: int, version: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (images (N, 3, side, side) uint8, targets (N,)) of ``key``, or None when absent or stale."""
    images_path, targets_path, meta_path = cache_paths(folder, key)
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") != print_ or meta.get("version") != version:
            return None
        images = np.load(images_path, allow_pickle=False)
        targets = np.load(targets_path, allow_pickle=False)
    except (OSError, ValueError, EOFError, AttributeError):
        return None
    if images.dtype != np.uint8 or images.shape != (meta.get("count"), 3, side, side):
        return None
    if targets.shape != (images.shape[0],):
        return None
    return images, targets


def _atomic_save(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_cache(folder: Path, key: str, print_: str, images: np.ndarray, targets: np.ndarray, label: str,
               version: int) -> None:  # fmt: skip
    """Write the arrays, then the metadata whose fingerprint vouches for them; a failure only warns."""
    images_path, targets_path, meta_path = cache_paths(folder, key)
    try:
        images_path.parent.mkdir(exist_ok=True)
        _atomic_save(images_path, images)
        _atomic_save(targets_path, targets)
        meta = {"version": version, "fingerprint": print_, "count": int(images.shape[0])}
        temporary = meta_path.with_name(f"{meta_path.name}.tmp-{os.getpid()}")
        temporary.write_text(json.dumps(meta))
        os.replace(temporary, meta_path)  # written last: its fingerprint vouches for the arrays
    except OSError as error:
        warnings.warn(
            f"{label}: could not write the decoded-image cache in {images_path.parent} ({error}); the JPEGs will "
            "be decoded again next time.",
            stacklevel=3,
        )
