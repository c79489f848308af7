"""Batches straight from the in-memory uint8 tensors: index, (pin), copy to the device. No worker processes.

For 32x32 datasets a batch is a single ``index_select`` of a few hundred KB, far cheaper than a DataLoader that
decodes and collates per sample; augmentation then runs batched on the device (:mod:`mixlab.data.transforms`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch

from mixlab.data.dataset import ImageDataset
from mixlab.data.samplers import SequentialBatchSampler


class TensorBatchLoader:
    """Iterate ``(images uint8 (B, 3, H, W), targets int64 (B,))`` on ``device`` for each batch of the sampler.

    ``pin_memory`` (default: when the device is CUDA) gathers each batch into page-locked host memory so the copy
    is asynchronous (``non_blocking``). ``preload=True`` moves the whole dataset to the device once and indexes it
    there (best when it fits: CIFAR's train split is 150 MB). ``len()`` is the sampler's.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_sampler: Iterable[Sequence[int]],
        device: torch.device | str = "cpu",
        pin_memory: bool | None = None,
        preload: bool = False,
    ):
        self.dataset = dataset
        self.batch_sampler = batch_sampler
        self.device = torch.device(device)
        on_accelerator = self.device.type == "cuda"
        self.pin_memory = on_accelerator and (pin_memory if pin_memory is not None else True)
        self.preload = preload and self.device.type != "cpu"
        if self.preload:
            self._images = dataset.images.to(self.device)
            self._targets = dataset.targets.to(self.device)
        else:
            self._images, self._targets = dataset.images, dataset.targets

    def _gather(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.preload:
            index = index.to(self.device, non_blocking=True)
            return self._images.index_select(0, index), self._targets.index_select(0, index)
        if self.pin_memory:
            images = torch.empty((len(index), *self._images.shape[1:]), dtype=torch.uint8, pin_memory=True)
            targets = torch.empty((len(index),), dtype=torch.int64, pin_memory=True)
            torch.index_select(self._images, 0, index, out=images)
            torch.index_select(self._targets, 0, index, out=targets)
        else:
            images, targets = self._images.index_select(0, index), self._targets.index_select(0, index)
        if self.device.type == "cpu":
            return images, targets
        return images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self.batch_sampler:
            yield self._gather(torch.as_tensor(batch, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]


def eval_loader(
    dataset: ImageDataset,
    batch_size: int,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool | None = None,
    preload: bool = False,
) -> TensorBatchLoader:
    """Every image of ``dataset`` once, in order, ``batch_size`` at a time (rank-strided under DDP)."""
    sampler = SequentialBatchSampler(len(dataset), batch_size, rank=rank, world_size=world_size)
    return TensorBatchLoader(dataset, sampler, device, pin_memory=pin_memory, preload=preload)
