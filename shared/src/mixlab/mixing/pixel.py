"""In-pixel MSDA (MixUp, CutMix) on image batches, soft targets and the soft-label cross-entropy.

Used by single-network baselines (official: lambda ~ Beta(1, 1), applied to each sample with probability 0.5,
partner drawn by the caller, e.g. uniformly from the whole training set) and by MixMo's combination with
in-pixel CutMix (spec §3.9), where lambda is corrected for the feature-space MixMo mask of the input.

The partner is given by the caller, either as images of the same shape as ``x`` or as a 1-D index tensor
into ``x`` (a within-batch permutation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mixlab import rng as _rng
from mixlab.errors import ConfigError
from mixlab.mixing.masks import cutmix_box_mask
from mixlab.mixing.ratios import sample_lambda
from mixlab.transfer import to_device

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


def soft_targets(y: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot float targets (N, K) from integer labels (N,), the common currency of every mixed loss."""
    if y.ndim != 1 or y.is_floating_point() or y.is_complex():
        raise ConfigError(f"soft_targets expects integer labels of shape (N,), got {y.dtype} {tuple(y.shape)}.")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ConfigError(
            f"Labels must lie in [0, {num_classes}) to build soft targets; got values in "
            f"[{int(y.min())}, {int(y.max())}] (unlabeled samples, marked -1, cannot be mixed)."
        )
    return F.one_hot(y.long(), num_classes).to(dtype)


def mix_soft_targets(targets_a: torch.Tensor, targets_b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """lam * t_a + (1 - lam) * t_b per sample: the label of an image mixed with ratio lam (N,)."""
    lam = lam.to(targets_a.dtype)[:, None]
    return lam * targets_a + (1.0 - lam) * targets_b


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-sum_k t_k log softmax(logits)_k per sample; equals ``F.cross_entropy`` on one-hot targets.

    The targets are not renormalised: the official MixMo loss multiplies them by w_r, which must scale the loss.
    """
    if reduction not in REDUCTIONS:
        raise ConfigError(f"Unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}.")
    if logits.shape != soft_targets.shape:
        raise ConfigError(
            f"Logits {tuple(logits.shape)} and soft targets {tuple(soft_targets.shape)} must have the same shape."
        )
    loss = -(soft_targets.to(logits.dtype) * torch.log_softmax(logits, dim=-1)).sum(-1)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _partner_images(x: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    if partner.ndim == 1 and not partner.is_floating_point():
        if partner.shape[0] != x.shape[0]:
            raise ConfigError(f"Need one partner index per image ({x.shape[0]}), got {partner.shape[0]}.")
        return x[to_device(partner, x.device)]
    if partner.shape != x.shape:
        raise ConfigError(
            f"Partner images {tuple(partner.shape)} must have the shape of the batch {tuple(x.shape)}, or be "
            "given as a 1-D index tensor into the batch."
        )
    return to_device(partner, x.device)


def _applied(batch: int, prob: float, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    if not 0.0 <= prob <= 1.0:
        raise ConfigError(f"The in-pixel mixing probability must lie in [0, 1], got {prob}.")
    return _rng.rand((batch,), device, generator) < prob


def pixel_mixup(
    x: torch.Tensor,
    partner: torch.Tensor,
    alpha: float = 1.0,
    prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp lam * x + (1 - lam) * x_partner with lam ~ Beta(alpha, alpha), for each sample with prob ``prob``.

    Returns the mixed images and lam (B,); samples left alone keep their image exactly and lam = 1.
    """
    if not x.is_floating_point():
        raise ConfigError("Pixel MixUp interpolates pixel values: convert the images to float first.")
    other = _partner_images(x, partner)
    batch = x.shape[0]
    lam = sample_lambda(batch, alpha, generator, x.device)
    applied = _applied(batch, prob, x.device, generator)
    lam = torch.where(applied, lam, torch.ones_like(lam))
    view = (batch,) + (1,) * (x.ndim - 1)
    mixed = lam.to(x.dtype).view(view) * x + (1.0 - lam.to(x.dtype)).view(view) * other
    return torch.where(applied.view(view), mixed, x), lam


def corrected_lambda(pixel_mask: torch.Tensor, mixing_mask: torch.Tensor) -> torch.Tensor:
    """lambda* = sum(1_m * 1_M) / sum(1_M) (spec §3.9 step 2): the image's share inside its MixMo mask.

    pixel_mask (B, 1, H, W) at image resolution; mixing_mask (B, 1, h, w) the input's feature-space mask, or
    (B, 1, 1, 1) for a constant (linear) mask, for which lambda* is exactly mean(pixel_mask). A finer pixel
    grid (stem stride > 1, e.g. PreActResNet on Tiny ImageNet) is area-pooled down to the mixing grid first.
    """
    if pixel_mask.ndim != 4 or mixing_mask.ndim != 4 or mixing_mask.shape[:2] != pixel_mask.shape[:2]:
        raise ConfigError(
            f"corrected_lambda needs masks (B, 1, H, W) and (B, 1, h|1, w|1); got {tuple(pixel_mask.shape)} and "
            f"{tuple(mixing_mask.shape)}."
        )
    lam = pixel_mask.float().mean(dim=(1, 2, 3))
    h, w = mixing_mask.shape[2:]
    if (h, w) == (1, 1):
        return lam
    H, W = pixel_mask.shape[2:]
    if H % h or W % w:
        raise ConfigError(f"The pixel grid {H}x{W} is not a whole multiple of the mixing grid {h}x{w}.")
    pooled = F.avg_pool2d(pixel_mask.float(), kernel_size=(H // h, W // w)) if (H, W) != (h, w) else pixel_mask.float()
    weight = mixing_mask.float()
    total = weight.sum(dim=(1, 2, 3))
    inside = (pooled * weight).sum(dim=(1, 2, 3))
    # An input with an empty MixMo mask contributes nothing; keep its plain lambda rather than 0/0.
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(total.dtype).tiny), lam)


def pixel_cutmix(
    x: torch.Tensor,
    partner: torch.Tensor,
    alpha: float = 1.0,
    prob: float = 0.5,
    generator: torch.Generator | None = None,
    mixing_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix: paste a box of the partner into x, for each sample with probability ``prob``.

    lam ~ Beta(alpha, alpha), the box follows the MixMo box algorithm (clipped at the border) and lam becomes
    the realised share of x, i.e. the mixed image is 1_m * x + (1 - 1_m) * x_partner with lam = mean(1_m).
    With ``mixing_mask`` (this input's MixMo mask, (B, 1, h|1, w|1)), lam is replaced by lambda* (see
    :func:`corrected_lambda`) and, where lambda* < 0.5, the roles of x and partner are swapped so that the batch
    image stays dominant: the image becomes 1_m * x_partner + (1 - 1_m) * x and lambda* <- 1 - lambda*.
    Returns the mixed images and lam (B,) (1 for samples left alone, whose image is unchanged).
    """
    other = _partner_images(x, partner)
    batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    lam = sample_lambda(batch, alpha, generator, x.device)
    box, area = cutmix_box_mask(lam, height, width, box="clip", generator=generator)
    applied = _applied(batch, prob, x.device, generator)
    keep = box.to(torch.bool)  # (B, 1, H, W): where x is kept
    if mixing_mask is not None:
        lam_star = corrected_lambda(box, to_device(mixing_mask, x.device))
        swap = applied & (lam_star < 0.5)
        keep = keep ^ swap[:, None, None, None]
        area = torch.where(swap, 1.0 - lam_star, lam_star)
    mixed = torch.where(keep, x, other)
    view = (batch,) + (1,) * (x.ndim - 1)
    out = torch.where(applied.view(view), mixed, x)
    return out, torch.where(applied, area, torch.ones_like(area))


def fourier_amplitude_swap(content: torch.Tensor, style: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """FDA (Yang and Soatto, CVPR 2020): ``content`` with the low-frequency amplitude spectrum of ``style``.

    Per image and channel, the centred (fftshift) amplitude in the square of half-side ``floor(beta * min(H, W))``
    around the zero frequency is replaced by ``style``'s; the phase and the rest of the amplitude stay ``content``'s.
    Works on any real images of the same shape (B, C, H, W); give pixel values (0..255 or 0..1), not normalised
    ones, so that the zero-frequency term keeps its sign. ``beta = 0`` (or a band of 0 pixels) returns ``content``.
    """
    if content.shape != style.shape or content.dim() != 4:
        raise ConfigError(
            f"FDA needs two (B, C, H, W) batches of one shape, got {tuple(content.shape)}, {tuple(style.shape)}"
        )
    if not 0.0 <= beta <= 0.5:
        raise ConfigError(f"FDA's beta is a share of the image side in [0, 0.5], not {beta}")
    h, w = content.shape[-2:]
    b = int(beta * min(h, w))
    if b == 0:
        return content.clone()
    spectrum_c = torch.fft.fftshift(torch.fft.fft2(content.float()), dim=(-2, -1))
    spectrum_s = torch.fft.fftshift(torch.fft.fft2(style.float()), dim=(-2, -1))
    amplitude, phase = spectrum_c.abs(), spectrum_c.angle()
    cy, cx = h // 2, w // 2
    window = (..., slice(cy - b, cy + b + 1), slice(cx - b, cx + b + 1))
    amplitude[window] = spectrum_s.abs()[window]
    mixed = torch.polar(amplitude, phase)
    return torch.fft.ifft2(torch.fft.ifftshift(mixed, dim=(-2, -1))).real.to(content.dtype)
