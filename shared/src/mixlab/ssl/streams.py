"""Infinite, seeded index streams for step-based training: batch `t` is a pure function of (seed, t).

Semi-supervised training cycles a small labeled set and a large unlabeled set at different speeds, step by step,
with no epochs. Each stream walks an endless sequence of seeded permutations of its set (pass k is
``randperm(n)`` seeded by (seed, k)), so a resumed run, or any rank under DDP, finds its batch from the step
number alone: no sampler state to checkpoint, nothing to replay.
"""

from __future__ import annotations

import torch

from mixlab.errors import ConfigError


class InfiniteIndexStream:
    """Batches of ``batch_size`` indices into a set of ``num_items``; rank r takes its slice of the global batch."""

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if num_items < 1:
            raise ConfigError("an index stream needs a non-empty set (the split left it empty)")
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, not {batch_size}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self._cache: dict[int, torch.Tensor] = {}

    def _permutation(self, index: int) -> torch.Tensor:
        perm = self._cache.get(index)
        if perm is None:
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + index) % (2**63))
            perm = torch.randperm(self.num_items, generator=generator)
            if len(self._cache) > 4:
                self._cache.pop(min(self._cache))
            self._cache[index] = perm
        return perm

    def batch(self, step: int) -> torch.Tensor:
        """This rank's indices (int64, CPU) for optimizer step ``step``."""
        global_batch = self.batch_size * self.world_size
        start = step * global_batch + self.rank * self.batch_size
        position = torch.arange(start, start + self.batch_size)
        passes, offsets = position // self.num_items, position % self.num_items
        out = torch.empty(self.batch_size, dtype=torch.long)
        for k in torch.unique(passes).tolist():
            chosen = passes == k
            out[chosen] = self._permutation(k)[offsets[chosen]]
        return out
