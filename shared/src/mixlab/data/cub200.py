"""CUB-200, the 2010 release (Caltech-UCSD Birds 200, Welinder et al. 2010): 6,033 photographs of 200 bird species,
the fully supervised dataset of SciMix (spec samosa-scimix §1.1, §3.7), resized to 64x64 (or 96x96).

Files: the two archives of the official release (https://www.vision.caltech.edu/datasets/cub_200_2010/),
``images.tgz`` (``images/<NNN.Species_Name>/<file>.jpg``) and ``lists.tgz`` (``lists/train.txt``,
``lists/test.txt``, ``lists/classes.txt``, ``lists/files.txt``), both extracted into ``<root>/cub200/`` (or
``<root>/CUB_200_2010/``; ``--data-root`` may also point at that folder itself). There is no ``--download``: no
checksum of the archives could be pinned, so they are fetched and extracted by hand.

Split: the standard one of the release, ``lists/train.txt`` (3,000 images, 15 per class) and ``lists/test.txt``
(3,033), one path relative to ``images/`` per line (``001.Black_footed_Albatross/Black_footed_Albatross_0004_
2731401028.jpg``), read in the lists' order. Only listed files are read, so the archive's stray macOS ``._*`` files
do not matter. Label = the class folder's number ``NNN`` (001..200) minus 1; class names are the folder names
without the number (from ``classes.txt`` when present, else from the listed folders).

Resize rule (the spec says "resized to 64x64 and 96x96", no crop): each photograph is resized directly to
``image_size`` x ``image_size``, aspect ratio not kept, with PIL's antialiased bilinear filter, i.e. exactly
torchvision's ``transforms.Resize((S, S))`` on a PIL image. Normalization: the ImageNet mean and std (CUB's
photographs are natural images like ImageNet's, and fine-grained bird code normalizes with them; the train-set
statistics could not be measured here, the data not being available).

Decoding 6,033 JPEGs of about 500x400 takes several seconds, so the resized uint8 arrays are cached in
``.mixlab-cache/`` next to the data with Tiny ImageNet's cache files and fingerprint (file names, sizes, mtimes and
labels), one cache per split and ``image_size``. A read-only data folder just means no cache (a warning).
"""

from __future__ import annotations

import numbers
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from mixlab.data._cache import fingerprint, load_cache, save_cache
from mixlab.data._files import ROOT_HINT, is_image_file, malformed, open_rgb
from mixlab.data.dataset import ImageDataset
from mixlab.data.registry import DatasetInfo, register_dataset
from mixlab.errors import DatasetError

NAME = "cub200"
LABEL = "CUB-200-2010"
#: Where the release is looked for under the data root, in order (then the data root itself).
FOLDERS = ("cub200", "CUB_200_2010")
URL = "https://www.vision.caltech.edu/datasets/cub_200_2010/"
NUM_CLASSES = 200
SIDE = 64
MIN_SIDE = 8
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CACHE_VERSION = 1  # of the resized arrays (bump when the resize rule changes)
#: A list line: ``NNN.Species_Name/file.jpg`` (one folder level, no path separators in either part).
_LINE = re.compile(r"(\d{3})\.([^/\\]+)/([^/\\]+)")

CUB200_INFO = DatasetInfo(
    name=NAME,
    num_classes=NUM_CLASSES,
    image_size=SIDE,
    splits=("train", "test"),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    description="CUB-200 (Caltech-UCSD Birds 200, the 2010 release): 3,000 train (15 per class) / 3,033 test "
    "photographs of 200 bird species, the standard split of lists/train.txt and lists/test.txt, each resized to "
    "64x64 (image_size=96, or any size >= 8).",
    layout=f"{FOLDERS[0]}/ (or {FOLDERS[1]}/) with images/<NNN.Species_Name>/*.jpg and lists/train.txt, "
    f"lists/test.txt (classes.txt optional): images.tgz and lists.tgz of {URL} extracted there by hand "
    "(no --download: no checksum of the archives could be pinned)",
    has_download=False,
    options=("image_size", "cache", "workers"),
)


# --- finding the release ------------------------------------------------------------------------------------------


def _is_release(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "lists").is_dir()


def locate_release(root: Path, split: str) -> Path:
    """The folder holding ``images/`` and ``lists/``: ``root/cub200``, ``root/CUB_200_2010``, else ``root``."""
    candidates = [root / folder for folder in FOLDERS]
    for folder in [*candidates, root]:
        if _is_release(folder) and (folder / "lists" / f"{split}.txt").is_file():
            return folder
    present = [folder for folder in candidates if folder.is_dir()]
    if present:  # a partial extraction: say exactly what is missing
        folder = present[0]
        wanted = ("images", "lists", f"lists/{split}.txt")
        missing = [name for name in wanted if not (folder / name).exists()]
        raise DatasetError(
            f"{LABEL} is incomplete in {folder}. The folder exists but lacks {', '.join(missing)}; extract both "
            f"archives of the official release, images.tgz and lists.tgz from {URL}, into it (they unpack to "
            f"images/ and lists/). {ROOT_HINT}"
        )
    raise DatasetError(
        f"{LABEL} was not found under {root}. Looked for images/<NNN.Species_Name>/*.jpg and lists/{split}.txt in "
        f"{candidates[0]} or {candidates[1]} (or in {root} itself). There is no --download for it (no checksum of "
        f"the archives could be pinned): download images.tgz (about 650 MB) and lists.tgz of the 2010 release from "
        f"{URL} and extract both into {candidates[0]}. {ROOT_HINT}"
    )


# --- the lists ----------------------------------------------------------------------------------------------------


def read_list(folder: Path, split: str) -> tuple[list[Path], list[int], dict[int, str]]:
    """The split's files (in the list's order), their labels (``NNN - 1``) and the class names seen in it."""
    path = folder / "lists" / f"{split}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise malformed(LABEL, path, f"{type(error).__name__}: {error}", downloadable=False) from None
    files: list[Path] = []
    labels: list[int] = []
    names: dict[int, str] = {}
    missing: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        match = _LINE.fullmatch(entry)
        if match is None or not (1 <= int(match[1]) <= NUM_CLASSES) or not is_image_file(match[3]):
            raise malformed(
                LABEL,
                path,
                f"line {number} is not '<NNN.Species_Name>/<file>.jpg' with NNN from 001 to {NUM_CLASSES:03d}: "
                f"{line!r}",
                downloadable=False,
            )
        file = folder / "images" / entry
        if not file.is_file():
            missing.append(entry)
        files.append(file)
        labels.append(int(match[1]) - 1)
        names.setdefault(int(match[1]) - 1, match[2])
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DatasetError(
            f"{LABEL} is missing images in {folder / 'images'}. {len(missing)} of the {len(files)} files that "
            f"lists/{split}.txt lists {'does' if len(missing) == 1 else 'do'} not exist ({shown}); extract images.tgz "
            f"of the official release ({URL}) into {folder} again."
        )
    if not files:
        raise malformed(LABEL, path, "it lists no image", downloadable=False)
    return files, labels, names


def class_names(folder: Path, seen: dict[int, str]) -> list[str]:
    """The 200 species names, from ``lists/classes.txt`` (``NNN.Species_Name`` per line) when it is readable,
    else from the folders the split lists; a class with neither is named by its number."""
    names = dict(seen)
    try:
        for line in (folder / "lists" / "classes.txt").read_text(encoding="utf-8").splitlines():
            number, _, name = line.strip().partition(".")
            if number.isdigit() and 1 <= int(number) <= NUM_CLASSES and name:
                names[int(number) - 1] = name
    except (OSError, UnicodeDecodeError):
        pass  # optional: only the names depend on it
    return [names.get(index, f"{index + 1:03d}") for index in range(NUM_CLASSES)]


# --- decoding and the cache ---------------------------------------------------------------------------------------


def _decode_one(path: Path, side: int) -> np.ndarray:
    from PIL import Image

    rgb = open_rgb(path, LABEL, downloadable=False)
    return np.asarray(rgb.resize((side, side), Image.Resampling.BILINEAR)).transpose(2, 0, 1)


def decode(files: list[Path], side: int, workers: int | None = None) -> np.ndarray:
    """Decode ``files`` and resize each to ``side`` x ``side``: ``uint8 (N, 3, side, side)`` (threads: PIL releases
    the GIL while decoding and resizing)."""
    out = np.empty((len(files), 3, side, side), dtype=np.uint8)
    count = workers or min(16, os.cpu_count() or 1)

    def work(item: tuple[int, Path]) -> None:
        out[item[0]] = _decode_one(item[1], side)

    with ThreadPoolExecutor(max_workers=max(1, int(count))) as pool:
        for _ in pool.map(work, enumerate(files)):
            pass
    return out


def _cache_key(split: str, side: int) -> str:
    return f"{split}-{side}px"  # one cache per split and image_size, in Tiny ImageNet's file scheme


def _check_side(image_size: object) -> int:
    if not isinstance(image_size, numbers.Integral) or isinstance(image_size, bool) or image_size < MIN_SIDE:
        raise DatasetError(
            f"{LABEL}: image_size must be a whole number of pixels >= {MIN_SIDE} (64 or 96 in SciMix), got "
            f"{image_size!r}."
        )
    return int(image_size)


@register_dataset(CUB200_INFO)
def build_cub200(
    root: Path, split: str, download: bool, image_size: int = SIDE, cache: bool = True, workers: int | None = None
) -> ImageDataset:
    """``image_size``: the side S of the square images (64); ``cache``: read/write ``.mixlab-cache/``;
    ``workers``: decoding threads. ``download`` cannot fetch anything (see :func:`locate_release`)."""
    side = _check_side(image_size)
    folder = locate_release(root, split)
    files, labels, seen = read_list(folder, split)
    key = _cache_key(split, side)
    print_ = fingerprint(folder, key, files, labels, LABEL, _CACHE_VERSION)  # every file exists: read_list checked
    cached = load_cache(folder, key, print_, side, _CACHE_VERSION) if cache else None
    if cached is None:
        images, targets = decode(files, side, workers), np.asarray(labels, dtype=np.int64)
        if cache:
            save_cache(folder, key, print_, images, targets, LABEL, _CACHE_VERSION)
    else:
        images, targets = cached
    return ImageDataset(
        torch.from_numpy(images),
        torch.from_numpy(targets.astype(np.int64)),
        NUM_CLASSES,
        IMAGENET_MEAN,
        IMAGENET_STD,
        NAME,
        split,
        class_names(folder, seen),
    )
