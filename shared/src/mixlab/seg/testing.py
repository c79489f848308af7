"""Writers of miniature segmentation datasets in their real on-disk formats, for tests: PASCAL VOC 2012 (JPEGs, palette
PNG masks, ImageSets lists), DeepLab's SegmentationClassAug grey PNGs, the SBD release (``cls/<id>.mat`` structs
``GTcls``), Cityscapes (``leftImg8bit`` PNGs, ``gtFine`` labelIds PNGs) and PASCAL-Context (mmsegmentation's
converted PNGs, or the raw ``trainval/<id>.mat`` LabelMaps with ``labels.txt``).

Photographs are random pixels; masks are random class indices. The shape of a sample depends only on its id (and the
``size`` given), so an id written by two writers (a VOC photograph and its SBD mask) gets one shape. Each writer
returns the masks it wrote, id -> ``uint8 (H, W)``, as the loader should give them back.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mixlab.seg.data.dataset import IGNORE_INDEX, voc_palette

#: Where the 59 class names stand among the 459 raw labels of PASCAL-Context's ``labels.txt`` (1-based; the mapping
#: of the common converters). The loader maps by name, so only the names at these lines matter.
CONTEXT_RAW_LABELS = (2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113,
                      115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326,
                      347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458)  # fmt: skip
CONTEXT_RAW_COUNT = 459
#: Raw labels outside the 59 (they become background) used for the background pixels of a raw LabelMap.
CONTEXT_OTHER_LABELS = (1, 3, 100, 459)


def sample_shape(key: str, size: tuple[int, int]) -> tuple[int, int]:
    """The (H, W) of sample ``key``: ``size``, or ``size`` transposed for about half the ids (portrait photographs)."""
    height, width = size
    return (height, width) if zlib.crc32(key.encode()) % 2 == 0 else (width, height)


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def random_mask(rng: np.random.Generator, shape: tuple[int, int], num_classes: int, ignore: bool = True) -> np.ndarray:
    """Random class indices of ``shape``, with 0 and ``num_classes - 1`` present and, when ``ignore``, a line of 255
    (VOC's object boundaries) along the first row."""
    mask = rng.integers(0, num_classes, size=shape, dtype=np.uint8)
    mask[-1, 0], mask[-1, 1] = 0, num_classes - 1
    if ignore:
        mask[0, :] = IGNORE_INDEX
    return mask


def _save_photo(path: Path, rng: np.random.Generator, shape: tuple[int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def save_palette_png(path: Path, mask: np.ndarray) -> None:
    """``mask`` as a palette ("P") PNG with the VOC colour map, the format of VOC's ``SegmentationClass``."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
    image.putpalette(voc_palette(256).flatten().tolist())  # an "L" image becomes "P", its values kept
    image.save(path)


def save_grey_png(path: Path, mask: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(path)


def _write_list(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def write_voc(
    root: Path,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    size: tuple[int, int] = (20, 28),
    num_classes: int = 21,
    seed: int = 0,
    *,
    image_ids: Sequence[str] = (),
    year: str = "VOC2012",
    masks: str = "SegmentationClass",
    lists: str = "ImageSets/Segmentation",
) -> dict[str, np.ndarray]:
    """Write ``root/VOCdevkit/<year>/``: ``JPEGImages/<id>.jpg`` for the train, val and extra ``image_ids`` (photographs
    without a mask, as most of VOC's 17,125 are), palette PNG masks ``<masks>/<id>.png`` for train and val (255 along
    the first row), and ``<lists>/{train,val,trainval}.txt``. Returns the masks written."""
    folder = Path(root) / "VOCdevkit" / year
    written: dict[str, np.ndarray] = {}
    for key in dict.fromkeys([*train_ids, *val_ids, *image_ids]):
        rng = _rng(seed, key)
        shape = sample_shape(key, size)
        _save_photo(folder / "JPEGImages" / f"{key}.jpg", rng, shape)
        if key in train_ids or key in val_ids:
            written[key] = random_mask(rng, shape, num_classes)
            save_palette_png(folder / masks / f"{key}.png", written[key])
    _write_list(folder / lists / "train.txt", train_ids)
    _write_list(folder / lists / "val.txt", val_ids)
    _write_list(folder / lists / "trainval.txt", [*train_ids, *val_ids])
    return written


def write_segmentation_class_aug(
    root: Path,
    ids: Sequence[str],
    size: tuple[int, int] = (20, 28),
    num_classes: int = 21,
    seed: int = 2,
    *,
    list_ids: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Write DeepLab's ``VOCdevkit/VOC2012/SegmentationClassAug/<id>.png`` (grey index PNGs, no 255) for ``ids`` and,
    when ``list_ids`` is given, ``ImageSets/Segmentation/train_aug.txt`` in its two-column form
    (``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png``). Returns the masks written."""
    folder = Path(root) / "VOCdevkit" / "VOC2012"
    written: dict[str, np.ndarray] = {}
    for key in ids:
        written[key] = random_mask(_rng(seed, key), sample_shape(key, size), num_classes, ignore=False)
        save_grey_png(folder / "SegmentationClassAug" / f"{key}.png", written[key])
    if list_ids is not None:
        lines = [f"/JPEGImages/{key}.jpg /SegmentationClassAug/{key}.png" for key in list_ids]
        _write_list(folder / "ImageSets" / "Segmentation" / "train_aug.txt", lines)
    return written


def write_sbd(
    root: Path,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    size: tuple[int, int] = (20, 28),
    num_classes: int = 21,
    seed: int = 1,
    *,
    folder: str = "benchmark_RELEASE/dataset",
) -> dict[str, np.ndarray]:
    """Write the SBD release ``root/<folder>/``: ``img/<id>.jpg``, ``cls/<id>.mat`` (the MATLAB struct ``GTcls`` with
    ``Segmentation`` (uint8 HxW, no 255), ``Boundaries`` (a cell of sparse boundary maps, one per object class) and
    ``CategoriesPresent``) and ``train.txt``, ``val.txt``. Returns the masks written."""
    import scipy.io
    import scipy.sparse

    base = Path(root) / folder
    (base / "cls").mkdir(parents=True, exist_ok=True)
    written: dict[str, np.ndarray] = {}
    for key in dict.fromkeys([*train_ids, *val_ids]):
        rng = _rng(seed, key)
        shape = sample_shape(key, size)
        _save_photo(base / "img" / f"{key}.jpg", rng, shape)
        mask = random_mask(rng, shape, num_classes, ignore=False)
        boundaries = np.empty((num_classes - 1, 1), dtype=object)
        for k in range(1, num_classes):
            inside = mask == k
            edge = inside & ~np.roll(inside, 1, axis=1)
            boundaries[k - 1, 0] = scipy.sparse.csc_matrix(edge.astype(np.float64))
        present = np.unique(mask[mask > 0]).astype(np.uint8).reshape(-1, 1)
        struct = {"Segmentation": mask, "Boundaries": boundaries, "CategoriesPresent": present}
        scipy.io.savemat(base / "cls" / f"{key}.mat", {"GTcls": struct})
        written[key] = mask
    _write_list(base / "train.txt", train_ids)
    _write_list(base / "val.txt", val_ids)
    return written


def write_cityscapes(
    root: Path, split: str, ids: Sequence[str], size: tuple[int, int] = (16, 32), seed: int = 0
) -> dict[str, np.ndarray]:
    """Write ``root/cityscapes/leftImg8bit/<split>/<city>/<id>_leftImg8bit.png`` (RGB) and
    ``gtFine/<split>/<city>/<id>_gtFine_labelIds.png`` (grey labelIds 0..33) for each ``<city>_<seq>_<frame>`` id, plus
    the ``_gtFine_color.png`` beside it (which the loader must not read). The first row of every labelIds mask starts
    with 7, 33, 0 and 34 (an id Cityscapes does not define). Returns the labelIds written."""
    from PIL import Image

    from mixlab.seg.data.cityscapes import cityscapes_palette, cityscapes_train_ids

    base = Path(root) / "cityscapes"
    colors = cityscapes_palette().numpy()
    written: dict[str, np.ndarray] = {}
    for key in ids:
        city = key.split("_")[0]
        rng = _rng(seed, key)
        height, width = size  # Cityscapes frames are all landscape
        photo = base / "leftImg8bit" / split / city / f"{key}_leftImg8bit.png"
        photo.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)).save(photo)
        labels = rng.integers(0, 34, size=(height, width), dtype=np.uint8)
        labels[0, :4] = (7, 33, 0, 34)
        masks = base / "gtFine" / split / city
        save_grey_png(masks / f"{key}_gtFine_labelIds.png", labels)
        Image.fromarray(colors[cityscapes_train_ids(labels)]).save(masks / f"{key}_gtFine_color.png")
        written[key] = labels
    return written


def context_labels_text() -> str:
    """A ``labels.txt`` of the raw PASCAL-Context release: 459 ``<n>: <name>`` lines, the 59 classes' names at
    :data:`CONTEXT_RAW_LABELS`, placeholder names elsewhere."""
    from mixlab.seg.data.context import CONTEXT_CLASSES

    names = {raw: name for raw, name in zip(CONTEXT_RAW_LABELS, CONTEXT_CLASSES)}
    return "".join(f"{n}: {names.get(n, f'other label {n}')}\n" for n in range(1, CONTEXT_RAW_COUNT + 1))


def write_pascal_context(
    root: Path,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    size: tuple[int, int] = (20, 28),
    seed: int = 0,
    *,
    layout: str = "converted",
) -> dict[str, np.ndarray]:
    """Write PASCAL-Context: ``root/VOCdevkit/VOC2010/JPEGImages/<id>.jpg``, and the masks either as
    mmsegmentation's ``SegmentationClassContext/<id>.png`` with ``ImageSets/SegmentationContext/{train,val}.txt``
    (``layout="converted"``), or as the raw release ``root/pascal-context/{trainval/<id>.mat, labels.txt, train.txt,
    val.txt}`` (``layout="raw"``: ``LabelMap`` uint16 of raw labels, the background pixels drawn from
    :data:`CONTEXT_OTHER_LABELS`). Returns the 60-class masks (0 = background, 1..59) the loader should give."""
    import scipy.io

    if layout not in ("converted", "raw"):
        raise ValueError(f"layout must be 'converted' or 'raw', got {layout!r}")
    voc2010 = Path(root) / "VOCdevkit" / "VOC2010"
    raw = Path(root) / "pascal-context"
    to_raw = np.array((0, *CONTEXT_RAW_LABELS), dtype=np.uint16)
    written: dict[str, np.ndarray] = {}
    for key in dict.fromkeys([*train_ids, *val_ids]):
        rng = _rng(seed, key)
        shape = sample_shape(key, size)
        _save_photo(voc2010 / "JPEGImages" / f"{key}.jpg", rng, shape)
        mask = random_mask(rng, shape, 60, ignore=False)
        if layout == "converted":
            save_grey_png(voc2010 / "SegmentationClassContext" / f"{key}.png", mask)
        else:
            label_map = to_raw[mask]
            background = mask == 0
            label_map[background] = rng.choice(CONTEXT_OTHER_LABELS, size=int(background.sum()))
            (raw / "trainval").mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(raw / "trainval" / f"{key}.mat", {"LabelMap": label_map})
        written[key] = mask
    if layout == "converted":
        _write_list(voc2010 / "ImageSets" / "SegmentationContext" / "train.txt", train_ids)
        _write_list(voc2010 / "ImageSets" / "SegmentationContext" / "val.txt", val_ids)
    else:
        (raw / "labels.txt").write_text(context_labels_text())
        _write_list(raw / "train.txt", train_ids)
        _write_list(raw / "val.txt", val_ids)
    return written
