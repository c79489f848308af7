"""The MixMo loss reweighting w_r (thesis Eq. 3.3 for M=2, Eq. A.2 for general M).

w_r(kappa_i) = M * kappa_i^{1/r} / sum_j kappa_j^{1/r}. The root r flattens the MSDA-style linear weights
(r=1 gives w = M * kappa) towards uniform weights (r -> inf gives w = 1), so that a head whose input covers a
small part of the mixed tensor still receives a useful training signal.
"""

from __future__ import annotations

import math

import torch

from mixlab.errors import ConfigError


def reweight(kappa: torch.Tensor, r: float) -> torch.Tensor:
    """w_r of each input's (realised) ratio: (..., M) -> (..., M), rows summing to M.

    ``r = inf`` is the "no reweighting" special case and returns exactly ones. kappa is clamped at 0 so that a
    clipped-away box (realised area 0) stays well defined: 0^{1/r} = 0, and at most M-1 ratios can be 0.
    """
    if math.isnan(r) or r <= 0:
        raise ConfigError(f"The reweighting root r must be positive (1 = linear weights, inf = none), got {r}.")
    if kappa.ndim == 0:
        raise ConfigError("reweight expects ratios with a trailing M dimension, e.g. shape (B, M).")
    if math.isinf(r):
        return torch.ones_like(kappa)
    M = kappa.shape[-1]
    # float64 keeps |w - 1| accurate for very large r, where kappa^{1/r} is within 1e-6 of 1.
    rooted = kappa.to(torch.float64).clamp_min(0.0) ** (1.0 / r)
    total = rooted.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    return (M * rooted / total).to(kappa.dtype if kappa.is_floating_point() else torch.float32)


def weighted_head_loss(head_logits: torch.Tensor, soft_targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The MixMo training loss (Eq. 3.1 / A.1): mean over samples of sum_i w_{n,i} * CE(yhat_{n,i}, y_{n,i}).

    head_logits (B, M, K), soft_targets (B, M, K) (one-hot or soft, e.g. after in-pixel CutMix), weights (B, M)
    (``reweight(kappa, r)``, or ones for MIMO). Equals the official "multiply the target by w, average the soft
    CE over the batch, sum over heads".
    """
    if head_logits.shape != soft_targets.shape or head_logits.shape[:2] != weights.shape:
        raise ConfigError(
            f"weighted_head_loss needs head_logits (B, M, K), soft_targets (B, M, K) and weights (B, M); got "
            f"{tuple(head_logits.shape)}, {tuple(soft_targets.shape)} and {tuple(weights.shape)}."
        )
    ce = -(soft_targets * torch.log_softmax(head_logits, dim=-1)).sum(-1)  # (B, M)
    return (weights.to(ce.dtype) * ce).sum(1).mean()
