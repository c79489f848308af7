"""Host-to-device copies that do not make the host wait, and cached device constants.

``cpu_tensor.to("cuda")`` copies from pageable memory, which CUDA can only do synchronously: the host stops until
the device has drained its queue, so every such copy inside a training step is a host-device synchronisation (what
``tools/bench --count-syncs`` counts). A copy from page-locked (pinned) memory with ``non_blocking=True`` is queued
like a kernel instead, and the caching host allocator keeps the pinned buffer alive until the copy has run. The
training steps draw small things on the CPU (mixing plans, sampler indices, seeded augmentation parameters, so that
a run is the same on every device); :func:`to_device` moves them. Building a tensor from Python numbers directly on
the device (``torch.tensor(mean, device=cuda)``) is the same blocking copy; :func:`constant` makes it once per
process and reuses it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch


def to_device(tensor: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``tensor.to(device, dtype)``, asynchronous when a CPU tensor goes to a CUDA device.

    The result must not be read on the host before the device has run the copy (a ``.item()`` or ``.cpu()`` waits
    for it, as it should); the source may be changed right away, as the copy reads a pinned snapshot of it.
    """
    device = torch.device(device)
    if tensor.device.type == "cpu" and device.type == "cuda":
        if dtype is not None:
            tensor = tensor.to(dtype)
        # contiguous: an expanded view (stride 0) cannot be written into a pinned buffer of its own shape
        return tensor.contiguous().pin_memory().to(device, non_blocking=True)
    return tensor.to(device=device, dtype=dtype if dtype is not None else tensor.dtype)


@functools.lru_cache(maxsize=512)
def _cached_constant(values: tuple[float, ...] | float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return to_device(torch.tensor(values, dtype=dtype), device)


def constant(values: Sequence[float] | float, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """A read-only tensor of ``values`` on ``device``, built once per (values, dtype, device) and then reused.

    Callers must not write into it (every use in mixlab is out-of-place arithmetic or ``torch.where``).
    """
    key = float(values) if isinstance(values, int | float) else tuple(float(v) for v in values)
    return _cached_constant(key, dtype, torch.device(device))
