"""MNIST and Fashion-MNIST from the official idx files (``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``).

An idx file is a big-endian header (magic ``0x00000803`` for images, ``0x00000801`` for labels: two zero bytes, the
type 0x08 = unsigned byte and the number of dimensions, then each dimension as a 32-bit integer) followed by the raw
bytes. Each file may be gzipped (as released) or not (as torchvision extracts them); gzip is recognised by its magic
bytes. Only the requested split's two files are needed.

The files are looked for in ``<root>/mnist/`` or ``<root>/fashion-mnist/`` (where ``--download`` puts them), then in
torchvision's layout ``<root>/MNIST/raw/`` or ``<root>/FashionMNIST/raw/``; ``--data-root`` may also name such a
folder itself. Fashion-MNIST is finally looked for where Debian's package ``dataset-fashion-mnist`` installs it
(:data:`DEBIAN_FASHION_MNIST`); Debian has no MNIST package. The 28x28 grey images are zero-padded by 2 pixels on
each side to 32x32 (``pad=False`` keeps 28x28) so the CIFAR backbones apply unchanged, and repeated into 3 channels
(``channels=1`` keeps one, for a model of one's own: mixlab's backbones and RandAugment take RGB).
"""

from __future__ import annotations

import gzip
import math
import numbers
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixlab.data._files import ROOT_HINT, malformed
from mixlab.data.dataset import ImageDataset
from mixlab.data.download import download_dataset, how_to_get
from mixlab.data.registry import DatasetInfo, register_dataset
from mixlab.errors import DatasetError

SIDE = 28
PAD = 2
PADDED = SIDE + 2 * PAD
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"

#: Where Debian's ``dataset-fashion-mnist`` installs the four .gz files (``dpkg -L dataset-fashion-mnist``). They
#: are the official files with the gzip header's file name and time stripped, so their md5s differ from the
#: published ones while the compressed data is identical.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: Folders outside the data root searched last, per dataset (a distribution's package; Debian has none for MNIST).
#: Read at call time, so a test can point them elsewhere.
FALLBACKS: dict[str, tuple[Path, ...]] = {"fashion-mnist": (DEBIAN_FASHION_MNIST,)}

#: The split's (images, labels) files, without the optional ``.gz``.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Normalization on the [0, 1] scale, per channel. Fashion-MNIST: computed from the 60,000 real training images
# (Debian's copy of the official files), zero-padded to 32x32, and as released (28x28: the well-known 0.2860 /
# 0.3530). MNIST: its well-known 28x28 statistics (0.1307, 0.3081), and the padded ones derived from them
# analytically (the official files could not be fetched here): padding adds 240 zero pixels to 784, so with
# f = 784 / 1024 the mean becomes f * m and the second moment f * (s^2 + m^2), hence
# std = sqrt(f * (s^2 + m^2) - (f * m)^2). The same formula reproduces Fashion-MNIST's measured padded values.
FASHION_MNIST_MEAN_28, FASHION_MNIST_STD_28 = 0.2860, 0.3530
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2190, 0.3318
MNIST_MEAN_28, MNIST_STD_28 = 0.1307, 0.3081
MNIST_MEAN, MNIST_STD = 0.1001, 0.2752

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def padded_statistics(mean: float, std: float, side: int = SIDE, padded: int = PADDED) -> tuple[float, float]:
    """Mean and std of images with statistics ``mean``/``std`` once zero-padded from ``side`` to ``padded``."""
    f = side * side / (padded * padded)
    second_moment = f * (std * std + mean * mean)
    return f * mean, math.sqrt(second_moment - (f * mean) ** 2)


@dataclass(frozen=True)
class _Idx:
    name: str  # the registry name and the --download subfolder
    label: str  # the human name used in messages
    folders: tuple[str, ...]  # under the data root, in search order
    install_hint: str  # how else to get it, appended to the missing-data message
    mean: tuple[float, float]  # (padded, 28x28)
    std: tuple[float, float]
    class_names: tuple[str, ...]


MNIST = _Idx(
    name="mnist",
    label="MNIST",
    folders=("mnist", "MNIST/raw"),
    install_hint="",
    mean=(MNIST_MEAN, MNIST_MEAN_28),
    std=(MNIST_STD, MNIST_STD_28),
    class_names=tuple(str(d) for d in range(10)),
)
FASHION_MNIST = _Idx(
    name="fashion-mnist",
    label="Fashion-MNIST",
    folders=("fashion-mnist", "FashionMNIST/raw"),
    install_hint=f"or `apt-get install dataset-fashion-mnist` on Debian/Ubuntu (it puts them in {DEBIAN_FASHION_MNIST}, "
    "which is read too)",
    mean=(FASHION_MNIST_MEAN, FASHION_MNIST_MEAN_28),
    std=(FASHION_MNIST_STD, FASHION_MNIST_STD_28),
    class_names=tuple(FASHION_MNIST_CLASSES),
)


def _layout(spec: _Idx) -> str:
    files = ", ".join(f"{a}, {b}" for a, b in FILES.values())
    where = f"{spec.folders[0]}/ (or torchvision's {spec.folders[1]}/)"
    fallbacks = FALLBACKS.get(spec.name, ())
    extra = f"; also read from {fallbacks[0]} (Debian's dataset-{spec.name})" if fallbacks else ""
    return f"{where} with {files}, each gzipped (.gz, as released) or not; only the split's two files are needed{extra}"


def _info(spec: _Idx, description: str) -> DatasetInfo:
    return DatasetInfo(
        name=spec.name,
        num_classes=10,
        image_size=PADDED,
        splits=("train", "test"),
        mean=(spec.mean[0],) * 3,
        std=(spec.std[0],) * 3,
        description=description,
        layout=_layout(spec),
        has_download=True,
        options=("channels", "pad"),
    )


MNIST_INFO = _info(
    MNIST,
    "MNIST handwritten digits: 60,000 train / 10,000 test grey images of 28x28 zero-padded to 32x32 (the grey "
    "channel repeated into RGB unless channels=1), 10 classes.",
)
FASHION_MNIST_INFO = _info(
    FASHION_MNIST,
    "Fashion-MNIST (Zalando): 60,000 train / 10,000 test grey images of 28x28 clothing articles, zero-padded to "
    "32x32 (the grey channel repeated into RGB unless channels=1), 10 classes.",
)


# --- reading ------------------------------------------------------------------------------------------------------


def _present(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz`` (the plain file first: it needs no decompression)."""
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _read_bytes(path: Path, label: str) -> bytes:
    try:
        data = path.read_bytes()
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise malformed(label, path, f"{type(error).__name__}: {error}") from None
    return data


def read_idx(path: Path, magic: int, label: str) -> np.ndarray:
    """The array of one idx file of unsigned bytes whose header must carry ``magic``; any other file, or one whose
    length disagrees with its header, is a :class:`DatasetError` naming it."""
    data = _read_bytes(path, label)
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise malformed(label, path, f"{len(data)} bytes, shorter than an idx header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise malformed(
            label, path, f"idx magic number 0x{found:08X}, expected 0x{magic:08X} for a file of unsigned-byte {kind}"
        )
    rank = magic & 0xFF
    header = 4 + 4 * rank
    if len(data) < header:
        raise malformed(label, path, f"{len(data)} bytes, shorter than the {header}-byte header of a rank-{rank} file")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    expected = header + math.prod(dims)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise malformed(
            label, path, f"{what}: the header gives dimensions {dims}, i.e. {expected} bytes, but it has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_split(images_path: Path, labels_path: Path, label: str) -> tuple[np.ndarray, np.ndarray]:
    """``uint8 (N, 28, 28)`` images and ``uint8 (N,)`` labels of one split, checked against each other."""
    images = read_idx(images_path, IMAGES_MAGIC, label)
    labels = read_idx(labels_path, LABELS_MAGIC, label)
    if images.shape[1:] != (SIDE, SIDE):
        raise malformed(label, images_path, f"images of {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if labels.shape[0] != images.shape[0]:
        raise malformed(
            label,
            labels_path,
            f"{labels.shape[0]} labels for the {images.shape[0]} images of {images_path}; the two files are not "
            "from the same split of one release",
        )
    if labels.size and int(labels.max()) > 9:
        raise malformed(label, labels_path, f"a label {int(labels.max())}, expected 0..9")
    return images, labels


def to_tensor(images: np.ndarray, channels: int, pad: bool) -> torch.Tensor:
    """``uint8 (N, 28, 28)`` -> ``uint8 (N, channels, S, S)``, S = 32 (zero-padded, centred) or 28."""
    n = images.shape[0]
    side = PADDED if pad else SIDE
    offset = PAD if pad else 0
    out = torch.zeros((n, channels, side, side), dtype=torch.uint8)
    out[:, :, offset : offset + SIDE, offset : offset + SIDE] = torch.from_numpy(images.copy()).unsqueeze(1)
    return out


# --- locating -----------------------------------------------------------------------------------------------------


def _candidates(root: Path, spec: _Idx) -> list[Path]:
    """The folders under the data root, in order; ``root`` itself only when its name says which dataset it is (both
    datasets use the same file names, so loose idx files in the data root are never guessed at)."""
    folders = [root / folder for folder in spec.folders]
    for folder in spec.folders:
        parts = Path(folder).parts
        if root.parts[-len(parts) :] == parts and root not in folders:
            folders.append(root)
    return folders


def _find(folders: list[Path], stems: tuple[str, str]) -> tuple[Path, Path] | None:
    for folder in folders:
        images, labels = _present(folder, stems[0]), _present(folder, stems[1])
        if images is not None and labels is not None:
            return images, labels
    return None


def locate_split(spec: _Idx, root: Path, split: str, download: bool) -> tuple[Path, Path]:
    """The (images, labels) files of ``split``: under the data root, else in the fallbacks, else downloaded into
    ``root/<name>/`` when asked, else the one-paragraph missing-data error."""
    stems = FILES[split]
    fallbacks = list(FALLBACKS.get(spec.name, ()))
    found = _find(_candidates(root, spec), stems) or _find(fallbacks, stems)
    if found is not None:
        return found
    target = root / spec.name
    if download:
        download_dataset(spec.name, root, split)
        found = _find([target], stems)
        if found is None:
            raise DatasetError(
                f"{spec.label} is still incomplete after the download. {' and '.join(stems)} are still missing in "
                f"{target}; the release layout may have changed. Please report this."
            )
        return found
    places = ", ".join(str(folder) for folder in _candidates(root, spec) + fallbacks)
    partial = [folder for folder in _candidates(root, spec) if any(_present(folder, stem) for stem in stems)]
    note = f" ({partial[0]} holds only one of the two)" if partial else ""
    get = how_to_get(spec.name, root, split)  # "Re-run with --download ... or put them there yourself."
    if spec.install_hint:
        get = f"{get.removesuffix('.')}, {spec.install_hint}."
    raise DatasetError(
        f"{spec.label} was not found under {root}. Looked for {stems[0]} and {stems[1]} (each .gz or not) in "
        f"{places}{note}. {get} {ROOT_HINT}"
    )


def _options(label: str, channels: object, pad: object) -> tuple[int, bool]:
    if not isinstance(channels, numbers.Integral) or isinstance(channels, bool) or channels not in (1, 3):
        raise DatasetError(
            f"{label}: channels must be 1 (grey) or 3 (the grey channel repeated, for RGB backbones), got {channels!r}."
        )
    if not isinstance(pad, bool):
        raise DatasetError(f"{label}: pad must be True (zero-pad 28x28 to 32x32) or False, got {pad!r}.")
    return int(channels), pad


def build_idx(spec: _Idx, root: Path, split: str, download: bool, channels: int = 3, pad: bool = True) -> ImageDataset:
    channels, pad = _options(spec.label, channels, pad)
    images_path, labels_path = locate_split(spec, root, split, download)
    images, labels = read_split(images_path, labels_path, spec.label)
    mean = spec.mean[0] if pad else spec.mean[1]
    std = spec.std[0] if pad else spec.std[1]
    return ImageDataset(
        to_tensor(images, channels, pad),
        torch.from_numpy(labels.astype(np.int64)),
        10,
        (mean,) * channels,
        (std,) * channels,
        spec.name,
        split,
        list(spec.class_names),
    )


@register_dataset(MNIST_INFO)
def build_mnist(root: Path, split: str, download: bool, channels: int = 3, pad: bool = True) -> ImageDataset:
    return build_idx(MNIST, root, split, download, channels, pad)


@register_dataset(FASHION_MNIST_INFO)
def build_fashion_mnist(root: Path, split: str, download: bool, channels: int = 3, pad: bool = True) -> ImageDataset:
    return build_idx(FASHION_MNIST, root, split, download, channels, pad)
