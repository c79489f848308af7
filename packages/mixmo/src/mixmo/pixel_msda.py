"""In-pixel CutMix / Mixup on each of the M inputs before MixMo (spec §3.9), on mixlab's pixel MSDA.

Each input i is mixed with a partner image from the whole training set with probability `prob`. For CutMix in a
MixMo network, lambda is the thesis's corrected ratio lambda* = sum(1_m * 1_M^(i)) / sum(1_M^(i)) measured inside
the input's own feature-space mask, and the roles are swapped when lambda* < 0.5 so the batch image stays dominant
(`mixlab.mixing.pixel_cutmix(..., mixing_mask=...)`). Single-network baselines use plain CutMix / Mixup.
Head i is trained on lambda y_i + (1 - lambda) y_k.
"""

from __future__ import annotations

import torch
from mixlab.mixing import pixel_cutmix, pixel_mixup


def pixel_msda(
    x: torch.Tensor,
    targets: torch.Tensor,
    partner_x: torch.Tensor,
    partner_targets: torch.Tensor,
    feature_masks: torch.Tensor,
    *,
    kind: str,
    prob: float,
    alpha: float,
    swap_if_minor: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, partner_x: (B, M, C, H, W); targets, partner_targets: (B, M, K); feature_masks: (B, M, 1, h|1, w|1).

    Returns the mixed images, the mixed soft targets and the images' own share lambda (B, M) (1 where not mixed).
    """
    B, M = x.shape[:2]

    def flat(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(B * M, *t.shape[2:])

    if kind == "cutmix":
        mask = flat(feature_masks) if swap_if_minor else None
        mixed, lam = pixel_cutmix(flat(x), flat(partner_x), alpha=alpha, prob=prob, mixing_mask=mask)
    elif kind == "mixup":
        mixed, lam = pixel_mixup(flat(x), flat(partner_x), alpha=alpha, prob=prob)
    else:
        raise ValueError(f"unknown pixel MSDA {kind!r}")
    lam = lam.view(B, M).to(targets.dtype)
    new_targets = lam[..., None] * targets + (1 - lam[..., None]) * partner_targets
    return mixed.view_as(x), new_targets, lam
