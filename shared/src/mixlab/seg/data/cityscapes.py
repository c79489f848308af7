"""Cityscapes semantic segmentation (``cityscapes``): 2,975 train / 500 val street scenes of 2048x1024 with fine
annotations, 19 evaluation classes (spec guidedmix §4.2).

Files read, under ``<root>/cityscapes/`` (``--data-root`` may also point at that folder itself), for split ``S`` in
``train`` / ``val``:

- ``leftImg8bit/S/<city>/<city>_<seq>_<frame>_leftImg8bit.png``: the photographs (every such file is a sample);
- ``gtFine/S/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png``: the masks, grey PNGs of the 34 raw labelIds (the
  ``_color``, ``_instanceIds`` and ``_polygons`` files beside them are not read).

Sample ids are ``<city>_<seq>_<frame>``, sorted. Each labelId is mapped to its trainId with the standard table
(:data:`CITYSCAPES_LABEL_TO_TRAIN`: 7->0 road, 8->1 sidewalk, ..., 33->18 bicycle); every other id (void, rectification
border, license plate, anything unknown) becomes 255, ignored. Option ``scale`` (default 1.0) resizes each image
(bilinear) and mask (nearest) on load, for reduced runs (0.5 gives 1024x512).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import torch

from mixlab.data._files import ROOT_HINT
from mixlab.data.registry import DatasetInfo
from mixlab.errors import DatasetError
from mixlab.seg.data.dataset import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, SegDataset
from mixlab.seg.data.registry import register_seg_dataset
from mixlab.seg.data.voc import PairLoader, file_dataset, require_files

NAME = "cityscapes"
LABEL = "Cityscapes"
URL = "https://www.cityscapes-dataset.com/downloads/"
FOLDER = "cityscapes"
CROP = 513  # the random crop of spec guidedmix §3.4 on Cityscapes
IMAGE_SUFFIX = "_leftImg8bit.png"
MASK_SUFFIX = "_gtFine_labelIds.png"

CITYSCAPES_CLASSES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
#: labelId -> trainId of the 19 evaluated classes (cityscapesScripts' ``labels.py``).
TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
             27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip
#: The 256-entry lookup table: ``CITYSCAPES_LABEL_TO_TRAIN[label_id]`` is the trainId, 255 for the unevaluated ids.
CITYSCAPES_LABEL_TO_TRAIN = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _label_id, _train_id in TRAIN_IDS.items():
    CITYSCAPES_LABEL_TO_TRAIN[_label_id] = _train_id
CITYSCAPES_LABEL_TO_TRAIN.flags.writeable = False

#: The standard colour of each trainId (cityscapesScripts), then black for the rest of the 256 values.
CITYSCAPES_COLORS = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
)

CITYSCAPES_INFO = DatasetInfo(
    name=NAME,
    num_classes=len(CITYSCAPES_CLASSES),
    image_size=CROP,
    splits=("train", "val"),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    description="Cityscapes: 2,975 train / 500 val street scenes of 2048x1024 with fine masks, the 19 evaluation "
    "classes (labelIds mapped to trainIds, the others ignored as 255); option scale resizes on load.",
    layout=f"{FOLDER}/ with leftImg8bit/{{train,val}}/<city>/*{IMAGE_SUFFIX} and gtFine/{{train,val}}/<city>/"
    f"*{MASK_SUFFIX}: leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip of {URL} extracted there by hand (no "
    "--download: the site needs a login)",
    has_download=False,
    options=("scale",),
)


def cityscapes_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map an array of Cityscapes labelIds to trainIds (``uint8``, same shape): the 19 evaluated ids to 0..18,
    everything else (void ids, -1, values beyond 255) to 255."""
    values = np.asarray(label_ids)
    if values.dtype == np.uint8:
        return CITYSCAPES_LABEL_TO_TRAIN[values]
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"labelIds must be integers, got {values.dtype}")
    out = np.full(values.shape, IGNORE_INDEX, dtype=np.uint8)
    inside = (values >= 0) & (values < 256)
    out[inside] = CITYSCAPES_LABEL_TO_TRAIN[values[inside]]
    return out


def cityscapes_palette() -> torch.Tensor:
    """``uint8 (256, 3)``: the standard colour of each trainId, black for the others (255 included)."""
    palette = torch.zeros(256, 3, dtype=torch.uint8)
    palette[: len(CITYSCAPES_COLORS)] = torch.tensor(CITYSCAPES_COLORS, dtype=torch.uint8)
    return palette


def locate(root: Path, split: str) -> Path:
    """The Cityscapes folder holding ``leftImg8bit/<split>`` and ``gtFine/<split>``: ``root/cityscapes`` or ``root``."""
    required = (f"leftImg8bit/{split}", f"gtFine/{split}")
    candidates = [root / FOLDER, root]
    for folder in candidates:
        if all((folder / name).is_dir() for name in required):
            return folder
    how = (
        f"There is no --download (the site needs a login): download leftImg8bit_trainvaltest.zip (11 GB) and "
        f"gtFine_trainvaltest.zip (241 MB) from {URL} and extract both into {root / FOLDER}."
    )
    for folder in candidates:
        if (folder / "leftImg8bit").is_dir() or (folder / "gtFine").is_dir():
            missing = [name for name in required if not (folder / name).is_dir()]
            raise DatasetError(
                f"{LABEL} is incomplete in {folder}. The folder exists but lacks {', '.join(missing)}; {how} {ROOT_HINT}"
            )
    raise DatasetError(
        f"{LABEL} was not found under {root}. Looked for leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX} and "
        f"gtFine/{split}/<city>/*{MASK_SUFFIX} in {root / FOLDER} and in {root} itself. {how} {ROOT_HINT}"
    )


def _check_scale(scale: object) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < float(scale) <= 4:
        raise DatasetError(
            f"{LABEL}: scale must be a number in (0, 4] (1.0 = full 2048x1024, 0.5 = half), got {scale!r}."
        )
    return float(scale)


@register_seg_dataset(CITYSCAPES_INFO)
def build_cityscapes(root: Path, split: str, scale: float = 1.0) -> SegDataset:
    """``scale``: resize factor applied on load (image bilinear, mask nearest)."""
    factor = _check_scale(scale)
    folder = locate(root, split)
    found = sorted(folder.glob(f"leftImg8bit/{split}/*/*{IMAGE_SUFFIX}"), key=lambda path: path.name)
    if not found:
        raise DatasetError(
            f"{LABEL}: {folder / 'leftImg8bit' / split} holds no <city>/*{IMAGE_SUFFIX} images. The archive "
            f"leftImg8bit_trainvaltest.zip of {URL} was probably not extracted completely; extract it again. {ROOT_HINT}"
        )
    ids = [path.name.removesuffix(IMAGE_SUFFIX) for path in found]
    images = dict(zip(ids, found))
    masks = {key: folder / "gtFine" / split / path.parent.name / f"{key}{MASK_SUFFIX}" for key, path in images.items()}
    require_files(masks, "labelIds masks (gtFine)", LABEL, folder / "gtFine" / split)
    loader = PairLoader(
        LABEL, tuple(images.values()), tuple(masks.values()), None, lookup=CITYSCAPES_LABEL_TO_TRAIN, scale=factor
    )
    return file_dataset(NAME, split, CITYSCAPES_CLASSES, ids, loader, palette=cityscapes_palette())
