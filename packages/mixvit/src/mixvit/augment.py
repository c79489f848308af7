"""The DeiT-style input pipeline of the thesis's transformers (A.1.5; spec §6), batched on the device.

Per image copy: pad-and-crop, flip and AutoAugment (shared `mixlab.data.transforms`), normalisation, then
RandErase, then the pixel MSDA. The thesis applies CutMix and MixUp *simultaneously* rather than alternately:
a CutMix box (lambda_c ~ Beta(1, 1)) whose inside and outside hold MixUp weights instead of 0/1
(lambda_m ~ Beta(0.8, 0.8)). Targets are label-smoothed one-hots mixed by the image's share of the result; when
the image is then cut into MixViT tokens, only the tokens it keeps are visible, so its share is counted over
those pixels (MixMo's label correction), and the roles swap if the partner dominates what is visible.
"""

from __future__ import annotations

import math

import torch
from mixlab.errors import ConfigError
from mixlab.mixing import corrected_lambda, cutmix_box_mask, sample_lambda

MSDA_KINDS: tuple[str, ...] = ("simultaneous", "alternate", "none")
SOFT_MASKS: tuple[str, ...] = ("complementary", "box_only")
ERASE_ATTEMPTS = 10  # timm/Zhong et al.: up to 10 tries at a box that fits


def smooth_labels(one_hot: torch.Tensor, smoothing: float) -> torch.Tensor:
    """(1 - eps) * one_hot + eps / K."""
    return one_hot * (1.0 - smoothing) + smoothing / one_hot.shape[-1]


def random_erasing(
    x: torch.Tensor,
    prob: float = 0.25,
    scale: tuple[float, float] = (0.02, 1 / 3),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """RandErase (Zhong et al. 2020) in timm's "pixel" mode, batched: per image with probability ``prob``, a box
    of area share U(scale) and log-uniform aspect ratio (the first of 10 tries that fits) is filled with N(0, 1)
    noise. Works on normalised float images; draws from the global RNG like every training-time op here."""
    if not 0.0 <= prob <= 1.0:
        raise ConfigError(f"the RandErase probability must lie in [0, 1], got {prob}")
    if prob == 0.0:
        return x
    n, c, height, width = x.shape
    device = x.device
    area = torch.empty(n, ERASE_ATTEMPTS, device=device).uniform_(*scale) * (height * width)
    aspect = torch.exp(torch.empty(n, ERASE_ATTEMPTS, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    h = torch.round(torch.sqrt(area * aspect)).long()
    w = torch.round(torch.sqrt(area / aspect)).long()
    fits = (h < height) & (w < width)
    first = torch.argmax(fits.int(), dim=1)  # index of the first box that fits (0 when none does)
    rows = torch.arange(n, device=device)
    h, w = h[rows, first], w[rows, first]
    apply = fits.any(1) & (torch.rand(n, device=device) < prob)
    top = torch.floor(torch.rand(n, device=device) * (height - h + 1).clamp_min(1)).long()
    left = torch.floor(torch.rand(n, device=device) * (width - w + 1).clamp_min(1)).long()
    ys = torch.arange(height, device=device)
    xs = torch.arange(width, device=device)
    inside = ((ys[None, :] >= top[:, None]) & (ys[None, :] < (top + h)[:, None]))[:, :, None] & (
        (xs[None, :] >= left[:, None]) & (xs[None, :] < (left + w)[:, None])
    )[:, None, :]
    erase = (inside & apply[:, None, None]).unsqueeze(1)
    return torch.where(erase, torch.randn_like(x), x)


def msda_mask(
    n: int,
    height: int,
    width: int,
    *,
    kind: str,
    cutmix_alpha: float,
    mixup_alpha: float,
    soft_mask: str = "complementary",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The weight m (n, 1, H, W) in [0, 1] of each image against its partner, x~ = m x + (1 - m) x_partner.

    ``simultaneous``: m = lambda_m outside a CutMix box and 1 - lambda_m inside (``box_only``: 1 outside), so
    lambda_m in {0, 1} is plain CutMix and an empty box plain MixUp. ``alternate``: per batch, plain CutMix or
    plain MixUp with even odds (timm/DeiT's switch).
    """
    if kind not in MSDA_KINDS:
        raise ConfigError(f"msda must be one of {', '.join(MSDA_KINDS)}, got {kind!r}")
    if soft_mask not in SOFT_MASKS:
        raise ConfigError(f"msda_soft_mask must be one of {', '.join(SOFT_MASKS)}, got {soft_mask!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    if kind == "none":
        return torch.ones(n, 1, height, width, device=device)
    box, _ = cutmix_box_mask(sample_lambda(n, cutmix_alpha, device=device), height, width, box="clip")
    lam_m = sample_lambda(n, mixup_alpha, device=device).view(n, 1, 1, 1)
    if kind == "alternate":
        if bool(torch.rand((), device=device) < 0.5):
            lam_m = torch.ones_like(lam_m)  # CutMix
        else:
            box = torch.zeros_like(box)  # MixUp
    return soft_box_mask(box, lam_m, soft_mask)


def soft_box_mask(box: torch.Tensor, lam_m: torch.Tensor, soft_mask: str = "complementary") -> torch.Tensor:
    """Binary CutMix box (n, 1, H, W) (1 = pasted from the partner) -> MixUp-valued weights of the image.

    The binary CutMix weights {1 outside, 0 inside} become {lambda_m, 1 - lambda_m} (``complementary``) or
    {1, 1 - lambda_m} (``box_only``: MixUp only inside the box); ``lam_m`` broadcasts as (n, 1, 1, 1).
    """
    if soft_mask not in SOFT_MASKS:
        raise ConfigError(f"msda_soft_mask must be one of {', '.join(SOFT_MASKS)}, got {soft_mask!r}")
    outside = lam_m if soft_mask == "complementary" else torch.ones_like(lam_m)
    return torch.where(box.bool(), 1.0 - lam_m, outside)


def apply_msda(
    x: torch.Tensor,
    targets: torch.Tensor,
    partner_x: torch.Tensor,
    partner_targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    visible: torch.Tensor | None = None,
    primary_dominant: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix images (n, C, H, W) with their partners under ``mask`` (n, 1, H, W); return images, targets, lambda.

    lambda is the image's share: over the whole image, or, with ``visible`` (n, 1, h|1, w|1, the token mask of
    the input the image is fed to), over the pixels that input shows. ``primary_dominant`` swaps the two roles
    where lambda < 0.5, so the image keeps the larger share of what is visible.
    """
    lam = corrected_lambda(mask, visible) if visible is not None else mask.mean(dim=(1, 2, 3))
    if primary_dominant:
        swap = lam < 0.5
        mask = torch.where(swap.view(-1, 1, 1, 1), 1.0 - mask, mask)
        lam = torch.where(swap, 1.0 - lam, lam)
    m = mask.to(x.dtype)
    mixed = m * x + (1.0 - m) * partner_x
    lam_t = lam.to(targets.dtype)[:, None]
    return mixed, lam_t * targets + (1.0 - lam_t) * partner_targets, lam
