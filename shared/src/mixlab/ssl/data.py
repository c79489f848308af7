"""The data of a semi-supervised run: the seeded split, the labeled / unlabeled / evaluation sets, and the inputs.

The split comes from :func:`mixlab.data.ssl_split` (class-balanced, seeded, the RealMix class-mismatch protocol as
an option) and is saved as ``split.json`` in the run directory. STL-10 adds its own 100k-image ``unlabeled`` split
and SVHN its ``extra`` split (``use_extra``) to the unlabeled set. Under the mismatch protocol the evaluation set
is the test images of the labeled classes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mixlab.data import ImageDataset, build_dataset, ssl_split
from mixlab.data import transforms as T
from mixlab.data.dataset import require_rgb
from mixlab.data.splits import SplitIndices
from mixlab.errors import ConfigError
from mixlab.ssl.config import SSLConfig


@dataclass
class SSLData:
    labeled: ImageDataset
    unlabeled_images: torch.Tensor  # uint8 (N_u, 3, H, W); their labels are never read
    unlabeled_targets: torch.Tensor  # kept only to audit the split (and to report the OOD share)
    evaluation: ImageDataset
    split: SplitIndices
    num_classes: int
    eval_classes: tuple[int, ...] | None  # the classes the evaluation covers, when not all

    def split_dict(self) -> dict[str, Any]:
        data = self.split.to_json()
        data["num_unlabeled_total"] = int(self.unlabeled_images.shape[0])
        data["eval_classes"] = list(self.eval_classes) if self.eval_classes is not None else None
        data["num_eval"] = len(self.evaluation)
        return data


def build_ssl_data(config: SSLConfig, data_root: Path | None = None, download: bool = False) -> SSLData:
    cfg = config
    options = {"image_size": cfg.image_size} if cfg.image_size is not None else {}
    train = build_dataset(cfg.dataset, "train", data_root, download=download, **options)
    require_rgb(train, "the semi-supervised pipeline (RandAugment, the backbones)")
    test = build_dataset(cfg.dataset, "test", data_root, download=download, **options)
    if cfg.use_extra and cfg.dataset != "svhn":
        raise ConfigError(f"use_extra appends SVHN's extra split; the dataset is {cfg.dataset!r}")
    pools = (("unlabeled",) if cfg.dataset == "stl10" else ()) + (("extra",) if cfg.use_extra else ())
    # With an unlabeled split appended, every training image may be labeled (STL-10's 5,000-label protocol):
    # ssl_split's "no unlabeled image left in class c" check is lifted by drawing as if the labeled images were
    # also unlabeled and removing them afterwards, which gives exactly the split drawn without the option.
    split = ssl_split(
        train.targets,
        cfg.num_labeled,
        train.num_classes,
        cfg.split_seed,
        num_validation=cfg.num_validation,
        labeled_classes=cfg.labeled_classes,
        unlabeled_classes=cfg.unlabeled_classes,
        mismatch=None if cfg.mismatch is None else cfg.mismatch / 100.0,
        balance=cfg.balance,  # type: ignore[arg-type]
        unlabeled_includes_labeled=cfg.unlabeled_includes_labeled or bool(pools),
    )
    if pools and not cfg.unlabeled_includes_labeled:
        only_unlabeled = split.unlabeled[~torch.isin(split.unlabeled, split.labeled)]
        split = SplitIndices(
            split.labeled, only_unlabeled, split.validation, {**split.params, "unlabeled_includes_labeled": False}
        )
    unlabeled = [train.images[split.unlabeled]]
    unlabeled_targets = [train.targets[split.unlabeled]]
    for extra_split in pools:
        extra = build_dataset(cfg.dataset, extra_split, data_root, download=download)
        unlabeled.append(extra.images)
        unlabeled_targets.append(torch.full((len(extra),), -1, dtype=torch.long))
    images = unlabeled[0] if len(unlabeled) == 1 else torch.cat(unlabeled)
    if images.shape[0] == 0:
        raise ConfigError("the split leaves no unlabeled image; lower num_labeled or change the class sets")
    eval_classes = None
    evaluation = test
    if cfg.labeled_classes is not None and len(cfg.labeled_classes) < train.num_classes:
        eval_classes = tuple(sorted(cfg.labeled_classes))
        keep = torch.isin(test.targets, torch.tensor(eval_classes))
        evaluation = test.subset(keep.nonzero().flatten())
    return SSLData(
        labeled=train.subset(split.labeled),
        unlabeled_images=images,
        unlabeled_targets=torch.cat(unlabeled_targets),
        evaluation=evaluation,
        split=split,
        num_classes=train.num_classes,
        eval_classes=eval_classes,
    )


class InputPipeline:
    """uint8 batches on the device -> the network's float inputs: weak and strong augmentations, then scaling."""

    def __init__(self, config: SSLConfig, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
        self.config = config
        if config.input_scale == "normalize":
            self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
            self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        else:  # x * 2/255 - 1, the MixMatch code's [-1, 1] inputs
            self.mean = torch.full((1, 3, 1, 1), 0.5, device=device)
            self.std = torch.full((1, 3, 1, 1), 0.5, device=device)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255 - self.mean) / self.std

    def weak_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """Flip (if the dataset allows it), then reflect-padded random translation: the MixMatch `Augment`."""
        if self.config.hflip:
            x = T.random_hflip(x)
        if self.config.crop_padding > 0:
            x = T.random_crop(x, self.config.crop_padding, padding_mode="reflect")
        return x

    def weak(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(self.weak_uint8(x))

    def strong(self, x: torch.Tensor) -> torch.Tensor:
        """FixMatch's strong view: weak, RandAugment (random magnitude), Cutout (filled with the mean).

        RandAugment is the batched one (:func:`mixlab.data.randaugment.batched_randaugment`): the per-image
        torchvision loop dominated the step with mu=7.
        """
        cfg = self.config
        x = self.weak_uint8(x)
        if cfg.randaugment_ops > 0:
            x = T.batched_randaugment(
                x, num_ops=cfg.randaugment_ops, magnitude=cfg.randaugment_magnitude, random_magnitude=True
            )
        x = self.scale(x)
        if cfg.strong_cutout > 0:
            x = T.cutout(x, cfg.strong_cutout, fill=0.0)
        return x
