"""SVHN (cropped digits) from the official MATLAB files ``{train,test,extra}_32x32.mat``.

Each file holds ``X`` as ``uint8 (32, 32, 3, N)`` and ``y`` as ``(N, 1)`` with the digit 0 stored as label 10; the
loader maps 10 -> 0. The files are looked for in ``<root>/svhn/`` (where ``--download`` puts them) or directly in
the data root (torchvision's layout). Normalization: the commonly used SVHN-train statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mixlab.data._files import locate, malformed
from mixlab.data.dataset import ImageDataset
from mixlab.data.registry import DatasetInfo, register_dataset

SVHN_MEAN = (0.4377, 0.4438, 0.4728)
SVHN_STD = (0.1980, 0.2010, 0.1970)
FOLDER = "svhn"
LABEL = "SVHN"

SVHN_INFO = DatasetInfo(
    name="svhn",
    num_classes=10,
    image_size=32,
    splits=("train", "test", "extra"),
    mean=SVHN_MEAN,
    std=SVHN_STD,
    description="SVHN cropped digits: 73,257 train / 26,032 test / 531,131 extra colour images of 32x32, 10 classes.",
    layout=f"{FOLDER}/train_32x32.mat, {FOLDER}/test_32x32.mat, {FOLDER}/extra_32x32.mat (the official MATLAB "
    "files; only the requested split's file is needed)",
    has_download=True,
)


def read_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one SVHN ``.mat`` file into ``uint8 (N, 3, 32, 32)`` images and ``int64`` targets in 0..9."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        content = scipy.io.loadmat(path, variable_names=("X", "y"))
    except (MatReadError, ValueError, OSError, NotImplementedError, TypeError) as error:
        raise malformed(LABEL, path, f"{type(error).__name__}: {error}") from None
    if "X" not in content or "y" not in content:
        raise malformed(
            LABEL, path, f"expected variables 'X' and 'y', found {sorted(k for k in content if k[0] != '_')}"
        )
    x, y = np.asarray(content["X"]), np.asarray(content["y"]).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise malformed(LABEL, path, f"X has dtype {x.dtype} and shape {x.shape}, expected uint8 (32, 32, 3, N)")
    if y.shape[0] != x.shape[3]:
        raise malformed(LABEL, path, f"{x.shape[3]} images but {y.shape[0]} labels")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 10):
        raise malformed(LABEL, path, f"labels range over [{labels.min()}, {labels.max()}], expected 1..10")
    labels[labels == 10] = 0
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return images, torch.from_numpy(labels)


@register_dataset(SVHN_INFO)
def build_svhn(root: Path, split: str, download: bool) -> ImageDataset:
    filename = f"{split}_32x32.mat"
    folder = locate(
        "svhn", LABEL, root, FOLDER, (filename,), download=download, split=split, download_into_existing=True
    )
    images, targets = read_mat(folder / filename)
    return ImageDataset(images, targets, 10, SVHN_MEAN, SVHN_STD, "svhn", split, [str(d) for d in range(10)])
