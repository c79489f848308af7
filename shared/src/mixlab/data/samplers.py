"""Batch samplers: MixMo's batch repetition (spec mixmo-mixshare §3.8) and an in-order one for evaluation.

:class:`BatchRepetitionSampler` walks a seeded permutation of the dataset and places each index ``b`` times in a
row until a batch holds ``batch_size`` entries: a batch has ``batch_size / b`` distinct images, each ``b`` times
(each copy is augmented independently downstream), and an epoch has ``floor(N·b / batch_size)`` batches
(``drop_last``). ``b = 1`` is a plain shuffled batch sampler.

Distributed convention: ``batch_size`` is **per process**. With ``world_size = W`` the epoch's permutation is cut
into W disjoint strided shards of ``floor(N / W)`` indices (rank r takes positions r, r + W, ...), so every rank has
the same number of batches and the global batch is ``W·batch_size``; to reproduce a single-process recipe of batch
``B`` on W processes pass ``batch_size = B // W``.

Resume: :meth:`state_dict` records the epoch and how many batches of it were handed out; after
:meth:`load_state_dict` (or ``set_epoch(epoch, start_batch=k)``) the next iteration skips those ``k`` batches, so
the remaining batches equal the tail of the uninterrupted epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from mixlab.errors import ConfigError


class BatchRepetitionSampler:
    """Yields lists of dataset indices, one list per batch (usable as a DataLoader ``batch_sampler``)."""

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
        if batch_size < 1 or repetitions < 1:
            raise ConfigError(f"batch_size and repetitions must be >= 1, got {batch_size} and {repetitions}.")
        if batch_size % repetitions:
            raise ConfigError(
                f"the batch size {batch_size} is not divisible by the batch repetition b={repetitions}: each batch "
                f"holds batch_size/b distinct images, each b times; use a multiple of {repetitions}."
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}.")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.repetitions = int(repetitions)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        self.shard_size = self.num_samples // self.world_size
        if self.num_batches == 0:
            raise ConfigError(
                f"{self.num_samples} images on {self.world_size} process(es) with b={self.repetitions} cannot fill "
                f"one batch of {self.batch_size}; lower the batch size."
            )
        self._start_batch = 0
        self._position = 0  # batches of the current epoch handed out (for state_dict)
        self.set_epoch(0, start_batch)

    @property
    def num_batches(self) -> int:
        """Batches in a full epoch for this rank: ``floor(N_shard·b / batch_size)`` (or the ceiling)."""
        entries = self.shard_size * self.repetitions
        return entries // self.batch_size if self.drop_last else math.ceil(entries / self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the permutation of ``epoch`` (seeded by ``seed + epoch``); skip ``start_batch`` batches of it."""
        if not 0 <= start_batch <= self.num_batches:
            raise ConfigError(f"start_batch must be in [0, {self.num_batches}], got {start_batch}.")
        self.epoch = int(epoch)
        self._start_batch = int(start_batch)
        self._position = int(start_batch)

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's index stream of an epoch with the repetitions, before cutting into batches."""
        generator = torch.Generator().manual_seed(self.seed + (self.epoch if epoch is None else epoch))
        permutation = torch.randperm(self.num_samples, generator=generator)
        shard = permutation[self.rank: self.shard_size * self.world_size: self.world_size]
        return shard.repeat_interleave(self.repetitions)

    def __iter__(self) -> Iterator[list[int]]:
        stream = self.epoch_indices()
        start, self._start_batch = self._start_batch, 0  # a skip applies to one iteration only
        for batch in range(start, self.num_batches):
            self._position = batch + 1
            yield stream[batch * self.batch_size: (batch + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        """Batches the next iteration yields (``num_batches`` minus a pending resume skip)."""
        return self.num_batches - self._start_batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches_done": self._position, "seed": self.seed,
                "num_samples": self.num_samples, "batch_size": self.batch_size, "repetitions": self.repetitions,
                "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "num_samples", "batch_size", "repetitions", "world_size"):
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


class SequentialBatchSampler:
    """Indices in order, ``batch_size`` at a time, the last batch possibly smaller (evaluation).

    With ``world_size > 1`` rank r takes indices r, r + W, ... so every sample is evaluated exactly once overall.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}.")
        self.indices = torch.arange(rank, int(num_samples), world_size)
        self.batch_size = int(batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.indices), self.batch_size):
            yield self.indices[start: start + self.batch_size].tolist()

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)
