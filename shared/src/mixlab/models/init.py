"""Weight initialisation of the official MixMo code (spec mixmo-mixshare §2.5).

The official code ports TensorFlow's ``truncated_normal`` He initialisation: draw N(0, 1), keep only values in
(-2, 2), and multiply by ``std / 0.87962566``. The divisor is the standard deviation of a standard normal truncated
to +-2, so the realised standard deviation is the He target ``sqrt(2 / fan_in)`` while no weight exceeds two
(pre-truncation) sigmas. Every sampler draws from torch's global RNG unless a ``generator`` is given, so a seeded run
is reproducible and the engine's RNG save/restore covers it.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

# Standard deviation of N(0, 1) truncated to (-2, 2): sqrt(1 - 4 phi(2) / (Phi(2) - Phi(-2))).
TRUNCATED_NORMAL_STD: float = 0.87962566103423978
TRUNCATION_BOUND: float = 2.0

LinearInit = Literal["he_truncated", "normal"]
LINEAR_INITS: tuple[str, ...] = ("he_truncated", "normal")
# PreActResNet's dense layer in the official code: N(0, 0.01).
LINEAR_NORMAL_STD: float = 0.01


def truncated_normal_(
    tensor: Tensor,
    scale: float = 1.0,
    *,
    bound: float = TRUNCATION_BOUND,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with ``scale * v``, ``v ~ N(0, 1)`` restricted to the open interval (-bound, bound).

    Out-of-range draws are redrawn until none is left (an exact truncated normal; the official code keeps the
    first valid of four draws, the same distribution up to a 4e-6 failure rate). Meta tensors are left alone so
    that architectures can be built on the meta device to count parameters or check shapes for free.
    """
    if tensor.is_meta:
        return tensor
    device = generator.device if generator is not None else tensor.device
    with torch.no_grad():
        values = torch.randn(tensor.numel(), generator=generator, device=device, dtype=torch.float32)
        # Redraw only the rejected positions: one pass over the tensor, then ever smaller index sets.
        redraw = torch.nonzero(values.abs() >= bound).squeeze(1)
        while redraw.numel() > 0:
            fresh = torch.randn(redraw.numel(), generator=generator, device=device, dtype=torch.float32)
            values[redraw] = fresh
            redraw = redraw[fresh.abs() >= bound]
        tensor.copy_(values.mul_(scale).view(tensor.shape))
    return tensor


def he_std(weight: Tensor) -> float:
    """He (ReLU gain, fan_in) target standard deviation ``sqrt(2 / fan_in)`` of a conv or linear weight."""
    fan_in = weight[0].numel()  # in_channels / groups * kernel area, or in_features
    return math.sqrt(2.0 / fan_in)


def he_truncated_normal_(weight: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Official MixMo conv init: truncated normal at +-2 sigma, rescaled to the He standard deviation."""
    return truncated_normal_(weight, he_std(weight) / TRUNCATED_NORMAL_STD, generator=generator)


def _normal_(tensor: Tensor, std: float, *, generator: torch.Generator | None) -> Tensor:
    """N(0, std) fill that works when the generator lives on another device than the tensor."""
    if tensor.is_meta:
        return tensor
    device = generator.device if generator is not None else tensor.device
    tensor.copy_(torch.randn(tensor.shape, generator=generator, device=device, dtype=torch.float32).mul_(std))
    return tensor


def init_weights(
    module: nn.Module,
    *,
    linear_init: LinearInit = "he_truncated",
    generator: torch.Generator | None = None,
) -> nn.Module:
    """(Re-)initialise every submodule of ``module`` the way the official code does.

    Convolutions: truncated He. Linear layers: truncated He (WRN) or N(0, 0.01) (``linear_init="normal"``,
    PreActResNet). Biases 0. Normalisation layers: gamma 1, beta 0, fresh running statistics.
    """
    if linear_init not in LINEAR_INITS:
        raise ValueError(f"linear_init must be one of {LINEAR_INITS}, got {linear_init!r}")
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.conv._ConvNd):
                he_truncated_normal_(m.weight, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Linear):
                if linear_init == "normal":
                    _normal_(m.weight, LINEAR_NORMAL_STD, generator=generator)
                else:
                    he_truncated_normal_(m.weight, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm):
                if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
                    m.reset_running_stats()
                if getattr(m, "weight", None) is not None:
                    m.weight.fill_(1.0)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()
    return module
