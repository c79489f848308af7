"""Random draws that honour an optional ``torch.Generator`` on any device.

A generator lives on one device and can only fill tensors there, while the tensors being mixed may live
elsewhere. Every draw is therefore made on the generator's device (or on the target device with the global
RNG when no generator is given) and then moved to the target device (asynchronously: :func:`mixlab.transfer.to_device`). Masks are small, so the
copy is cheap.
"""

from __future__ import annotations

import torch

from mixlab.transfer import to_device

DeviceLike = torch.device | str | None


def draw_device(device: DeviceLike, generator: torch.Generator | None) -> torch.device:
    """Device on which a draw must be made so that ``generator`` (or the global RNG) can fill it."""
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def wide_dtype(device: DeviceLike) -> torch.dtype:
    """float64 for exact integer-ish box arithmetic, except on MPS, which has no float64."""
    return torch.float32 if torch.device(device or "cpu").type == "mps" else torch.float64


def rand(
    shape: tuple[int, ...],
    device: DeviceLike,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """U[0, 1) draws of ``shape`` delivered on ``device``."""
    out = torch.rand(shape, generator=generator, device=draw_device(device, generator), dtype=dtype)
    return to_device(out, device) if device is not None else out


def randn(
    shape: tuple[int, ...],
    device: DeviceLike,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """N(0, 1) draws of ``shape`` delivered on ``device``."""
    out = torch.randn(shape, generator=generator, device=draw_device(device, generator), dtype=dtype)
    return to_device(out, device) if device is not None else out


def randint(
    high: int, shape: tuple[int, ...], device: DeviceLike, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Integers uniform in ``[0, high)`` of ``shape`` (int64) delivered on ``device``."""
    out = torch.randint(high, shape, generator=generator, device=draw_device(device, generator))
    return to_device(out, device) if device is not None else out


#: Below this concentration the Gamma draws behind a Beta or Dirichlet are taken in log space. torch's Gamma kernel
#: boosts alpha < 1 as Gamma(alpha + 1) * U^(1/alpha) and clamps the result to the smallest normal float64, 2^-1022,
#: so a draw is clamped with probability about P(U < 2^(-1022 alpha)) = 2^(-1022 alpha). Measured on 4M float64 CPU
#: draws each: 93% clamped at alpha=1e-4 (a Beta ratio of two clamped draws is exactly 0.5), 8.5e-4 at 0.01, 1.3e-6
#: at 0.02, none at 0.04 and above; at 0.1 the bound is 2^-102 ~ 2e-31 per draw. From 0.1 up the direct draws are
#: therefore exact in practice, and they are kept as they are: every seeded stream at the alphas the recipes use
#: (0.2 to 2, and 0 for MIMO) is bit-for-bit what it was before the log-space path existed.
LOG_SPACE_BELOW = 0.1


def dirichlet(
    concentration: torch.Tensor,
    generator: torch.Generator | None = None,
    log_space: bool | None = None,
    device: DeviceLike = None,
) -> torch.Tensor:
    """Dirichlet rows over the last axis of ``concentration``, float64; the one Beta/Dirichlet sampler of mixlab.

    The draws are made on ``concentration``'s device, from ``generator`` (which must live there) or from that
    device's global RNG, then moved to ``device`` (when given; float32 on MPS) where they are normalised.
    Direct (``log_space=False``): ``G_i ~ Gamma(c_i)`` and ``G / sum(G)``. Log space: ``log G_i = log Gamma(c_i + 1)
    + log(U_i) / c_i`` (Marsaglia and Tsang's boost, kept in logs so nothing underflows) and a softmax of the logs;
    with two coordinates the first is ``sigmoid(log G_0 - log G_1)`` and the second one minus it. ``None`` takes
    log space when some concentration is below :data:`LOG_SPACE_BELOW` (the threshold's note). A row that cannot
    be resolved (every draw underflows: only concentrations near 1e-300) gets the centre 1/K.
    """
    conc = concentration.to(torch.float64)
    if log_space is None:
        log_space = conc.numel() > 0 and float(conc.min()) < LOG_SPACE_BELOW
    tiny = torch.finfo(torch.float64).tiny
    if log_space:
        boosted = torch._standard_gamma(conc + 1.0, generator=generator)
        uniform = torch.rand(conc.shape, generator=generator, device=conc.device, dtype=torch.float64)
        raw = boosted.log() + uniform.clamp_min(tiny).log() / conc
    else:
        raw = torch._standard_gamma(conc, generator=generator)
    if device is not None:
        raw = to_device(raw, device, torch.float32 if torch.device(device).type == "mps" else raw.dtype)
    centre = 1.0 / raw.shape[-1]
    if not log_space:
        total = raw.sum(-1, keepdim=True)
        return torch.where(total > 0, raw / total.clamp_min(tiny), centre)
    if raw.shape[-1] == 2:
        first = torch.sigmoid(raw[..., 0] - raw[..., 1])
        out = torch.stack([first, 1.0 - first], dim=-1)
    else:
        out = torch.softmax(raw, dim=-1)
    return torch.where(out.isnan(), centre, out)


def symmetric_dirichlet(
    alpha: float,
    shape: tuple[int, ...],
    device: DeviceLike,
    generator: torch.Generator | None = None,
    log_space: bool | None = None,
) -> torch.Tensor:
    """Rows of ``Dir_K(alpha)`` (K = ``shape[-1]``) delivered on ``device``; Beta(alpha, alpha) is ``[..., 0]`` of K=2.

    Drawn where :func:`draw_device` says (on the CPU when no generator is given for MPS, which has no float64);
    see :func:`dirichlet`. ``torch.distributions`` cannot take a generator, so this uses the kernel it uses.
    """
    where = draw_device(device, generator)
    if generator is None and where.type == "mps":  # no float64 there: draw with the CPU's global RNG
        where = torch.device("cpu")
    conc = torch.full(shape, float(alpha), dtype=torch.float64, device=where)
    if log_space is None:  # decided from the Python float: no read-back of a device tensor
        log_space = float(alpha) < LOG_SPACE_BELOW
    return dirichlet(conc, generator, log_space, device)


# ------------------------------------------------------------------------------------------- keyed (counter) draws

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1


def _signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic on signed integers)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's step and finaliser (Steele, Lea & Flood 2014) on int64, wrapping like uint64."""
    z = z + _signed64(_GOLDEN)
    z = (z ^ _shift_right(z, 30)) * _signed64(_MIX1)
    z = (z ^ _shift_right(z, 27)) * _signed64(_MIX2)
    return z ^ _shift_right(z, 31)


def keyed_uniform(seed: int, *keys: torch.Tensor, count: int, offset: int = 0) -> torch.Tensor:
    """U[0, 1) float64 draws that are a pure function of ``(seed, keys..., slot)``: ``(*shape, count)``.

    ``keys`` are broadcastable int64 tensors (e.g. image ids and copy ids); slot ``offset + t`` gives column ``t``.
    Each key is folded in with one SplitMix64 round, so a draw does not depend on which other keys are drawn with
    it, on the batch order or on the device: a counter-based generator for "copy j of image i" without a
    ``torch.Generator`` reseeded per sample. 53 bits per draw, like ``torch.rand(dtype=float64)``.
    """
    if count < 0 or offset < 0:
        raise ValueError(f"count and offset must be non-negative, got {count} and {offset}.")
    device = keys[0].device if keys else torch.device("cpu")
    state = _mix64(torch.tensor(_signed64(seed), dtype=torch.int64, device=device))
    for key in keys:
        state = _mix64(state ^ key.to(torch.int64))
    slots = torch.arange(offset, offset + count, dtype=torch.int64, device=device)
    bits = _mix64(state[..., None] ^ slots)
    return _shift_right(bits, 11).to(torch.float64) * 2.0**-53
