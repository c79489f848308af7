"""Unlabeled-data losses of MixMatch/RealMix, Mean Teacher and FixMatch.

Every loss runs its maths in float32 (logits are cast with ``.float()``), so it is safe under autocast, and
normalises by Python-side counts or clamped tensors, so it never synchronises with the device. The soft-target
cross-entropy of the supervised terms is :func:`mixlab.mixing.soft_cross_entropy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mixlab.errors import ConfigError


def _same_shape(name: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(
            f"{name} needs two (N, K) tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}."
        )


def probability_mse(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """MixMatch's L_u with RealMix's OOD mask: ``sum_j m_j sum_c (t_jc - softmax(z_j)_c)^2 / max(C sum_j m_j, 1)``.

    Without a mask it is the mean over all N*C entries (the mean over classes sets the scale of lambda_u). The mask
    (N,) is used as a constant: no gradient flows into it, and masked rows send no gradient to the logits.
    """
    _same_shape("probability_mse", logits, targets)
    num_classes = logits.shape[1]
    sq = (targets.float() - torch.softmax(logits.float(), dim=-1)).square().sum(dim=1)
    if mask is None:
        return sq.sum() / max(num_classes * logits.shape[0], 1)
    if mask.shape != (logits.shape[0],):
        raise ConfigError(f"The OOD mask must have one entry per row ({logits.shape[0]},), got {tuple(mask.shape)}.")
    m = mask.detach().to(device=sq.device, dtype=torch.float32)
    return (m * sq).sum() / (m.sum() * num_classes).clamp_min(1.0)


def softmax_mse(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean Teacher consistency: mean over rows of ``||softmax(s) - softmax(sg[t])||^2 / K``; the teacher side
    is detached."""
    _same_shape("softmax_mse", student_logits, teacher_logits)
    p_student = torch.softmax(student_logits.float(), dim=-1)
    p_teacher = torch.softmax(teacher_logits.detach().float(), dim=-1)
    return (p_student - p_teacher).square().sum() / max(student_logits.numel(), 1)


def logit_distance(a: Tensor, b: Tensor) -> Tensor:
    """Dual-head logit coupling of Mean Teacher: mean over rows of ``||a - b||^2 / K``, gradient to both sides."""
    _same_shape("logit_distance", a, b)
    return (a.float() - b.float()).square().sum() / max(a.numel(), 1)


def fixmatch_unlabeled_loss(logits_weak: Tensor, logits_strong: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """FixMatch: ``q = softmax(sg[weak])``, ``mask = 1[max q >= tau]``, loss = mean over ALL rows of
    ``mask * CE(strong, argmax q)`` (masked rows count in the denominator). Returns ``(loss, mask)``, mask (N,)
    float32 without gradient."""
    _same_shape("fixmatch_unlabeled_loss", logits_weak, logits_strong)
    with torch.no_grad():
        confidence, pseudo = torch.softmax(logits_weak.detach().float(), dim=-1).max(dim=-1)
        mask = (confidence >= threshold).float()
    ce = F.cross_entropy(logits_strong.float(), pseudo, reduction="none")
    return (ce * mask).sum() / max(logits_strong.shape[0], 1), mask
