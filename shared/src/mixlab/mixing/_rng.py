"""Random draws that honour an optional ``torch.Generator`` on any device.

A generator lives on one device and can only fill tensors there, while the tensors being mixed may live
elsewhere. Every draw is therefore made on the generator's device (or on the target device with the global
RNG when no generator is given) and then moved to the target device. Masks are small, so the copy is cheap.
"""

from __future__ import annotations

import torch

DeviceLike = torch.device | str | None


def draw_device(device: DeviceLike, generator: torch.Generator | None) -> torch.device:
    """Device on which a draw must be made so that ``generator`` (or the global RNG) can fill it."""
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def wide_dtype(device: DeviceLike) -> torch.dtype:
    """float64 for exact integer-ish box arithmetic, except on MPS, which has no float64."""
    return torch.float32 if torch.device(device or "cpu").type == "mps" else torch.float64


def rand(shape: tuple[int, ...], device: DeviceLike, generator: torch.Generator | None = None,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) draws of ``shape`` delivered on ``device``."""
    out = torch.rand(shape, generator=generator, device=draw_device(device, generator), dtype=dtype)
    return out.to(device) if device is not None else out


def randn(shape: tuple[int, ...], device: DeviceLike, generator: torch.Generator | None = None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """N(0, 1) draws of ``shape`` delivered on ``device``."""
    out = torch.randn(shape, generator=generator, device=draw_device(device, generator), dtype=dtype)
    return out.to(device) if device is not None else out


def randint(high: int, shape: tuple[int, ...], device: DeviceLike,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Integers uniform in ``[0, high)`` of ``shape`` (int64) delivered on ``device``."""
    out = torch.randint(high, shape, generator=generator, device=draw_device(device, generator))
    return out.to(device) if device is not None else out


def standard_gamma(concentration: float, shape: tuple[int, ...], device: DeviceLike,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Gamma(concentration, 1) draws in float64 (Dirichlet and Beta are normalised Gammas).

    ``torch.distributions`` cannot take a generator, so this uses the same kernel it uses internally.
    """
    where = draw_device(device, generator)
    if generator is None and where.type == "mps":  # no float64 there: draw with the CPU's global RNG
        where = torch.device("cpu")
    conc = torch.full(shape, float(concentration), dtype=torch.float64, device=where)
    out = torch._standard_gamma(conc, generator=generator)
    if device is not None and torch.device(device).type == "mps":
        return out.to(torch.float32).to(device)
    return out.to(device) if device is not None else out
