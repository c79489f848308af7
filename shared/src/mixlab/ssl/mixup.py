"""MixMatch's biased MixUp (RealMix spec §3.4): lambda' = max(lambda, 1 - lambda), so each mixed row stays closer
to its own source, and a single shuffled partner pool for labeled and unlabeled rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mixlab.errors import ConfigError
from mixlab.rng import draw_device, symmetric_dirichlet
from mixlab.transfer import to_device


@dataclass
class MixUpResult:
    """Mixed inputs and targets, with the per-row lambda' (N,) and the partner permutation (N,) that made them."""

    x: Tensor
    y: Tensor
    lam: Tensor
    perm: Tensor


def _biased_lambda(n: int, alpha: float, per_sample: bool, generator: torch.Generator | None) -> Tensor:
    """lambda' = max(lambda, 1 - lambda), lambda ~ Beta(alpha, alpha), float64 (n,) on the draw device.

    The Beta draw is mixlab's one sampler (:func:`mixlab.rng.dirichlet`), always in log space here
    (``log G = log Gamma(alpha + 1) + log(U) / alpha``, ``lambda = sigmoid(log G0 - log G1)``): exact for a tiny
    alpha, where torch's clamped Gamma draws would give 0.5, and the stream every seeded SSL run has used.
    """
    draws = n if per_sample else 1
    lam = symmetric_dirichlet(alpha, (draws, 2), None, generator, log_space=True)[:, 0]
    lam = torch.maximum(lam, 1.0 - lam)
    return lam if per_sample else lam.expand(n).clone()


def biased_mixup(
    x: Tensor, y: Tensor, alpha: float, per_sample: bool = True, generator: torch.Generator | None = None
) -> MixUpResult:
    """``x' = lam' x + (1 - lam') x[perm]``, ``y' = lam' y + (1 - lam') y[perm]`` with ``perm = randperm(N)``.

    ``lam'`` is drawn per row (RealMix, shape [3B,1,1,1] in the official code) or once for the batch
    (``per_sample=False``, the MixMatch-pytorch convention); ``alpha <= 0`` means no mixing (``lam' = 1``, the
    permutation is still drawn so the RNG stream does not depend on alpha). lambda is drawn first, then the
    permutation, both from ``generator`` when given (on its device), else from torch's global RNG on the CPU.
    """
    if math.isnan(alpha):
        raise ConfigError("The MixUp concentration alpha is NaN; give a positive value (MixMatch uses 0.75).")
    if not (x.is_floating_point() and y.is_floating_point()):
        raise ConfigError(
            f"MixUp needs floating-point inputs and soft targets. Got {x.dtype} inputs and {y.dtype} targets "
            "(normalise the images and one-hot encode the labels first)."
        )
    if x.ndim == 0 or y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise ConfigError(
            f"MixUp needs one target row per input row, got inputs {tuple(x.shape)}, targets {tuple(y.shape)}."
        )
    n = x.shape[0]
    if alpha > 0:
        lam = _biased_lambda(n, alpha, per_sample, generator)
    else:
        lam = torch.ones(n, dtype=torch.float64, device=draw_device(None, generator))
    perm = to_device(torch.randperm(n, generator=generator, device=draw_device(None, generator)), x.device)
    lam32 = to_device(lam, x.device, torch.float32)
    lam_x = lam32.to(x.dtype).view((n,) + (1,) * (x.ndim - 1))
    lam_y = lam32.to(y.dtype).view((n,) + (1,) * (y.ndim - 1))
    mixed_x = lam_x * x + (1 - lam_x) * x[perm]
    mixed_y = lam_y * y + (1 - lam_y) * y[to_device(perm, y.device)]
    return MixUpResult(x=mixed_x, y=mixed_y, lam=lam32, perm=perm)
