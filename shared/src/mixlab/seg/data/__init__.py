"""Segmentation datasets: the registry, the contract (:class:`SegDataset`) and the loaders.

Importing this package registers every built-in segmentation dataset: digit-scenes (built in), fashion-scenes, voc,
voc-aug, cityscapes, pascal-context.
"""

# isort: off
from mixlab.seg.data.dataset import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, SegDataset, voc_palette
from mixlab.seg.data.registry import available_seg_datasets, build_seg_dataset, register_seg_dataset, seg_dataset_info
from mixlab.seg.data import digit_scenes, voc, cityscapes, context  # noqa: F401  (registration order)

# isort: on

__all__ = [
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SegDataset",
    "available_seg_datasets",
    "build_seg_dataset",
    "register_seg_dataset",
    "seg_dataset_info",
    "voc_palette",
]
