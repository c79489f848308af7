"""Unmixing (spec §5.2, §5.4, Alg. A.7): the input's mixing mask reused on the final feature map, per head.

Head i pools the final map F (B, D, h, w) under its own downsampled mask m_i: ``f'_i = GAP(m_i * F)``. Partial
unmixing applies the mask to the first ``floor(fraction * D)`` channels only (the others are pooled normally and
shared); fadeout relaxes every mask to ``m_i + rho (1 - m_i)``, from full unmixing (rho = 0) to plain GAP (rho = 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from torch import Tensor


def downsample_masks(masks: Tensor, size: tuple[int, int], mode: str = "area") -> Tensor:
    """Per-input masks (B, M, 1, H, W) on the mixing grid -> (B, M, 1, h, w) on the final map.

    ``area``: average over each cell (keeps the mean exactly when h | H and w | W, and complementary masks still
    sum to 1). ``nearest``: nearest-neighbour sampling (binary). ``area_threshold``: area, then > 0.5.
    Constant masks (B, M, 1, 1, 1) are broadcast.
    """
    if masks.ndim != 5 or masks.shape[2] != 1:
        raise ConfigError(f"unmixing expects masks of shape (B, M, 1, H, W), got {tuple(masks.shape)}")
    B, M = masks.shape[:2]
    if masks.shape[-2:] == (1, 1):
        return masks.expand(B, M, 1, *size)
    flat = masks.reshape(B * M, 1, *masks.shape[-2:])
    if mode == "area":
        down = F.adaptive_avg_pool2d(flat, size)
    elif mode == "nearest":
        down = F.interpolate(flat, size=size, mode="nearest")
    elif mode == "area_threshold":
        down = (F.adaptive_avg_pool2d(flat, size) > 0.5).to(flat.dtype)
    else:
        raise ConfigError(f"unknown mask downsampling {mode!r}; choose area, nearest or area_threshold")
    return down.view(B, M, 1, *size)


def fadeout_rho(
    epoch: int, step: int, steps_per_epoch: int, fadeout_epochs: float, granularity: str = "epoch"
) -> float:
    """rho = min(1, e / fadeout_epochs), e = completed epochs (``epoch``, 0-based current epoch) or, per step,
    the fractional epochs ``step / steps_per_epoch`` (spec §5.4, §9 B8)."""
    if granularity == "epoch":
        e = float(epoch)
    elif granularity == "step":
        e = step / max(1, steps_per_epoch)
    else:
        raise ConfigError(f"fadeout granularity must be epoch or step, not {granularity!r}")
    return min(1.0, e / fadeout_epochs)


def unmix_pool(
    feature_map: Tensor,
    head_masks: Tensor,
    *,
    fraction: float = 1.0,
    rho: float = 0.0,
    normalize: bool = False,
) -> Tensor:
    """Per-head features (B, M, D) from the final map F (B, D, h, w) and masks (B, M, 1, h, w) on its grid.

    Channels ``c < floor(fraction * D)`` get ``mean_{u,v}(m_i * F[:, c])`` with ``m_i`` relaxed to
    ``m_i + rho (1 - m_i)`` (divided by ``mean(m_i)`` instead of 1 when ``normalize``); the others get
    ``GAP(F[:, c])`` for every head. With an all-ones mask (or rho = 1, or fraction = 0) this is plain GAP.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"the unmixed fraction must be in [0, 1], got {fraction}")
    if not 0.0 <= rho <= 1.0:
        raise ConfigError(f"the fadeout coefficient rho must be in [0, 1], got {rho}")
    B, D, h, w = feature_map.shape
    M = head_masks.shape[1]
    if head_masks.shape != (B, M, 1, h, w):
        raise ConfigError(
            f"unmixing masks {tuple(head_masks.shape)} do not fit the final map {tuple(feature_map.shape)}"
        )
    k = math.floor(fraction * D)
    gap = feature_map.mean(dim=(2, 3))  # (B, D)
    shared = gap[:, None, k:].expand(B, M, D - k)
    if k == 0:
        return shared
    m = head_masks[:, :, 0].to(feature_map.dtype)  # (B, M, h, w)
    if rho > 0:
        m = m + rho * (1 - m)
    unmixed = torch.einsum("bmuv,bcuv->bmc", m, feature_map[:, :k]) / (h * w)  # (B, M, k)
    if normalize:
        unmixed = unmixed / m.mean(dim=(2, 3)).clamp_min(1e-6)[..., None]
    return torch.cat([unmixed, shared], dim=2)


class UnmixPool:
    """``pool_fn`` for `MultiHeadMIMO.forward`: unmixing with fixed masks, fraction, rho and normalisation.

    The final map's size is only known inside the forward, so the masks are downsampled there.
    """

    def __init__(self, masks: Tensor, *, fraction: float, rho: float, normalize: bool, downsample: str) -> None:
        self.masks, self.fraction, self.rho = masks, fraction, rho
        self.normalize, self.downsample = normalize, downsample

    def __call__(self, feature_map: Tensor) -> Tensor:
        head_masks = downsample_masks(self.masks, tuple(feature_map.shape[-2:]), self.downsample)
        return unmix_pool(feature_map, head_masks, fraction=self.fraction, rho=self.rho, normalize=self.normalize)
