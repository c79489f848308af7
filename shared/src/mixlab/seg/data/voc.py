"""PASCAL VOC 2012 segmentation (``voc``) and its SBD-augmented training set (``voc-aug``, "train_aug").

Every path below is under the data root ``<root>``; ``--data-root`` may also point at ``VOCdevkit/`` or at
``VOC2012/`` itself (``V`` below stands for the ``VOC2012`` folder found).

``voc``: splits ``train`` (1,464 images) and ``val`` (1,449), 21 classes (background + the 20 VOC objects). Read:

- ``VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt``: the split's ids, one per line, in that order;
- ``V/JPEGImages/<id>.jpg``: the photograph;
- ``V/SegmentationClass/<id>.png``: the mask, a palette ("P") PNG whose pixel values are the class indices 0..20,
  with 255 on object boundaries and "void" regions (kept: it is the ignore index). A greyscale ("L") PNG of the same
  indices is accepted too; an RGB rendering of the colours is refused with a :class:`DatasetError` (reading its
  colours as classes would silently give wrong labels).

``voc-aug``: split ``train`` is train_aug, 10,582 images (VOC train plus the images annotated by SBD, Hariharan et
al. 2011, minus VOC val); split ``val`` is VOC's val, read exactly as above. The train masks come from, in order:

(a) ``V/SegmentationClassAug/<id>.png``, the widely distributed grey index PNGs (DeepLab's
    ``SegmentationClassAug.zip``: 12,031 masks, train_aug + val), when that folder exists;
(b) else the SBD release (``benchmark.tgz``): ``benchmark_RELEASE/dataset/`` (or ``SBD/dataset/``, ``sbd/dataset/``,
    ``SBD/``, ``sbd/``; looked for under the data root and beside ``VOCdevkit/``) with ``cls/<id>.mat`` (the MATLAB
    struct ``GTcls`` whose field ``Segmentation`` is the uint8 HxW class-index mask) and ``train.txt``, ``val.txt``.
    Each .mat that is needed is converted once into the grey PNG
    ``<root>/.mixlab-cache/voc-aug/SegmentationClassAug/<id>.png`` (temp file + rename, redone only when the .mat is
    newer than it) and read from there; nothing is written into ``VOCdevkit/``. When that cache cannot be written,
    a warning says so and the .mat files are read on every load instead.

For every train_aug id, VOC's own ``V/SegmentationClass/<id>.png`` is used when it exists (it has the 255 boundaries
SBD lacks), the augmented mask otherwise. The ids are read from ``V/ImageSets/Segmentation/train_aug.txt`` (or
``trainaug.txt``) when present (one id per line, or DeepLab's two-column lines ``/JPEGImages/<id>.jpg
/SegmentationClassAug/<id>.png``), else computed as ``(A | VOC train) - VOC val``, sorted, where ``A`` is the stems of
``SegmentationClassAug/*.png`` for (a) and ``SBD train | SBD val`` for (b). Images always come from
``V/JPEGImages/<id>.jpg``. Images and masks are decoded on demand by the dataset's loader, never all at once.

The file helpers here (:class:`PairLoader`, :func:`read_index_png`, :func:`write_png_atomic`,
:func:`convert_once`) are shared with the Cityscapes and PASCAL-Context loaders.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixlab.data._cache import CACHE_DIR
from mixlab.data._files import ROOT_HINT, malformed, open_rgb
from mixlab.data.registry import DatasetInfo
from mixlab.errors import DatasetError
from mixlab.seg.data.dataset import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, SegDataset, voc_palette
from mixlab.seg.data.registry import register_seg_dataset
from mixlab.seg.splits import read_id_list

LABEL = "PASCAL VOC 2012"
AUG_LABEL = "PASCAL VOC 2012 train_aug"
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
SBD_URL = "http://home.bharathh.info/pubs/codes/SBD/download.html"
YEAR = "VOC2012"
NUM_CLASSES = 21
CROP = 321  # the random crop of spec guidedmix §3.4 on VOC
VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
#: The train_aug id lists looked for in ``VOC2012/ImageSets/Segmentation/``, in order.
AUG_LISTS = ("train_aug.txt", "trainaug.txt")
#: Where the SBD release's ``dataset/`` folder is looked for, below the data root and beside ``VOCdevkit/``.
SBD_FOLDERS = (
    "benchmark_RELEASE/dataset",
    "SBD/dataset",
    "sbd/dataset",
    "SBD/benchmark_RELEASE/dataset",
    "sbd/benchmark_RELEASE/dataset",
    "SBD",
    "sbd",
)
#: The converted SBD masks, below the data root.
AUG_CACHE = Path(CACHE_DIR) / "voc-aug" / "SegmentationClassAug"
MASK_MODES = ("P", "L")


def _info(name: str, description: str, layout: str) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        num_classes=NUM_CLASSES,
        image_size=CROP,
        splits=("train", "val"),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        description=description,
        layout=layout,
        has_download=False,
    )


VOC_INFO = _info(
    "voc",
    "PASCAL VOC 2012 segmentation: 1,464 train / 1,449 val photographs with per-pixel masks of 21 classes "
    "(background + 20 objects), 255 = object boundaries / void (ignored).",
    "VOCdevkit/VOC2012/ with JPEGImages/*.jpg, SegmentationClass/*.png (palette PNGs of class indices) and "
    f"ImageSets/Segmentation/{{train,val}}.txt: VOCtrainval_11-May-2012.tar of {VOC_URL} extracted into the data "
    "root by hand (no --download)",
)
VOC_AUG_INFO = _info(
    "voc-aug",
    "PASCAL VOC 2012 with the SBD annotations: train = train_aug, 10,582 images (VOC train + SBD, minus VOC val); "
    "val = VOC val (1,449). 21 classes, 255 ignored.",
    "VOC's layout (see voc) plus either VOCdevkit/VOC2012/SegmentationClassAug/*.png (grey index PNGs; "
    "ImageSets/Segmentation/train_aug.txt optional) or the SBD release benchmark_RELEASE/dataset/{cls/*.mat, "
    f"train.txt, val.txt}} of {SBD_URL}, converted once into .mixlab-cache/voc-aug/ under the data root",
)


# --- reading one sample ---------------------------------------------------------------------------------------------


def read_index_png(path: Path, label: str) -> np.ndarray:
    """The class indices of a palette ("P") or greyscale ("L") PNG mask, ``uint8 (H, W)``.

    Any other mode (an RGB rendering of the colours) is a :class:`DatasetError`: its colours are not class indices.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in MASK_MODES:
                return np.array(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as error:
        raise malformed(label, path, f"{type(error).__name__}: {error}", downloadable=False) from None
    raise DatasetError(
        f"{label}: the mask {path} is a {mode!r}-mode image (colours), not a palette ('P') or greyscale ('L') PNG "
        "whose pixel values are the class indices, as the official masks are. Reading its colours as classes would "
        "silently give wrong labels, so it is refused; use the release's own mask files (or convert colour "
        "renderings back to class indices with the dataset's palette first)."
    )


def check_mask_values(mask: np.ndarray, count: int, path: Path, label: str) -> None:
    """Every value of ``mask`` is a class index below ``count`` or :data:`IGNORE_INDEX`."""
    bad = (mask >= count) & (mask != IGNORE_INDEX)
    if bad.any():
        value = int(mask[bad][0])
        raise malformed(
            label,
            path,
            f"a mask value {value}; expected class indices 0..{count - 1} or 255 (ignore)",
            downloadable=False,
        )


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """``(width, height)`` times ``scale``, rounded, at least one pixel each."""
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True, eq=False)
class PairLoader:
    """``loader(i)`` of a file dataset: decodes image ``i`` and its mask on demand (a plain object, so it pickles
    into DataLoader worker processes).

    ``masks[i]`` is a PNG read by :func:`read_index_png`, or a ``.mat`` read by ``read_mat``. The values as read must
    be below ``raw_classes`` or 255 (``None``: any byte, e.g. Cityscapes labelIds); ``lookup`` (256 entries) then maps
    them. ``scale != 1`` resizes the image (bilinear) and the mask (nearest). ``official_lists``: the release's folder
    of split lists (VOC's ``ImageSets/Segmentation``), where :func:`mixlab.seg.splits.resolve_split` finds the
    official train list of the ``voc-aug-1464`` setting.
    """

    label: str
    images: tuple[Path, ...]
    masks: tuple[Path, ...]
    raw_classes: int | None
    lookup: np.ndarray | None = None
    scale: float = 1.0
    read_mat: Callable[[Path], np.ndarray] | None = None
    official_lists: Path | None = None

    def read_mask(self, index: int) -> np.ndarray:
        path = self.masks[index]
        if path.suffix == ".mat":
            assert self.read_mat is not None, "a .mat mask needs read_mat"
            mask = self.read_mat(path)
        else:
            mask = read_index_png(path, self.label)
        if self.raw_classes is not None:
            check_mask_values(mask, self.raw_classes, path, self.label)
        return mask if self.lookup is None else self.lookup[mask]

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        image = open_rgb(self.images[index], self.label, downloadable=False)
        mask = self.read_mask(index)
        if mask.shape != (image.height, image.width):
            raise malformed(
                self.label,
                self.masks[index],
                f"a mask of {mask.shape[1]}x{mask.shape[0]} for the {image.width}x{image.height} image "
                f"{self.images[index]}",
                downloadable=False,
            )
        if self.scale != 1.0:
            size = scaled_size(image.width, image.height, self.scale)
            image = image.resize(size, Image.Resampling.BILINEAR)
            mask = np.array(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        return pixels, torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))


# --- converted-mask caches (SBD, PASCAL-Context) --------------------------------------------------------------------


def write_png_atomic(path: Path, mask: np.ndarray) -> None:
    """Write ``mask`` (``uint8 (H, W)``) as a grey PNG at ``path``: to a temporary file in the same folder, then
    renamed over ``path``, so a reader never sees a half-written file."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp.png")
    try:
        Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _fresh(png: Path, sources: Iterable[Path]) -> bool:
    try:
        written = png.stat().st_mtime_ns
    except OSError:
        return False
    return all(written >= source.stat().st_mtime_ns for source in sources)


def convert_once(
    mats: dict[str, Path],
    cache: Path,
    read_mat: Callable[[Path], np.ndarray],
    label: str,
    depends: Sequence[Path] = (),
) -> dict[str, Path]:
    """The mask file to read for each id of ``mats``: ``cache/<id>.png``, converted from its .mat when missing or
    older than the .mat (or than any of ``depends``, e.g. a label list), else reused.

    When the cache cannot be written (a read-only data root), warns and returns the .mat files themselves.
    """
    stale = [key for key, mat in mats.items() if not _fresh(cache / f"{key}.png", (mat, *depends))]
    if stale:

        def convert(key: str) -> None:
            write_png_atomic(cache / f"{key}.png", read_mat(mats[key]))

        try:
            cache.mkdir(parents=True, exist_ok=True)
            with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
                for _ in pool.map(convert, stale):
                    pass
        except OSError as error:
            warnings.warn(
                f"{label}: could not write the converted masks to {cache} ({error}); the .mat files will be read "
                "on every load instead, which is slower. Make the data root writable to convert them once.",
                stacklevel=3,
            )
            return dict(mats)
    return {key: cache / f"{key}.png" for key in mats}


def read_mat_array(path: Path, label: str, get: Callable[[dict], Any], expected: str) -> np.ndarray:
    """``get`` of a MATLAB file's variables (squeezed, structs as objects), as an array; an unreadable file or a
    missing variable is the dataset's malformed error (scipy raises NotImplementedError for v7.3 / HDF5 files)."""
    import scipy.io

    try:
        return np.asarray(get(scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as error:
        raise malformed(
            label, path, f"{type(error).__name__}: {error}; expected {expected}", downloadable=False
        ) from None


def read_sbd_mat(path: Path) -> np.ndarray:
    """The class-index mask of an SBD ``cls/<id>.mat`` (struct ``GTcls``, field ``Segmentation``), ``uint8 (H, W)``."""
    segmentation = read_mat_array(
        path, AUG_LABEL, lambda content: content["GTcls"].Segmentation, "the struct GTcls with a field Segmentation"
    )
    if segmentation.ndim != 2 or not np.issubdtype(segmentation.dtype, np.integer):
        raise malformed(
            AUG_LABEL,
            path,
            f"GTcls.Segmentation is {segmentation.dtype} of shape {segmentation.shape}, expected an HxW integer mask",
            downloadable=False,
        )
    if segmentation.size and (segmentation.min() < 0 or segmentation.max() > 255):
        raise malformed(AUG_LABEL, path, "GTcls.Segmentation has values outside 0..255", downloadable=False)
    return segmentation.astype(np.uint8)


# --- finding the files ----------------------------------------------------------------------------------------------


def devkit_candidates(root: Path, year: str) -> list[Path]:
    """Where the ``VOC<year>`` folder may be: ``root/VOCdevkit/<year>``, ``root/<year>``, ``root`` itself (unless
    ``root`` is another year's folder)."""
    candidates = [root / "VOCdevkit" / year, root / year]
    if not (re.fullmatch(r"VOC\d{4}", root.name) and root.name != year):
        candidates.append(root)
    return candidates


def locate_devkit(root: Path, year: str, required: Sequence[str], label: str, looked_for: str, how_to_get: str) -> Path:
    """The ``VOC<year>`` folder holding every path of ``required``; else the one-paragraph error: "incomplete" when a
    folder with ``JPEGImages/`` exists, "not found" otherwise."""
    candidates = devkit_candidates(root, year)
    for folder in candidates:
        if all((folder / name).exists() for name in required):
            return folder
    for folder in candidates:
        if (folder / "JPEGImages").is_dir():
            missing = [name for name in required if not (folder / name).exists()]
            raise DatasetError(
                f"{label} is incomplete in {folder}. The folder exists but lacks {', '.join(missing)}; {how_to_get} "
                f"{ROOT_HINT}"
            )
    places = ", ".join(str(folder) for folder in candidates)
    raise DatasetError(
        f"{label} was not found under {root}. Looked for {looked_for} in {places}. {how_to_get} {ROOT_HINT}"
    )


def _voc_how_to_get(root: Path) -> str:
    return (
        f"There is no --download: download VOCtrainval_11-May-2012.tar (about 2 GB) from {VOC_URL} and extract it into "
        f"{root} (it unpacks to VOCdevkit/VOC2012/)."
    )


def locate_voc2012(root: Path, required: Sequence[str], label: str = LABEL) -> Path:
    looked_for = f"{', '.join(required)} (VOC's JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/ layout)"
    return locate_devkit(root, YEAR, required, label, looked_for, _voc_how_to_get(root))


def examples(values: Sequence[str], count: int = 3) -> str:
    return ", ".join(values[:count]) + (" ..." if len(values) > count else "")


def require_files(paths: dict[str, Path], what: str, label: str, folder: Path) -> None:
    """Every path of ``paths`` (id -> file) exists; else one error with the count and a few examples."""
    missing = [key for key, path in paths.items() if not path.is_file()]
    if missing:
        raise DatasetError(
            f"{label}: {len(missing)} of the {len(paths)} {what} listed for this split are missing in {folder} "
            f"({examples(missing)}). The folder is probably a partial extraction: extract the official release "
            f"again. {ROOT_HINT}"
        )


def probe_mask(path: Path, label: str) -> None:
    """Fail at build time (not in the middle of training) when the masks are colour renderings."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
    except (OSError, UnidentifiedImageError):
        return  # decoding reports it with the full message
    if mode not in MASK_MODES:
        read_index_png(path, label)  # raises the colour-mask error


def file_dataset(
    name: str,
    split: str,
    class_names: Sequence[str],
    ids: list[str],
    loader: PairLoader,
    palette: torch.Tensor | None = None,
) -> SegDataset:
    if loader.masks and loader.masks[0].suffix == ".png":
        probe_mask(loader.masks[0], loader.label)
    return SegDataset(
        name=name,
        split=split,
        num_classes=len(class_names),
        class_names=tuple(class_names),
        ids=ids,
        loader=loader,
        palette=voc_palette(256) if palette is None else palette,
    )


# --- VOC ------------------------------------------------------------------------------------------------------------


def _list_path(split: str) -> str:
    return f"ImageSets/Segmentation/{split}.txt"


def official_train_ids(root: Path) -> list[str]:
    """The 1,464 ids of VOC 2012's official segmentation train list (the labeled set of the ``voc-aug-1464``
    setting), read from ``VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt`` under ``root``."""
    folder = locate_voc2012(Path(root), ("JPEGImages", _list_path("train")))
    return read_id_list(folder / _list_path("train"))


def voc_split(root: Path, split: str, name: str, label: str) -> SegDataset:
    """VOC's own split ``split`` (``ImageSets/Segmentation/<split>.txt`` + ``SegmentationClass/``)."""
    folder = locate_voc2012(root, ("JPEGImages", "SegmentationClass", _list_path(split)), label)
    ids = read_id_list(folder / _list_path(split))
    images = {key: folder / "JPEGImages" / f"{key}.jpg" for key in ids}
    masks = {key: folder / "SegmentationClass" / f"{key}.png" for key in ids}
    require_files(images, "images", label, folder / "JPEGImages")
    require_files(masks, "masks", label, folder / "SegmentationClass")
    loader = PairLoader(label, tuple(images.values()), tuple(masks.values()), NUM_CLASSES)
    return file_dataset(name, split, VOC_CLASSES, ids, loader)


@register_seg_dataset(VOC_INFO)
def build_voc(root: Path, split: str) -> SegDataset:
    return voc_split(root, split, "voc", LABEL)


# --- VOC + SBD (train_aug) ------------------------------------------------------------------------------------------


def sbd_candidates(root: Path, voc2012: Path) -> list[Path]:
    """Where SBD's ``dataset/`` folder may be: below the data root, then beside ``VOCdevkit/``."""
    bases = [root]
    if voc2012.parent.name == "VOCdevkit" and voc2012.parent.parent != root:
        bases.append(voc2012.parent.parent)
    return [base / folder for base in bases for folder in SBD_FOLDERS]


def locate_sbd(root: Path, voc2012: Path) -> Path | None:
    for folder in sbd_candidates(root, voc2012):
        if (folder / "cls").is_dir() and (folder / "train.txt").is_file() and (folder / "val.txt").is_file():
            return folder
    return None


def train_aug_ids(voc2012: Path, annotated: Iterable[str]) -> list[str]:
    """``(annotated | VOC train) - VOC val``, sorted: the train_aug id set when no list of it is given."""
    train = read_id_list(voc2012 / _list_path("train"))
    val = set(read_id_list(voc2012 / _list_path("val")))
    return sorted((set(annotated) | set(train)) - val)


def _aug_ids(voc2012: Path, annotated: Callable[[], Iterable[str]]) -> list[str]:
    for name in AUG_LISTS:
        path = voc2012 / "ImageSets" / "Segmentation" / name
        if path.is_file():
            return read_id_list(path)
    return train_aug_ids(voc2012, annotated())


def _no_aug_masks(root: Path, voc2012: Path) -> DatasetError:
    places = ", ".join(str(folder) for folder in sbd_candidates(root, voc2012))
    return DatasetError(
        f"{AUG_LABEL} needs the augmented masks and found neither form. Looked for SegmentationClassAug/ (grey index "
        f"PNGs) in {voc2012}, and for the SBD release (cls/*.mat, train.txt, val.txt) in {places}. There is no "
        f"--download: either extract SegmentationClassAug.zip (DeepLab's 12,031 train_aug + val masks) into {voc2012}, "
        f"or download benchmark.tgz (the SBD release, about 1.4 GB) from {SBD_URL} and extract it into {root} (it "
        f"unpacks to benchmark_RELEASE/dataset/; its .mat masks are converted once into {root / AUG_CACHE}). "
        f"{ROOT_HINT}"
    )


def aug_masks(root: Path, voc2012: Path) -> tuple[list[str], dict[str, Path]]:
    """The train_aug ids and the mask file to read for each (see the module docstring for the rules)."""
    voc_masks = voc2012 / "SegmentationClass"
    aug_folder = voc2012 / "SegmentationClassAug"
    if aug_folder.is_dir():
        ids = _aug_ids(voc2012, lambda: (path.stem for path in aug_folder.glob("*.png")))
        extra = {key: aug_folder / f"{key}.png" for key in ids}
        source = aug_folder
    else:
        sbd = locate_sbd(root, voc2012)
        if sbd is None:
            raise _no_aug_masks(root, voc2012)
        ids = _aug_ids(voc2012, lambda: read_id_list(sbd / "train.txt") + read_id_list(sbd / "val.txt"))
        wanted = [key for key in ids if not (voc_masks / f"{key}.png").is_file()]
        mats = {key: sbd / "cls" / f"{key}.mat" for key in wanted}
        require_files(mats, "SBD masks (ids without a VOC SegmentationClass mask)", AUG_LABEL, sbd / "cls")
        extra = convert_once(mats, root / AUG_CACHE, read_sbd_mat, AUG_LABEL)
        source = sbd / "cls"
    masks: dict[str, Path] = {}
    missing: list[str] = []
    for key in ids:
        own = voc_masks / f"{key}.png"
        if own.is_file():
            masks[key] = own
        elif key in extra and extra[key].is_file():
            masks[key] = extra[key]
        else:
            missing.append(key)
    if missing:
        raise DatasetError(
            f"{AUG_LABEL}: {len(missing)} of the {len(ids)} train_aug ids have no mask, neither in {voc_masks} nor in "
            f"{source} ({examples(missing)}). The augmented masks are probably incomplete or from another release; "
            f"extract SegmentationClassAug.zip or SBD's benchmark.tgz ({SBD_URL}) again. {ROOT_HINT}"
        )
    return ids, masks


@register_seg_dataset(VOC_AUG_INFO)
def build_voc_aug(root: Path, split: str) -> SegDataset:
    if split != "train":
        return voc_split(root, split, "voc-aug", AUG_LABEL)
    voc2012 = locate_voc2012(root, ("JPEGImages", _list_path("train"), _list_path("val")), AUG_LABEL)
    ids, masks = aug_masks(root, voc2012)
    images = {key: voc2012 / "JPEGImages" / f"{key}.jpg" for key in ids}
    require_files(images, "images", AUG_LABEL, voc2012 / "JPEGImages")
    loader = PairLoader(
        AUG_LABEL,
        tuple(images.values()),
        tuple(masks[key] for key in ids),
        NUM_CLASSES,
        read_mat=read_sbd_mat,
        official_lists=voc2012 / "ImageSets" / "Segmentation",
    )
    return file_dataset("voc-aug", split, VOC_CLASSES, ids, loader)
