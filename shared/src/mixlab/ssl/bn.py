"""Forwards that use BatchNorm batch statistics without touching the running statistics.

MixMatch-style label guessing runs the live model in train mode (so BN normalises with the statistics of the
guessing batch), yet the official code never runs the update ops of those forwards: the running mean/var and the
batch counter must stay exactly as they were. Setting ``momentum = 0`` would still bump ``num_batches_tracked`` and
round the running stats through ``(1 - 0) * r + 0 * s``; turning ``track_running_stats`` off for the duration makes
``F.batch_norm`` receive no running buffers at all in train mode, so they are left bit-identical. In eval mode a BN
layer with ``track_running_stats=False`` still normalises with its running buffers, so eval forwards are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextmanager
def bn_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Within the block, every BatchNorm of ``module`` (``_BatchNorm``, SyncBatchNorm included) keeps normalising
    with batch statistics in train mode but leaves ``running_mean``, ``running_var`` and ``num_batches_tracked``
    untouched. The flags are restored on exit, also when the block raises; nesting is safe.

    Flipping a Python attribute is a graph break / recompile guard under ``torch.compile``, never a silent no-op.
    """
    frozen: list[_BatchNorm] = []
    for m in module.modules():
        if isinstance(m, _BatchNorm) and m.track_running_stats:
            frozen.append(m)
    try:
        for m in frozen:
            m.track_running_stats = False
        yield
    finally:
        for m in frozen:
            m.track_running_stats = True
