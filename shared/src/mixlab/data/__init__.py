"""mixlab.data: dataset registry and loaders, the built-in ``digits``, SSL splits, batched augmentations, samplers.

Importing this package registers every built-in dataset (digits, cifar10, cifar100, svhn, stl10, tinyimagenet,
cifar100c, imagenet100, mnist, fashion-mnist, mnistm, cub200). Small datasets are in-memory uint8 tensors
(:class:`ImageDataset`); batches come from :class:`TensorBatchLoader` and are augmented batched on the device.
ImageNet-100 is a :class:`FileImageDataset` decoded on demand; its batches come from :class:`FileBatchLoader`
(DataLoader workers).
"""

# isort: off
from mixlab.data.registry import (  # registry first: the loaders below register into it
    DatasetInfo,
    available_datasets,
    build_dataset,
    dataset_info,
    register_dataset,
    resolve_data_root,
)
from mixlab.data import digits, cifar, svhn, stl10, tinyimagenet, cifar_c, imagenet100, mnist, mnistm, cub200  # noqa: F401  (order)

# isort: on
from mixlab.data.augmix_ops import THESIS_OPS as AUGMIX_THESIS_OPS
from mixlab.data.augmix_ops import augmix
from mixlab.data.cifar_c import ALL_CORRUPTIONS, EXTRA_CORRUPTIONS, STANDARD_CORRUPTIONS, iter_cifar100c
from mixlab.data.dataset import FileImageDataset, ImageDataset
from mixlab.data.download import download_dataset
from mixlab.data.loader import FileBatchLoader, TensorBatchLoader, eval_loader
from mixlab.data.randaugment import batched_randaugment
from mixlab.data.samplers import (
    BatchRepetitionSampler,
    EpochBatchSampler,
    RepeatAugSampler,
    SeededBatchSampler,
    SequentialBatchSampler,
)
from mixlab.data.splits import SplitIndices, mismatch_unlabeled_classes, ssl_split
from mixlab.data.transforms import (
    BatchTransform,
    autoaugment,
    build_batch_transform,
    cutout,
    cutout_mask,
    normalize,
    randaugment,
    random_crop,
    random_hflip,
    random_resized_crop,
    resize_center_crop,
)

__all__ = [
    "ALL_CORRUPTIONS",
    "AUGMIX_THESIS_OPS",
    "EXTRA_CORRUPTIONS",
    "STANDARD_CORRUPTIONS",
    "BatchRepetitionSampler",
    "BatchTransform",
    "DatasetInfo",
    "EpochBatchSampler",
    "FileBatchLoader",
    "FileImageDataset",
    "ImageDataset",
    "RepeatAugSampler",
    "SeededBatchSampler",
    "SequentialBatchSampler",
    "SplitIndices",
    "TensorBatchLoader",
    "augmix",
    "autoaugment",
    "available_datasets",
    "batched_randaugment",
    "build_batch_transform",
    "build_dataset",
    "cutout",
    "cutout_mask",
    "dataset_info",
    "download_dataset",
    "eval_loader",
    "iter_cifar100c",
    "mismatch_unlabeled_classes",
    "normalize",
    "randaugment",
    "random_crop",
    "random_hflip",
    "random_resized_crop",
    "register_dataset",
    "resize_center_crop",
    "resolve_data_root",
    "ssl_split",
]
