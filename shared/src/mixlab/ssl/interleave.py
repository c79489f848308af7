"""MixMatch's interleaving trick for BatchNorm (RealMix spec §3.6).

The official code runs the labeled batch and the unlabeled batches as separate forwards of B rows, but first swaps
a slice of the labeled batch with a slice of every other batch, so that each forward (and in particular the first,
whose BN running-stat updates are the ones kept) sees a representative mix of labeled and unlabeled rows. The same
call on the logits undoes the swap.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mixlab.errors import ConfigError


def interleave_offsets(batch: int, groups: int) -> list[int]:
    """Chunk boundaries of a batch cut into ``groups`` near-equal chunks, the remainder going to the last chunks
    (official code), e.g. ``interleave_offsets(64, 3) == [0, 21, 42, 64]``."""
    if groups < 1 or batch < 0:
        raise ConfigError(f"Interleaving needs groups >= 1 and batch >= 0, got batch={batch}, groups={groups}.")
    sizes = [batch // groups] * groups
    for extra in range(batch - sum(sizes)):
        sizes[-extra - 1] += 1
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    return offsets


def interleave(xs: Sequence[Tensor], batch: int) -> list[Tensor]:
    """Swap chunk i of ``xs[0]`` with chunk i of ``xs[i]`` (i = 1..G-1), G = len(xs), every tensor ``batch`` rows.

    An involution: ``interleave(interleave(xs, b), b)`` gives back ``xs``, which is how the logits are
    de-interleaved. The first output holds rows of every input.
    """
    groups = len(xs)
    if groups == 0:
        raise ConfigError("interleave needs at least one batch.")
    bad = [tuple(x.shape) for x in xs if x.ndim == 0 or x.shape[0] != batch]
    if bad:
        raise ConfigError(f"Every interleaved batch must have {batch} rows; got shapes {bad}.")
    offsets = interleave_offsets(batch, groups)
    chunks = [[x[offsets[p] : offsets[p + 1]] for p in range(groups)] for x in xs]
    for i in range(1, groups):
        chunks[0][i], chunks[i][i] = chunks[i][i], chunks[0][i]
    return [torch.cat(parts, dim=0) for parts in chunks]
