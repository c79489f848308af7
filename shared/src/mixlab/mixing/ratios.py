"""Mixing ratios: the MixMo kappa on the simplex and the in-pixel MSDA lambda.

kappa is drawn independently per sample (thesis Alg. A.6; the official code draws one per dataset item).
For M=2, kappa_0 ~ Beta(alpha, alpha) and kappa_1 = 1 - kappa_0 exactly, so that a role swap maps the pair
onto itself bit for bit. For general M, (kappa_0..kappa_{M-1}) ~ Dir_M(alpha). ``alpha <= 0`` is the official
encoding of MIMO: the fixed ratios 1/M.
"""

from __future__ import annotations

import math

import torch

from mixlab.errors import ConfigError
from mixlab.rng import DeviceLike, symmetric_dirichlet


def sample_ratios(
    batch: int, M: int, alpha: float, generator: torch.Generator | None = None, device: DeviceLike = None
) -> torch.Tensor:
    """Per-sample mixing ratios, shape (batch, M), float32, each row on the simplex.

    Beta(alpha, alpha) as (k, 1 - k) for M=2, symmetric Dirichlet_M(alpha) otherwise; ``alpha <= 0`` gives
    exactly 1/M everywhere (MIMO). M=1 gives ones.
    """
    if batch < 0:
        raise ConfigError(f"The batch size for sampling mixing ratios must be non-negative, got {batch}.")
    if M < 1:
        raise ConfigError(f"The number of inputs M must be at least 1, got {M}.")
    if math.isnan(alpha):
        raise ConfigError("The mixing concentration alpha is NaN; give a positive value, or <= 0 for 1/M.")
    if M == 1:
        return torch.ones(batch, 1, device=device)
    if alpha <= 0:
        return torch.full((batch, M), 1.0 / M, device=device)
    # Exact for any alpha > 0: a tiny alpha is drawn in log space (mixlab.rng.LOG_SPACE_BELOW).
    kappa = symmetric_dirichlet(alpha, (batch, M), device, generator).to(torch.float32)
    if M == 2:
        k0 = kappa[:, 0]
        return torch.stack([k0, 1.0 - k0], dim=1)
    return kappa


def sample_lambda(
    batch: int, alpha: float, generator: torch.Generator | None = None, device: DeviceLike = None
) -> torch.Tensor:
    """Per-sample in-pixel MSDA ratio lambda ~ Beta(alpha, alpha), shape (batch,), float32.

    Unlike kappa there is no "fixed 1/2" meaning for alpha <= 0 here: pixel MixUp/CutMix with such an alpha
    is a configuration mistake (disable the pixel MSDA instead), so it is refused.
    """
    if not alpha > 0:
        raise ConfigError(
            f"The in-pixel MixUp/CutMix concentration alpha must be positive (the recipes use 1.0), got {alpha}. "
            "To train without in-pixel mixing, turn the pixel MSDA off instead."
        )
    return sample_ratios(batch, 2, alpha, generator, device)[:, 0]
