"""Pseudo-mask generation and the losses (spec §2.6-2.7).

- ``decouple``: the unlabeled content of a mixed prediction. Soft (Eq. 8, default): M_mix - lambda M_l, which keeps
  the unlabeled content where objects overlap; hard (Eq. 7): M_mix - M_l. With softmax maps the soft result sums to
  1 - lambda over the classes at every pixel and the hard one to 0; ``normalize`` divides by 1 - lambda (A7).
- ``mse``: the squared error of L_usup (Eq. 10) and L_dec (Eq. 12); ``reduction="mean"`` averages over B C H W (the
  CCT convention, default), ``"paper"`` sums over the classes and averages over pixels and batch (x C).
- ``multihot``: image-level labels from masks for L_cla (255 excluded).
- ``usup_weight``: omega(t) = omega_max exp(-5 (1 - clip((t - t0) / T_r, 0, 1))^2), 0 before t0 (the warm-up).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.seg.data import IGNORE_INDEX


def as_scale(lam: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """``lam`` broadcastable against a (B, C, H, W) map: a scalar, or one value per row."""
    if isinstance(lam, torch.Tensor):
        lam = lam.to(device=like.device, dtype=like.dtype)
        if lam.dim() == 1:
            lam = lam.view(-1, *([1] * (like.dim() - 1)))
    return lam


def decouple(
    mixed: torch.Tensor, labeled: torch.Tensor, lam: torch.Tensor | float, mode: str = "soft", normalize: bool = False
) -> torch.Tensor:
    """The unlabeled part of a prediction on ``lam * x_l + (1 - lam) * x_u``: ``mixed - lam * labeled`` (soft) or
    ``mixed - labeled`` (hard), divided by ``1 - lam`` when ``normalize``."""
    scale = as_scale(lam, mixed)
    if mode == "soft":
        out = mixed - scale * labeled
    elif mode == "hard":
        out = mixed - labeled
    else:
        raise ConfigError(f"decoupling must be soft or hard, not {mode!r}")
    return out / (1 - scale) if normalize else out


def mse(
    prediction: torch.Tensor, target: torch.Tensor, reduction: str = "mean", valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared error of two (B, C, H, W) maps: mean over B C H W (``mean``) or summed over C and averaged over the
    pixels (``paper``); ``valid`` (B, H, W) restricts the average to those pixels (L_usup's padding option)."""
    squared = (prediction.float() - target.float()).pow(2)
    if reduction not in ("mean", "paper"):
        raise ConfigError(f"mse_reduction must be mean or paper, not {reduction!r}")
    per_pixel = squared.sum(1) if reduction == "paper" else squared.mean(1)
    if valid is None:
        return per_pixel.mean()
    weight = valid.to(per_pixel.dtype)
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1)


def multihot(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``float (B, C)``: 1 for every class present in each mask (255 ignored)."""
    b = masks.shape[0]
    flat = masks.reshape(b, -1).long()
    valid = flat != IGNORE_INDEX
    index = torch.where(valid, flat, torch.zeros_like(flat))
    out = torch.zeros(b, num_classes, device=masks.device)
    out.scatter_add_(1, index, valid.float())
    return (out > 0).float()


def classifier_loss(class_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """L_cla: multi-label BCE-with-logits over every class (background included), mean over batch and classes."""
    target = multihot(masks, class_logits.shape[1])
    return F.binary_cross_entropy_with_logits(class_logits.float(), target)


def usup_weight(step: int, *, w_max: float, start: int, rampup: int) -> float:
    """omega(t): 0 before ``start``, then omega_max exp(-5 (1 - p)^2) with p = clip((t - start) / rampup, 0, 1)."""
    if step < start:
        return 0.0
    if rampup <= 0:
        return w_max
    p = min(1.0, max(0.0, (step - start) / rampup))
    return w_max * math.exp(-5.0 * (1.0 - p) ** 2)


def focal_consistency(logits: torch.Tensor, target_logits: torch.Tensor, gamma: float = 0.5) -> torch.Tensor:
    """The released AAAI code's consistency: sigmoid focal loss of ``logits`` towards sigmoid(``target_logits``)
    (soft targets; gamma 0.5), mean over every element. The target is detached by the caller.

    The focal factor ``|t - p| ** gamma`` has an infinite derivative where ``p == t`` when gamma < 1 (exactly
    equal logits, or both sigmoids saturated at 1.0 in float32), which made the gradient NaN within a few steps of
    the warm-up's end; the factor is floored at 1e-12 (a weight of 1e-6 at gamma 0.5), where its gradient is zero.
    """
    p = torch.sigmoid(logits.float())
    t = torch.sigmoid(target_logits.float())
    bce = F.binary_cross_entropy_with_logits(logits.float(), t, reduction="none")
    return ((t - p).abs().clamp_min(1e-12).pow(gamma) * bce).mean()
