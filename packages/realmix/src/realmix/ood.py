"""RealMix's out-of-distribution mask (§3.4): drop the least confident fraction gamma of every unlabeled batch.

A fixed confidence threshold stops working once sharpening pushes every confidence up, so the threshold is a
per-batch percentile: the rows whose max-softmax confidence lies in the bottom ``gamma·100 %`` leave the consistency
loss. gamma is roughly the expected fraction of out-of-distribution unlabeled images (0.6 at 75 % mismatch).

Two rules for "bottom gamma": ``paper`` masks exactly ``floor(gamma·N)`` rows (the paper's wording); ``official``
reproduces the released code, which keeps rows strictly above the ``floor(gamma·N)``-th smallest confidence and so
masks one row more (more with ties).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from mixlab.errors import ConfigError
from mixlab.ssl import probability_mse

OODRule = Literal["paper", "official"]
OOD_RULES: tuple[str, ...] = ("paper", "official")


def _check(logits: torch.Tensor, gamma: float, rule: str) -> float:
    if rule not in OOD_RULES:
        raise ConfigError(f"OOD mask rule must be one of {', '.join(OOD_RULES)}, got {rule!r}.")
    gamma = float(gamma)
    if not 0.0 <= gamma < 1.0:  # also rejects NaN
        raise ConfigError(f"the OOD mask fraction gamma must be in [0, 1), got {gamma!r}.")
    if logits.dim() != 2:
        raise ConfigError(f"the OOD mask needs logits of shape (N, K), got {tuple(logits.shape)}.")
    return gamma


def masked_count(n: int, gamma: float) -> int:
    """``floor(gamma·n)`` for ``0 <= gamma < 1``, robust to float error (0.29·100 is 28.999999999999996)."""
    return max(0, min(math.floor(round(gamma * n, 9)), n - 1))


def ood_mask(logits: torch.Tensor, gamma: float, rule: OODRule = "paper") -> torch.Tensor:
    """float32 (N,) of {0, 1}, detached: 0 for the rows masked out of the unsupervised loss.

    Confidence is ``max_c softmax(logits)_c`` over all N rows jointly. ``gamma = 0`` keeps every row (both rules).
    paper: the ``floor(gamma·N)`` lowest-confidence rows are masked (stable ascending sort: ties go by row index).
    official: ``tau = sort(conf)[floor(gamma·N)]`` and rows with ``conf > tau`` (strictly) are kept.
    """
    gamma = _check(logits, gamma, rule)
    n = logits.shape[0]
    mask = torch.ones(n, dtype=torch.float32, device=logits.device)
    if gamma == 0.0 or n == 0:
        return mask
    with torch.no_grad():
        confidence = torch.softmax(logits.detach().float(), dim=-1).amax(dim=-1)
        k = masked_count(n, gamma)
        if rule == "paper":
            order = torch.sort(confidence, stable=True).indices
            mask[order[:k]] = 0.0
        else:
            tau = torch.sort(confidence).values[k]
            mask = (confidence > tau).float()
    return mask


def ood_masked_mse(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float, rule: OODRule = "paper"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_unsup, mask)``: ``sum_j m_j·sum_c (Y_jc - p_jc)² / max(C·sum_j m_j, 1)`` with ``p = softmax(logits)``.

    With ``gamma = 0`` this is the plain MSE averaged over samples and classes (MixMatch's ``L_u``, the scale that
    lambda_u = 75 / 250 assumes). Computed in float32; the gradient flows through ``p`` only.
    """
    gamma = _check(logits, gamma, rule)
    if logits.shape != targets.shape:
        raise ConfigError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the same shape.")
    mask = ood_mask(logits, gamma, rule)
    loss = probability_mse(logits, targets.to(logits.device), mask)
    return loss, mask
