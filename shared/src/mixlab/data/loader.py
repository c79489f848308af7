"""Batches for the training loop: straight from in-memory uint8 tensors, or decoded from files by DataLoader workers.

For 32x32 datasets a batch is a single ``index_select`` of a few hundred KB, far cheaper than a DataLoader that
decodes and collates per sample; augmentation then runs batched on the device (:mod:`mixlab.data.transforms`).
:class:`TensorBatchLoader` does that, with no worker processes. A file-backed dataset (ImageNet-100) cannot be
held in memory: :class:`FileBatchLoader` has DataLoader workers decode and crop each file, and yields the same
``(uint8 images, int64 targets)`` batches on the device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from mixlab.data.dataset import FileImageDataset, ImageDataset
from mixlab.data.samplers import SequentialBatchSampler
from mixlab.errors import DatasetError


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


def _stack(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, targets = zip(*samples, strict=True)
    return torch.stack(images), torch.tensor(targets, dtype=torch.int64)


def _worker_message(error: DatasetError) -> str:
    """The user's message of a DatasetError re-raised by a DataLoader worker (torch prepends the traceback)."""
    last = str(error).strip().splitlines()[-1]
    return last.split(f"{DatasetError.__name__}: ", 1)[-1]


class FileBatchLoader:
    """Iterate ``(images uint8 (n, 3, S, S), targets int64 (n,))`` on ``device``, decoding in ``workers`` processes.

    ``batch_sampler`` yields lists of dataset keys (indices, or ``(index, seed)`` pairs from a
    :class:`~mixlab.data.samplers.SeededBatchSampler`); it runs in the main process, and is iterated afresh at every
    ``iter()``, so ``set_epoch`` before iterating selects the epoch. Workers persist across epochs. The
    DataLoader's own seed comes from a private generator, so iterating never draws from the global RNG the engine
    checkpoints. A file that cannot be decoded stops the run with the dataset's one-paragraph error.
    """

    def __init__(
        self,
        dataset: FileImageDataset,
        batch_sampler: Iterable[Sequence[Any]],
        device: torch.device | str = "cpu",
        workers: int = 0,
        pin_memory: bool | None = None,
    ):
        self.device = torch.device(device)
        pin = self.device.type == "cuda" and (pin_memory if pin_memory is not None else True)
        self.batches = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=workers,
            collate_fn=_stack,
            pin_memory=pin,
            persistent_workers=workers > 0,
            generator=torch.Generator(),
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        try:
            for images, targets in self.batches:
                yield images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)
        except DatasetError as error:
            raise DatasetError(_worker_message(error)) from None

    def __len__(self) -> int:
        return len(self.batches)
