"""Loss-weight schedules of the SSL papers, as plain functions of (step, length).

``step`` and ``length`` are in the same unit (steps, images or epochs; floats are allowed so that a fractional
epoch works). ``length <= 0`` means "no ramp": every schedule then returns its final value 1.0 at once, which is how
the configs turn a ramp off.
"""

from __future__ import annotations

import math

from mixlab.errors import ConfigError


def _progress(step: float, length: float) -> float:
    """clip(step / length, 0, 1), with ``length <= 0`` meaning "already done"."""
    if math.isnan(step) or math.isnan(length):
        raise ConfigError(f"A ramp needs numeric step and length, got step={step!r}, length={length!r}.")
    if length <= 0:
        return 1.0
    return min(max(step / length, 0.0), 1.0)


def linear_ramp(step: float, length: float) -> float:
    """MixMatch / RealMix lambda_u warm-up: ``clip(step / length, 0, 1)``."""
    return _progress(step, length)


def sigmoid_ramp(step: float, length: float) -> float:
    """Mean Teacher consistency ramp-up: ``exp(-5 (1 - clip(step / length, 0, 1))^2)``; starts at exp(-5), not 0."""
    phase = 1.0 - _progress(step, length)
    return math.exp(-5.0 * phase * phase)


def cosine_rampdown(step: float, length: float) -> float:
    """Mean Teacher cosine ramp-down: ``0.5 (cos(pi clip(step / length, 0, 1)) + 1)``, from 1 to 0."""
    return 0.5 * (math.cos(math.pi * _progress(step, length)) + 1.0)
