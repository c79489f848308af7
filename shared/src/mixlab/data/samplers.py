"""Batch samplers: MixMo's batch repetition (spec mixmo-mixshare §3.8), DeiT's repeated augmentation, an in-order
one for evaluation, and the per-item seeds of file-backed training streams.

:class:`BatchRepetitionSampler` walks a seeded permutation of the dataset and places each index ``b`` times in a
row until a batch holds ``batch_size`` entries: a batch has ``batch_size / b`` distinct images, each ``b`` times
(each copy is augmented independently downstream), and an epoch has ``floor(N·b / batch_size)`` batches
(``drop_last``), so compute grows with b. ``b = 1`` is a plain shuffled batch sampler.

:class:`RepeatAugSampler` is timm's ``RepeatAugSampler`` (DeiT's ``RASampler``) as a batch sampler: the epoch's
permutation with every index repeated ``b`` times in a row is dealt round-robin to the ranks (so under DDP the b
copies of an image land on b different processes), and each rank keeps only its first
``floor(N // 256 · 256 / W)`` entries: the samples per epoch stay about N whatever b is, i.e. about N / b distinct
images per epoch, each seen b times.

Distributed convention: ``batch_size`` is **per process**. With ``world_size = W`` every rank has the same number of
batches and the global batch is ``W·batch_size``; to reproduce a single-process recipe of batch ``B`` on W
processes pass ``batch_size = B // W``. Batch repetition cuts the permutation into W disjoint strided shards of
``floor(N / W)`` indices (rank r takes positions r, r + W, ...); repeated augmentation strides the repeated stream.

Both are deterministic given ``(seed, epoch)``: the permutation is seeded by ``seed + epoch``. Resume:
:meth:`~EpochBatchSampler.state_dict` records the epoch and how many batches of it were handed out; after
:meth:`~EpochBatchSampler.load_state_dict` (or ``set_epoch(epoch, start_batch=k)``) the next iteration skips those
``k`` batches, so the remaining batches equal the tail of the uninterrupted epoch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from mixlab.errors import ConfigError


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}.")


class EpochBatchSampler(ABC):
    """An epoch's index stream cut into batches of ``batch_size``, with the epoch/resume mechanics the training
    samplers share. Subclasses define :meth:`epoch_indices` (this rank's stream) and :attr:`stream_length`."""

    #: saved by :meth:`state_dict` and checked by :meth:`load_state_dict`: a change breaks the batch sequence
    IDENTITY = ("seed", "num_samples", "batch_size", "repetitions", "world_size")

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        repetitions: int,
        seed: int,
        drop_last: bool,
        rank: int,
        world_size: int,
    ):
        if batch_size < 1 or repetitions < 1:
            raise ConfigError(f"batch_size and repetitions must be >= 1, got {batch_size} and {repetitions}.")
        _check_rank(rank, world_size)
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.repetitions = int(repetitions)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        self._start_batch = 0
        self._position = 0  # batches of the current epoch handed out (for state_dict)

    @property
    @abstractmethod
    def stream_length(self) -> int:
        """Entries of this rank's epoch stream (before cutting into batches)."""

    @abstractmethod
    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's index stream of an epoch, before cutting into batches."""

    def _permutation(self, epoch: int | None) -> torch.Tensor:
        """The epoch's permutation of the whole dataset, seeded by ``seed + epoch`` (the same on every rank)."""
        generator = torch.Generator().manual_seed(self.seed + (self.epoch if epoch is None else epoch))
        return torch.randperm(self.num_samples, generator=generator)

    def _require_a_batch(self) -> None:
        if self.num_batches == 0:
            raise ConfigError(
                f"{self.num_samples} images on {self.world_size} process(es) with b={self.repetitions} cannot fill "
                f"one batch of {self.batch_size}; lower the batch size."
            )

    @property
    def num_batches(self) -> int:
        """Batches in a full epoch for this rank: ``floor(stream_length / batch_size)`` (or the ceiling)."""
        entries = self.stream_length
        return entries // self.batch_size if self.drop_last else math.ceil(entries / self.batch_size)

    @property
    def batches_done(self) -> int:
        """Batches of the current epoch handed out so far (counting a resume skip)."""
        return self._position

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the stream of ``epoch``; skip ``start_batch`` batches of it."""
        if not 0 <= start_batch <= self.num_batches:
            raise ConfigError(f"start_batch must be in [0, {self.num_batches}], got {start_batch}.")
        self.epoch = int(epoch)
        self._start_batch = int(start_batch)
        self._position = int(start_batch)

    def __iter__(self) -> Iterator[list[int]]:
        stream = self.epoch_indices()
        start, self._start_batch = self._start_batch, 0  # a skip applies to one iteration only
        for batch in range(start, self.num_batches):
            self._position = batch + 1
            yield stream[batch * self.batch_size : (batch + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        """Batches the next iteration yields (``num_batches`` minus a pending resume skip)."""
        return self.num_batches - self._start_batch

    def state_dict(self) -> dict[str, Any]:
        identity = {key: getattr(self, key) for key in self.IDENTITY}
        return {"kind": type(self).__name__, "epoch": self.epoch, "batches_done": self._position, **identity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        kind = state.get("kind", "BatchRepetitionSampler")  # states saved before "kind" existed
        if kind != type(self).__name__:
            raise ConfigError(
                f"the checkpoint's sampler is a {kind}, this run uses a {type(self).__name__}; "
                "resuming would not continue the same sequence of batches."
            )
        for key in self.IDENTITY:
            if key in state and state[key] != getattr(self, key):
                raise ConfigError(
                    f"the checkpoint's sampler has {key}={state[key]}, this run has {getattr(self, key)}; resuming "
                    "would not continue the same sequence of batches."
                )
        done = int(state["batches_done"])
        epoch = int(state["epoch"])
        if done >= self.num_batches:  # the saved epoch was complete: continue with the next one
            epoch, done = epoch + 1, 0
        self.set_epoch(epoch, done)


class BatchRepetitionSampler(EpochBatchSampler):
    """MixMo's batch repetition: lists of dataset indices, one list per batch (usable as a DataLoader
    ``batch_sampler``), each index ``repetitions`` times in a row; ``floor(N_shard·b / batch_size)`` batches."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        repetitions: int = 1,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ):
        super().__init__(num_samples, batch_size, repetitions, seed, drop_last, rank, world_size)
        if self.batch_size % self.repetitions:
            raise ConfigError(
                f"the batch size {batch_size} is not divisible by the batch repetition b={repetitions}. Each batch "
                f"holds batch_size/b distinct images, each b times; use a multiple of {repetitions}."
            )
        self.shard_size = self.num_samples // self.world_size
        self._require_a_batch()
        self.set_epoch(0, start_batch)

    @property
    def stream_length(self) -> int:
        return self.shard_size * self.repetitions

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        shard = self._permutation(epoch)[self.rank : self.shard_size * self.world_size : self.world_size]
        return shard.repeat_interleave(self.repetitions)


class RepeatAugSampler(EpochBatchSampler):
    """DeiT's repeated augmentation (timm ``RepeatAugSampler``, integer ``repetitions``) as a batch sampler.

    The epoch's permutation, each index ``repetitions`` times in a row, padded by wrapping to
    ``W·ceil(N·b / W)`` entries and dealt round-robin (rank r takes entries r, r + W, ...); each rank keeps its first
    ``floor(N // selected_round · selected_round / W)`` entries (``ceil(N / W)`` when ``N < selected_round`` or
    ``selected_round = 0``), timm's rounding. The batch size needs no relation to ``repetitions``.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        repetitions: int = 3,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        selected_round: int = 256,
    ):
        super().__init__(num_samples, batch_size, repetitions, seed, drop_last, rank, world_size)
        self.selected_round = int(selected_round)
        self._require_a_batch()
        self.set_epoch(0, start_batch)

    @property
    def padded_per_rank(self) -> int:
        """timm's ``num_samples``: each rank's share of the repeated stream, padded to a whole number."""
        return math.ceil(self.num_samples * self.repetitions / self.world_size)

    @property
    def stream_length(self) -> int:
        """timm's ``num_selected_samples``: about N / W entries per rank, whatever the repetitions."""
        n, rounding = self.num_samples, self.selected_round
        if rounding and n >= rounding:
            selected = n // rounding * rounding // self.world_size
        else:
            selected = math.ceil(n / self.world_size)
        return min(selected, self.padded_per_rank)

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        repeated = self._permutation(epoch).repeat_interleave(self.repetitions)
        positions = torch.arange(self.rank, self.padded_per_rank * self.world_size, self.world_size)
        return repeated[positions[: self.stream_length] % len(repeated)]


def batch_seed(seed: int, *key: int) -> int:
    """A 64-bit seed that is a pure function of ``(seed, *key)`` (numpy's SeedSequence mixing)."""
    entropy = [value % 2**64 for value in (seed, *key)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])


class SeededBatchSampler:
    """Turn each batch of an :class:`EpochBatchSampler` into ``[(index, item_seed), ...]`` for a file-backed dataset.

    A batch's generator is seeded by ``(seed, rank, epoch, batch number)``; ``arrange(index, generator)`` may first
    reorder or expand the batch's indices (a multi-input method pairs them there), then every entry draws its own
    augmentation seed. The stream is therefore a function of those numbers alone: the same on a resumed run, and
    whatever the number of DataLoader workers or how far ahead they prefetch.
    """

    def __init__(
        self,
        sampler: EpochBatchSampler,
        seed: int,
        arrange: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    ):
        self.sampler = sampler
        self.seed = int(seed)
        self.arrange = arrange

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.sampler:
            number = self.sampler.batches_done - 1
            generator = torch.Generator().manual_seed(
                batch_seed(self.seed, self.sampler.rank, self.sampler.epoch, number)
            )
            index = torch.as_tensor(batch, dtype=torch.long)
            if self.arrange is not None:
                index = self.arrange(index, generator)
            seeds = torch.randint(0, 2**62, (len(index),), generator=generator)
            yield list(zip(index.tolist(), seeds.tolist(), strict=True))

    def __len__(self) -> int:
        return len(self.sampler)


class SequentialBatchSampler:
    """Indices in order, ``batch_size`` at a time, the last batch possibly smaller (evaluation).

    With ``world_size > 1`` rank r takes indices r, r + W, ... so every sample is evaluated exactly once overall.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        _check_rank(rank, world_size)
        self.indices = torch.arange(rank, int(num_samples), world_size)
        self.batch_size = int(batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.indices), self.batch_size):
            yield self.indices[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)
