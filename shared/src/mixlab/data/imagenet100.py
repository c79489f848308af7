"""ImageNet-100: the 100-class subset of ImageNet-1k (ILSVRC-2012) of Tian, Krishnan & Isola, *Contrastive
Multiview Coding* (CMC, 2020), at 224 px, read from the user's ImageNet files.

The classes are the 100 wnids of ``imagenet100.txt`` in the CMC repository (HobbitLong/CMC), embedded below as
:data:`CMC_WNIDS`. Class index = position of the wnid in the **sorted** list (torchvision ImageFolder's order on a
folder holding exactly these 100 classes), so a model trained on an ImageFolder of the subset keeps its labels.

Two on-disk layouts, both ImageFolder trees with one folder per wnid (``*.JPEG``; ``.jpg``/``.png`` accepted):

* the subset already extracted: ``<root>/imagenet100/{train,val}/<wnid>/`` (126,689 train / 5,000 val images);
* the full ImageNet-1k: ``<root>/imagenet/{train,val}/<wnid>/`` (the validation images sorted into wnid folders),
  from which the 100 classes are selected; the other 900 folders are ignored.

``--data-root`` may also point at such a tree itself. "test" is the official validation set, as everywhere in
mixlab. ImageNet cannot be downloaded automatically: its licence requires an account at image-net.org.

126k full-size JPEGs do not fit in memory as one uint8 tensor: the dataset is a :class:`FileImageDataset` that
decodes each file on demand. Training images get ``RandomResizedCrop(224)`` and a horizontal flip (in DataLoader
workers), test images ``Resize(256)`` and ``CenterCrop(224)``; ``image_size=S`` gives S and ``round(S / 0.875)``
instead (small sizes make tests fast). Normalization: the ImageNet mean and std.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mixlab.data._files import ROOT_HINT, is_image_file, malformed
from mixlab.data.dataset import FileImageDataset
from mixlab.data.registry import DatasetInfo, register_dataset
from mixlab.data.transforms import random_resized_crop, resize_center_crop
from mixlab.errors import DatasetError

LABEL = "ImageNet-100"
SUBSET_FOLDER = "imagenet100"
FULL_FOLDER = "imagenet"
SIDE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SPLIT_FOLDERS = {"train": "train", "test": "val"}

#: The 100 wnids of HobbitLong/CMC ``imagenet100.txt``, sorted (= the class order). The file lists them unsorted;
#: cross-checked against two independent copies of the list in other public repositories.
CMC_WNIDS: tuple[str, ...] = (
    "n01558993",
    "n01692333",
    "n01729322",
    "n01735189",
    "n01749939",
    "n01773797",
    "n01820546",
    "n01855672",
    "n01978455",
    "n01980166",
    "n01983481",
    "n02009229",
    "n02018207",
    "n02085620",
    "n02086240",
    "n02086910",
    "n02087046",
    "n02089867",
    "n02089973",
    "n02090622",
    "n02091831",
    "n02093428",
    "n02099849",
    "n02100583",
    "n02104029",
    "n02105505",
    "n02106550",
    "n02107142",
    "n02108089",
    "n02109047",
    "n02113799",
    "n02113978",
    "n02114855",
    "n02116738",
    "n02119022",
    "n02123045",
    "n02138441",
    "n02172182",
    "n02231487",
    "n02259212",
    "n02326432",
    "n02396427",
    "n02483362",
    "n02488291",
    "n02701002",
    "n02788148",
    "n02804414",
    "n02859443",
    "n02869837",
    "n02877765",
    "n02974003",
    "n03017168",
    "n03032252",
    "n03062245",
    "n03085013",
    "n03259280",
    "n03379051",
    "n03424325",
    "n03492542",
    "n03494278",
    "n03530642",
    "n03584829",
    "n03594734",
    "n03637318",
    "n03642806",
    "n03764736",
    "n03775546",
    "n03777754",
    "n03785016",
    "n03787032",
    "n03794056",
    "n03837869",
    "n03891251",
    "n03903868",
    "n03930630",
    "n03947888",
    "n04026417",
    "n04067472",
    "n04099969",
    "n04111531",
    "n04127249",
    "n04136333",
    "n04229816",
    "n04238763",
    "n04336792",
    "n04418357",
    "n04429376",
    "n04435653",
    "n04485082",
    "n04493381",
    "n04517823",
    "n04589890",
    "n04592741",
    "n07714571",
    "n07715103",
    "n07753275",
    "n07831146",
    "n07836838",
    "n13037406",
    "n13040303",
)

IMAGENET100_INFO = DatasetInfo(
    name="imagenet100",
    num_classes=len(CMC_WNIDS),
    image_size=SIDE,
    splits=("train", "test"),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    description="ImageNet-100 (CMC subset of ImageNet-1k, Tian et al. 2020): ~126,689 train / 5,000 test (the "
    "official val set) full-size JPEGs of 100 classes, cropped to 224x224; decoded from disk on demand.",
    layout=f"{SUBSET_FOLDER}/{{train,val}}/<wnid>/*.JPEG (the 100 CMC classes), or the full ImageNet-1k as "
    f"{FULL_FOLDER}/{{train,val}}/<wnid>/*.JPEG (ImageFolder layout, val sorted into wnid folders); no download",
    has_download=False,
    options=("image_size", "workers"),
)


def _is_tree(folder: Path) -> bool:
    return all((folder / split).is_dir() for split in _SPLIT_FOLDERS.values())


def _not_found(root: Path) -> DatasetError:
    return DatasetError(
        f"{LABEL} was not found under {root}. Looked for the CMC 100-class subset as "
        f"{root / SUBSET_FOLDER}/train/<wnid>/*.JPEG "
        f"and {root / SUBSET_FOLDER}/val/<wnid>/*.JPEG, or for the full ImageNet-1k as "
        f"{root / FULL_FOLDER}/{{train,val}}/<wnid>/*.JPEG (ImageFolder layout), from which the 100 classes of "
        "HobbitLong/CMC imagenet100.txt are selected. ImageNet cannot be downloaded automatically (there is no "
        "--download for it): get ILSVRC-2012 from https://image-net.org under its terms of access, extract train/ "
        "and val/ with one folder per wnid (the val images sorted into their wnid folders, e.g. by the valprep.sh "
        f"of the PyTorch ImageNet example), and put or link the tree there. {ROOT_HINT}"
    )


def locate_tree(root: Path) -> Path:
    """The folder holding ``train/`` and ``val/``: ``root/imagenet100``, else ``root/imagenet``, else ``root``."""
    for candidate in (root / SUBSET_FOLDER, root / FULL_FOLDER, root):
        if _is_tree(candidate):
            return candidate
    raise _not_found(root)


def _class_folders(split_dir: Path) -> list[Path]:
    """The 100 CMC class folders of ``split_dir``, in class order; a missing one is an error naming it."""
    present = {entry.name for entry in os.scandir(split_dir) if entry.is_dir()}
    missing = [wnid for wnid in CMC_WNIDS if wnid not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DatasetError(
            f"{LABEL} is missing class folders in {split_dir}. It lacks {len(missing)} of the 100 CMC class folders "
            f"({shown}); it must hold the CMC subset (HobbitLong/CMC imagenet100.txt; other 100-class subsets of "
            "ImageNet differ) or all 1,000 ImageNet-1k classes, one folder per wnid."
        )
    return [split_dir / wnid for wnid in CMC_WNIDS]


def list_files(split_dir: Path) -> tuple[list[Path], list[int]]:
    """Every image of the 100 classes under ``split_dir``, class by class in sorted-wnid order, files sorted."""
    files: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(_class_folders(split_dir)):
        names = sorted(entry.name for entry in os.scandir(folder) if is_image_file(entry.name))
        if not names:
            raise malformed(LABEL, folder, "the class folder holds no .JPEG/.jpg/.png image", downloadable=False)
        files += [folder / name for name in names]
        labels += [label] * len(names)
    return files, labels


@register_dataset(IMAGENET100_INFO)
def build_imagenet100(
    root: Path, split: str, download: bool, image_size: int = SIDE, workers: int | None = None
) -> FileImageDataset:
    """``image_size``: the crop side S (224); ``workers``: decoding threads of the lazy ``images`` view."""
    if image_size < 1:
        raise DatasetError(f"{LABEL}: image_size must be a positive number of pixels, got {image_size}.")
    tree = locate_tree(root)
    files, labels = list_files(tree / _SPLIT_FOLDERS[split])
    transform = random_resized_crop(image_size) if split == "train" else resize_center_crop(image_size)
    dataset = FileImageDataset(
        files,
        torch.tensor(labels, dtype=torch.int64),
        len(CMC_WNIDS),
        IMAGENET_MEAN,
        IMAGENET_STD,
        IMAGENET100_INFO.name,
        split,
        transform,
        image_size,
        class_names=list(CMC_WNIDS),
        label=LABEL,
        downloadable=False,
    )
    if workers is not None:
        dataset.workers = max(1, int(workers))
    return dataset
