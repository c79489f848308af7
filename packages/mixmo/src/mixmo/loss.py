"""MixMo's training loss (Eq. 3.1 / A.1) and Table 3.4's classifier variants."""

from __future__ import annotations

import torch
from mixlab.mixing import reweight, soft_cross_entropy


def assign_heads(targets: torch.Tensor, kappa: torch.Tensor, head_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Which input each head predicts: (B, M, K) targets and (B, M) ratios, reordered per head.

    per_member: head i predicts input i. random_assign (Table 3.4, 2-minus): each sample's heads are assigned to the
    inputs in a random order. predominant_first (2-times): head 0 predicts the input with the larger ratio.
    """
    if head_mode in ("per_member", "single_soft"):
        return targets, kappa
    if head_mode == "random_assign":
        swap = torch.rand(kappa.shape[0], device=kappa.device) < 0.5
    elif head_mode == "predominant_first":
        swap = kappa[:, 1] > kappa[:, 0]
    else:
        raise ValueError(f"unknown head mode {head_mode!r}")
    order = torch.stack([swap.long(), 1 - swap.long()], dim=1)  # (B, 2): input index for head 0, head 1
    kappa = kappa.gather(1, order)
    targets = targets.gather(1, order[..., None].expand_as(targets))
    return targets, kappa


def mixmo_loss(
    logits: torch.Tensor, targets: torch.Tensor, kappa: torch.Tensor, *, weight_root: float, head_mode: str
) -> torch.Tensor:
    """(1/B) sum_n sum_i w_r(kappa_n,i) CE(logits_n,i, targets_n,i).

    logits: (B, heads, K); targets: (B, M, K) soft labels; kappa: (B, M) realised mixing ratios.
    single_soft trains one head on the interpolated label sum_i kappa_i y_i, without reweighting.
    """
    if head_mode == "single_soft":
        soft = (kappa[..., None] * targets).sum(dim=1)
        return soft_cross_entropy(logits[:, 0], soft, reduction="mean")
    targets, kappa = assign_heads(targets, kappa, head_mode)
    weights = reweight(kappa, weight_root)
    B, M, K = logits.shape
    per = soft_cross_entropy(logits.reshape(B * M, K).float(), targets.reshape(B * M, K), reduction="none")
    return (weights.reshape(B * M) * per).sum() / B
