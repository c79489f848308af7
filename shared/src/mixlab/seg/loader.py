"""Step-indexed batches of segmentation training, and the evaluation batches.

Semi-supervised training has no epochs: batch ``t`` of a :class:`SegStream` is a pure function of (seed, t) (and the
rank), so a resumed run or any DDP rank finds its batch from the step number alone, with no sampler state. The
indices come from :class:`mixlab.ssl.streams.InfiniteIndexStream` (an endless walk through seeded permutations; rank
``r`` takes its slice of the global batch), the views from :mod:`mixlab.seg.transforms`:

- in-memory datasets (``digit-scenes``): one ``index_select`` of the uint8 tensors (moved to the device once when
  it is CUDA) and :func:`~mixlab.seg.transforms.augment_batch` on the device, its generator seeded from (seed, step,
  rank) on that device;
- file datasets (VOC, Cityscapes): each image decoded and augmented on the CPU by
  :func:`~mixlab.seg.transforms.augment_sample` with a generator seeded from (seed, step, position in the global
  batch), stacked and moved with ``non_blocking``. :meth:`SegStream.iterate` has ``workers`` DataLoader processes
  prepare whole steps ahead (pinned on CUDA); the batches are the same as :meth:`SegStream.batch`'s.

The augmentation draws never touch torch's global RNG, so they need not be checkpointed either.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mixlab.data.loader import _worker_message
from mixlab.errors import ConfigError, DatasetError
from mixlab.seg.data.dataset import SegDataset
from mixlab.seg.transforms import SegAugment, augment_batch, augment_sample, normalize_images
from mixlab.ssl.streams import InfiniteIndexStream

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def stream_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence), so that nearby (step, rank) give unrelated streams."""
    state = np.random.SeedSequence([int(part) % 2**64 for part in parts]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 ^ int(state[1])) % 2**63


class SegStream:
    """This rank's augmented batches ``(images float32 (B, 3, c, c), masks int64 (B, c, c), valid bool (B, c, c))``
    on ``device`` for each optimizer step (see the module docstring)."""

    def __init__(
        self,
        dataset: SegDataset,
        batch_size: int,
        aug: SegAugment,
        seed: int,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
    ):
        if workers < 0:
            raise ConfigError(f"workers must be >= 0, not {workers}")
        self.dataset, self.aug, self.seed = dataset, aug, seed
        self.batch_size, self.rank, self.world_size, self.workers = batch_size, rank, world_size, workers
        self.device = torch.device(device)
        self.indices = InfiniteIndexStream(len(dataset), batch_size, seed, rank, world_size)
        self._cuda = self.device.type == "cuda"
        if dataset.tensors is not None:
            images, masks = dataset.tensors
            self._images = images.to(self.device) if self._cuda else images
            self._masks = masks.to(self.device) if self._cuda else masks
            self._generator_device = self.device if self._cuda else torch.device("cpu")

    def _memory_batch(self, step: int, index: torch.Tensor) -> Batch:
        index = index.to(self._images.device, non_blocking=True)
        images = self._images.index_select(0, index).to(self.device, non_blocking=True)
        masks = self._masks.index_select(0, index).to(self.device, non_blocking=True)
        generator = torch.Generator(device=self._generator_device)
        generator.manual_seed(stream_seed(self.seed, step, self.rank))
        return augment_batch(images, masks, self.aug, generator)

    def cpu_batch(self, step: int) -> Batch:
        """A file dataset's batch of ``step`` on the CPU (what a DataLoader worker prepares)."""
        index = self.indices.batch(step).tolist()
        first = self.rank * self.batch_size  # this rank's first position in the global batch
        views = []
        for position, item in enumerate(index):
            image, mask = self.dataset[item]
            generator = torch.Generator().manual_seed(stream_seed(self.seed, step, first + position))
            views.append(augment_sample(image, mask, self.aug, generator))
        images, masks, valid = zip(*views)
        return torch.stack(images), torch.stack(masks), torch.stack(valid)

    def _to_device(self, batch: Batch, pin: bool) -> Batch:
        if self.device.type == "cpu":
            return batch
        if pin:
            batch = tuple(tensor.pin_memory() for tensor in batch)  # type: ignore[assignment]
        return tuple(tensor.to(self.device, non_blocking=True) for tensor in batch)  # type: ignore[return-value]

    def batch(self, step: int) -> Batch:
        """This rank's batch of optimizer step ``step`` on the device."""
        if self.dataset.in_memory:
            return self._memory_batch(step, self.indices.batch(step))
        return self._to_device(self.cpu_batch(step), pin=self._cuda)

    def iterate(self, start_step: int, stop_step: int) -> Iterator[Batch]:
        """The batches of steps ``start_step .. stop_step - 1`` in order, equal to :meth:`batch`'s; a file dataset's
        are prepared ahead by ``workers`` DataLoader processes (none: in this process)."""
        if self.dataset.in_memory or self.workers == 0:
            for step in range(start_step, stop_step):
                yield self.batch(step)
            return
        loader = torch.utils.data.DataLoader(
            _Steps(self, start_step, stop_step),
            batch_size=None,
            num_workers=self.workers,
            pin_memory=self._cuda,
            generator=torch.Generator(),  # the DataLoader's base seed must not draw from the global RNG
        )
        try:
            for batch in loader:
                yield self._to_device(batch, pin=False)
        except DatasetError as error:
            raise DatasetError(_worker_message(error)) from None


class _Steps(torch.utils.data.Dataset):
    """Item ``k``: the CPU batch of step ``start + k`` (whole steps go to the DataLoader's workers)."""

    def __init__(self, stream: SegStream, start: int, stop: int):
        self.stream, self.start, self.stop = stream, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, k: int) -> Batch:
        return self.stream.cpu_batch(self.start + k)


def eval_batches(
    dataset: SegDataset, batch_size: int, device: torch.device | str = "cpu"
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every sample once, in dataset order: ``(images float32 (B, 3, H, W) normalised with the dataset's mean/std,
    masks int64 (B, H, W))`` on ``device``; ``batch_size`` at a time for in-memory data, one at a time (B = 1) for
    file datasets, whose images differ in size."""
    if batch_size < 1:
        raise ConfigError(f"the evaluation batch size must be >= 1, not {batch_size}")
    device = torch.device(device)
    if dataset.tensors is not None:
        images, masks = dataset.tensors
        for start in range(0, len(dataset), batch_size):
            x = images[start : start + batch_size].to(device, non_blocking=True)
            y = masks[start : start + batch_size].to(device, non_blocking=True)
            yield normalize_images(x, dataset.mean, dataset.std), y.long()
        return
    for index in range(len(dataset)):
        image, mask = dataset[index]
        x = image.unsqueeze(0).to(device, non_blocking=True)
        yield normalize_images(x, dataset.mean, dataset.std), mask.unsqueeze(0).to(device).long()
