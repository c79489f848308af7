"""PASCAL-Context (``pascal-context``): whole-scene annotations of PASCAL VOC 2010 photographs, 4,998 train / 5,105 val,
the standard 60 classes = background (0) + the 59 most frequent of the 459 raw labels (spec guidedmix §4.3).

Two layouts are read, under the data root ``<root>`` (``--data-root`` may also point at ``VOCdevkit/`` or at
``VOC2010/`` itself; ``V`` below is the ``VOCdevkit/VOC2010`` folder found), for split ``S`` in ``train`` / ``val``:

(a) the converted layout of mmsegmentation: ``V/JPEGImages/<id>.jpg``, ``V/SegmentationClassContext/<id>.png`` (grey
    PNGs, 0 = background, 1..59 = :data:`CONTEXT_CLASSES` in order) and ``V/ImageSets/SegmentationContext/S.txt``;
(b) the raw release (https://cs.stanford.edu/~roozbeh/pascal-context/): ``V/JPEGImages/<id>.jpg`` and
    ``pascal-context/`` (or ``pascal_context/``; under the data root or beside ``VOCdevkit/``) with
    ``trainval/<id>.mat`` (field ``LabelMap``: the 459 raw labels, 1-based), ``labels.txt`` (``<n>: <name>`` lines)
    and ``S.txt`` (the split's ids). Each raw label is mapped by its name to the 59 classes (every other label to
    background 0), and each .mat of the split is converted once into the grey PNG
    ``<root>/.mixlab-cache/pascal-context/SegmentationClassContext/<id>.png`` (temp file + rename, redone only when
    the .mat or labels.txt is newer), then read from there; a read-only data root means a warning and the .mat
    files are read on every load.

Layout (a) is used when complete, else (b). Option ``ignore_background=True`` (spec: ``context_ignore_background``)
gives the 59-class variant: background becomes 255 (ignored) and classes 1..59 become 0..58.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from mixlab.data._cache import CACHE_DIR
from mixlab.data._files import ROOT_HINT, malformed
from mixlab.data.registry import DatasetInfo
from mixlab.errors import DatasetError
from mixlab.seg.data.dataset import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, SegDataset
from mixlab.seg.data.registry import register_seg_dataset
from mixlab.seg.data.voc import (
    PairLoader,
    convert_once,
    examples,
    file_dataset,
    locate_devkit,
    read_mat_array,
    require_files,
)
from mixlab.seg.splits import read_id_list

NAME = "pascal-context"
LABEL = "PASCAL-Context"
URL = "https://cs.stanford.edu/~roozbeh/pascal-context/"
VOC2010_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/"
YEAR = "VOC2010"
CROP = 480  # the random crop of spec guidedmix §3.4 on PASCAL-Context
RAW_FOLDERS = ("pascal-context", "pascal_context")
CONVERTED = ("SegmentationClassContext", "ImageSets/SegmentationContext")
CONTEXT_CACHE = Path(CACHE_DIR) / "pascal-context" / "SegmentationClassContext"
#: The 59 classes, in the standard (alphabetical) order: class k + 1 of the 60-class masks.
CONTEXT_CLASSES = (
    "aeroplane",
    "bag",
    "bed",
    "bedclothes",
    "bench",
    "bicycle",
    "bird",
    "boat",
    "book",
    "bottle",
    "building",
    "bus",
    "cabinet",
    "car",
    "cat",
    "ceiling",
    "chair",
    "cloth",
    "computer",
    "cow",
    "cup",
    "curtain",
    "dog",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "horse",
    "keyboard",
    "light",
    "motorbike",
    "mountain",
    "mouse",
    "person",
    "plate",
    "platform",
    "pottedplant",
    "road",
    "rock",
    "sheep",
    "shelves",
    "sidewalk",
    "sign",
    "sky",
    "snow",
    "sofa",
    "table",
    "track",
    "train",
    "tree",
    "truck",
    "tvmonitor",
    "wall",
    "water",
    "window",
    "wood",
)
NUM_CLASSES = 1 + len(CONTEXT_CLASSES)
_LABEL_LINE = re.compile(r"\s*(\d+)\s*:\s*(.+?)\s*")

#: 60-class mask -> 59-class mask of ``ignore_background=True``: 0 -> 255, k -> k - 1, 255 stays 255.
IGNORE_BACKGROUND = np.full(256, IGNORE_INDEX, dtype=np.uint8)
IGNORE_BACKGROUND[1:NUM_CLASSES] = np.arange(NUM_CLASSES - 1, dtype=np.uint8)
IGNORE_BACKGROUND.flags.writeable = False

CONTEXT_INFO = DatasetInfo(
    name=NAME,
    num_classes=NUM_CLASSES,
    image_size=CROP,
    splits=("train", "val"),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    description="PASCAL-Context: 4,998 train / 5,105 val VOC 2010 photographs with whole-scene masks, 60 classes "
    "(background + the standard 59); ignore_background=True gives the 59-class variant (background ignored).",
    layout="VOCdevkit/VOC2010/ with JPEGImages/*.jpg and either mmsegmentation's SegmentationClassContext/*.png + "
    "ImageSets/SegmentationContext/{train,val}.txt, or the raw release pascal-context/{trainval/*.mat, labels.txt, "
    f"train.txt, val.txt}} ({URL}; converted once into .mixlab-cache/pascal-context/ under the data root); no --download",
    has_download=False,
    options=("ignore_background",),
)


def _how_to_get(root: Path) -> str:
    return (
        f"There is no --download: extract VOCtrainval_03-May-2010.tar ({VOC2010_URL}) into {root} (it unpacks to "
        f"VOCdevkit/VOC2010/), and either mmsegmentation's converted SegmentationClassContext/ masks with "
        f"ImageSets/SegmentationContext/{{train,val}}.txt into VOCdevkit/VOC2010/, or the raw release trainval.tar.gz "
        f"and labels.txt ({URL}) with the train.txt/val.txt id lists into {root / RAW_FOLDERS[0]}."
    )


def read_label_names(path: Path) -> np.ndarray:
    """The raw label -> class table of ``labels.txt`` (``<n>: <name>`` lines): ``uint8``, index = raw label, value =
    1..59 for the 59 classes' names, 0 (background) for every other label and for 0."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise malformed(LABEL, path, f"{type(error).__name__}: {error}", downloadable=False) from None
    names: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LABEL_LINE.fullmatch(line)
        if match is None:
            raise malformed(LABEL, path, f"line {number} is not '<n>: <name>': {line!r}", downloadable=False)
        names[int(match[1])] = match[2]
    index = {name: k + 1 for k, name in enumerate(CONTEXT_CLASSES)}
    table = np.zeros(max(names, default=0) + 1, dtype=np.uint8)
    for raw, name in names.items():
        table[raw] = index.get(name, 0)
    missing = sorted(set(index) - set(names.values()))
    if missing:
        raise malformed(
            LABEL, path, f"it lacks the class name(s) {examples(missing)} of the standard 59", downloadable=False
        )
    return table


def read_context_mat(path: Path, table: np.ndarray) -> np.ndarray:
    """The 60-class mask (``uint8 (H, W)``) of a raw ``trainval/<id>.mat``: its ``LabelMap`` through ``table``."""
    label_map = read_mat_array(path, LABEL, lambda content: content["LabelMap"], "a variable LabelMap")
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
        problem = f"LabelMap is {label_map.dtype} of shape {label_map.shape}, expected an HxW integer map"
        raise malformed(LABEL, path, problem, downloadable=False)
    if label_map.size and (label_map.min() < 0 or label_map.max() >= len(table)):
        raise malformed(
            LABEL,
            path,
            f"LabelMap has labels outside 0..{len(table) - 1}, the labels of labels.txt",
            downloadable=False,
        )
    return table[label_map]


def _raw_candidates(root: Path, voc2010: Path) -> list[Path]:
    bases = [root]
    if voc2010.parent.name == "VOCdevkit" and voc2010.parent.parent != root:
        bases.append(voc2010.parent.parent)
    return [base / folder for base in bases for folder in RAW_FOLDERS]


def _converted(voc2010: Path, split: str) -> tuple[list[str], dict[str, Path]]:
    ids = read_id_list(voc2010 / CONVERTED[1] / f"{split}.txt")
    masks = {key: voc2010 / CONVERTED[0] / f"{key}.png" for key in ids}
    require_files(masks, "masks", LABEL, voc2010 / CONVERTED[0])
    return ids, masks


def _raw(root: Path, voc2010: Path, split: str) -> tuple[list[str], dict[str, Path], functools.partial[np.ndarray]]:
    required = ("trainval", "labels.txt", f"{split}.txt")
    candidates = _raw_candidates(root, voc2010)
    folder = next((c for c in candidates if all((c / name).exists() for name in required)), None)
    if folder is None:
        places = ", ".join(str(c) for c in candidates)
        raise DatasetError(
            f"{LABEL} has photographs in {voc2010} but no masks. Looked for {CONVERTED[0]}/ and "
            f"{CONVERTED[1]}/{split}.txt in {voc2010} (mmsegmentation's converted layout), and for trainval/*.mat, "
            f"labels.txt and {split}.txt (the raw release) in {places}. {_how_to_get(root)} {ROOT_HINT}"
        )
    ids = read_id_list(folder / f"{split}.txt")
    table = read_label_names(folder / "labels.txt")
    mats = {key: folder / "trainval" / f"{key}.mat" for key in ids}
    require_files(mats, "LabelMap files", LABEL, folder / "trainval")
    reader = functools.partial(read_context_mat, table=table)
    masks = convert_once(mats, root / CONTEXT_CACHE, reader, LABEL, depends=(folder / "labels.txt",))
    return ids, masks, reader


@register_seg_dataset(CONTEXT_INFO)
def build_pascal_context(root: Path, split: str, ignore_background: bool = False) -> SegDataset:
    """``ignore_background``: 59 classes, background ignored (255) and the others shifted down by one."""
    if not isinstance(ignore_background, bool):
        raise DatasetError(f"{LABEL}: ignore_background must be True or False, got {ignore_background!r}.")
    looked_for = f"JPEGImages/ (the VOC 2010 photographs) with {CONVERTED[0]}/ or the raw release"
    voc2010 = locate_devkit(root, YEAR, ("JPEGImages",), LABEL, looked_for, _how_to_get(root))
    reader: functools.partial[np.ndarray] | None = None
    if all((voc2010 / name).exists() for name in (CONVERTED[0], f"{CONVERTED[1]}/{split}.txt")):
        ids, masks = _converted(voc2010, split)
    else:
        ids, masks, reader = _raw(root, voc2010, split)
    images = {key: voc2010 / "JPEGImages" / f"{key}.jpg" for key in ids}
    require_files(images, "images", LABEL, voc2010 / "JPEGImages")
    loader = PairLoader(
        LABEL,
        tuple(images.values()),
        tuple(masks[key] for key in ids),
        NUM_CLASSES,
        lookup=IGNORE_BACKGROUND if ignore_background else None,
        read_mat=reader,
    )
    names = CONTEXT_CLASSES if ignore_background else ("background", *CONTEXT_CLASSES)
    return file_dataset(NAME, split, names, ids, loader)
