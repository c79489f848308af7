"""Exponential moving average of a model's weights: the MixMatch/RealMix evaluation model and the Mean Teacher.

The two families differ in what happens to the buffers. The MixMatch/RealMix code averages the trainable
parameters only and lets the EMA model use the live model's BN statistics (``buffers="copy"``); other codes average
the float buffers too (``buffers="average"``). Integer buffers such as ``num_batches_tracked`` are always copied.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mixlab.errors import CheckpointError, ConfigError

BufferMode = Literal["copy", "average"]
BUFFER_MODES: tuple[str, ...] = ("copy", "average", "own")


def _check_decay(decay: float) -> float:
    decay = float(decay)
    if not 0.0 <= decay <= 1.0:
        raise ConfigError(f"An EMA decay must lie in [0, 1] (MixMatch uses 0.999), got {decay}.")
    return decay


def mean_teacher_decay(step: int, max_decay: float) -> float:
    """Mean Teacher's "linear start": ``min(1 - 1/(step + 1), max_decay)``, so step 0 copies the student."""
    return min(1.0 - 1.0 / (step + 1.0), float(max_decay))


class ModelEMA:
    """Exponential moving average of a model's parameters; ``module`` is the averaged copy (evaluation model or
    teacher). It is a deep copy of the model given (pass the unwrapped module, not DDP / torch.compile wrappers),
    on the same device, with ``requires_grad=False`` everywhere and in the same train/eval mode as the model.
    """

    def __init__(self, model: nn.Module, decay: float, buffers: BufferMode = "copy") -> None:
        if buffers not in BUFFER_MODES:
            raise ConfigError(f"EMA buffers must be one of {list(BUFFER_MODES)}, got {buffers!r}.")
        self.decay = _check_decay(decay)
        self.buffers: BufferMode = buffers
        self.module: nn.Module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)
            p.grad = None
        self._params = list(self.module.parameters())
        self._buffers = list(self.module.buffers())

    def _sources(self, model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        params = [p.detach() for p in model.parameters()]
        buffers = list(model.buffers())
        if len(params) != len(self._params) or len(buffers) != len(self._buffers):
            raise ConfigError(
                f"The EMA was updated from a different model. It tracks a model with {len(self._params)} parameters "
                f"and {len(self._buffers)} buffers, but was updated from one with {len(params)} and {len(buffers)}: "
                "pass the same (unwrapped) model."
            )
        return params, buffers

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        """``theta' = d theta' + (1 - d) theta`` for every parameter (d = ``decay`` or ``self.decay``), then the
        buffers: copied (``"copy"``), or float ones averaged the same way and integer ones copied (``"average"``)."""
        d = self.decay if decay is None else _check_decay(decay)
        params, buffers = self._sources(model)
        weight = 1.0 - d
        targets = list(self._params)
        sources = [p.to(device=e.device, dtype=e.dtype) for e, p in zip(self._params, params, strict=True)]
        copied, originals = [], []
        for ema_b, b in zip(self._buffers, buffers, strict=True):
            if self.buffers == "own":
                continue  # the averaged model keeps the statistics of its own passes (Mean Teacher's teacher)
            if self.buffers == "average" and ema_b.is_floating_point():
                targets.append(ema_b)
                sources.append(b.to(device=ema_b.device, dtype=ema_b.dtype))
            else:
                copied.append(ema_b)
                originals.append(b.to(device=ema_b.device, dtype=ema_b.dtype))
        if copied:  # one fused copy instead of a kernel launch per buffer (~85 on a WRN-28-2)
            torch._foreach_copy_(copied, originals)
        if targets:
            # lerp_(src, w) = theta' + w (theta - theta'): one fused kernel per dtype/device group.
            torch._foreach_lerp_(targets, sources, weight)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "decay": self.decay, "buffers": self.buffers}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            module_state = state["module"]
            decay = state["decay"]
            buffers = state.get("buffers", self.buffers)
        except (KeyError, TypeError):
            raise CheckpointError(
                "The EMA state in this checkpoint is malformed (expected keys 'module', 'decay', 'buffers'); "
                "was it written by another version or method?"
            ) from None
        if buffers not in BUFFER_MODES:
            raise CheckpointError(f"The EMA state has an unknown buffer mode {buffers!r}.")
        try:
            self.module.load_state_dict(module_state, strict=True)
        except RuntimeError as error:
            first = str(error).splitlines()[0] if str(error) else ""
            raise CheckpointError(f"The EMA weights in this checkpoint do not fit the model ({first}).") from None
        self.decay = _check_decay(decay)
        self.buffers = buffers
