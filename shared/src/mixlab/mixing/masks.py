"""Binary spatial masks for patch mixing (Cut-MixMo and the Table 3.3 ablation), on any grid.

Every generator takes the per-sample target ratios ``kappa`` (B,) and a grid size, and returns
``(mask, area)``: ``mask`` is float32 (B, 1, H, W) with values in {0, 1} (1 = the location belongs to the input
that owns the mask), ``area`` (B,) is the realised ``mask.mean()``. The realised area replaces kappa downstream
(mixing, w_r), because most shapes cannot hit kappa exactly (box clipping, integer borders, CowMask ignoring
kappa altogether). The grid is whatever is being mixed: pixels for in-pixel CutMix, the 32x32 mixing space of
the MIMO encoders, or a patch-token grid.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mixlab import rng as _rng
from mixlab.errors import ConfigError

BINARY_KINDS: tuple[str, ...] = ("cutmix", "hconcat", "vconcat", "patchup2d", "fmix", "cowmask")
BOX_MODES: tuple[str, ...] = ("clip", "inside")

MaskResult = tuple[torch.Tensor, torch.Tensor]


def _check_grid(kappa: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if kappa.ndim != 1:
        raise ConfigError(f"Mask generators take one ratio per sample, shape (B,); got {tuple(kappa.shape)}.")
    if height < 1 or width < 1:
        raise ConfigError(f"A mask grid must be at least 1x1, got {height}x{width}.")
    return kappa.to(_rng.wide_dtype(kappa.device)).clamp(0.0, 1.0)


def _finish(mask_bool: torch.Tensor) -> MaskResult:
    """(B, H, W) bool -> float mask (B, 1, H, W) and its realised area, computed by the same reduction."""
    mask = mask_bool.to(torch.float32).unsqueeze(1)
    return mask, mask.mean(dim=(1, 2, 3))


def _interval(start: torch.Tensor, stop: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size) bool: position in [start, stop) for each sample."""
    pos = torch.arange(size, device=start.device)
    return (pos[None, :] >= start[:, None]) & (pos[None, :] < stop[:, None])


def cutmix_box_mask(
    kappa: torch.Tensor, height: int, width: int, box: str = "clip", generator: torch.Generator | None = None
) -> MaskResult:
    """CutMix rectangle per sample (official ``_rand_bbox_of_area_lam``; spec §3.3).

    ``box="clip"`` (official): side ``int(W * sqrt(kappa))``, centre uniform over every cell, corners at
    centre -/+ side//2 clipped to the grid, so the realised area is biased low (E[area] <= kappa) and can be 0.
    ``box="inside"``: the same unclipped box (side ``2 * (int(W * sqrt(kappa)) // 2)``) placed uniformly so
    that it lies fully inside the grid; its area is then deterministic given kappa.
    """
    if box not in BOX_MODES:
        raise ConfigError(f"Unknown CutMix box mode {box!r}; choose one of {', '.join(BOX_MODES)}.")
    k = _check_grid(kappa, height, width)
    batch, device = k.shape[0], k.device
    cut = torch.sqrt(k)
    cut_w = torch.floor(width * cut).long()
    cut_h = torch.floor(height * cut).long()
    if box == "clip":
        cx = _rng.randint(width, (batch,), device, generator)
        cy = _rng.randint(height, (batch,), device, generator)
        x1 = (cx - cut_w // 2).clamp(0, width)
        x2 = (cx + cut_w // 2).clamp(0, width)
        y1 = (cy - cut_h // 2).clamp(0, height)
        y2 = (cy + cut_h // 2).clamp(0, height)
    else:
        side_w = 2 * (cut_w // 2)
        side_h = 2 * (cut_h // 2)
        u = _rng.rand((batch, 2), device, generator, dtype=k.dtype)
        x1 = torch.floor(u[:, 0] * (width - side_w + 1)).long().clamp(max=width - side_w)
        y1 = torch.floor(u[:, 1] * (height - side_h + 1)).long().clamp(max=height - side_h)
        x2, y2 = x1 + side_w, y1 + side_h
    rows = _interval(y1, y2, height)
    cols = _interval(x1, x2, width)
    return _finish(rows[:, :, None] & cols[:, None, :])


def _concat_mask(
    kappa: torch.Tensor, height: int, width: int, axis: str, random_side: bool, generator: torch.Generator | None
) -> MaskResult:
    k = _check_grid(kappa, height, width)
    batch, device = k.shape[0], k.device
    size = width if axis == "width" else height
    border = torch.floor(k * size).long()  # number of ones along the split axis
    flip = (
        (_rng.rand((batch,), device, generator) < 0.5)
        if random_side
        else torch.zeros(batch, dtype=torch.bool, device=device)
    )
    start = torch.where(flip, size - border, torch.zeros_like(border))
    line = _interval(start, start + border, size)  # (B, size)
    if axis == "width":
        mask = line[:, None, :].expand(batch, height, width)
    else:
        mask = line[:, :, None].expand(batch, height, width)
    return _finish(mask)


def hconcat_mask(
    kappa: torch.Tensor, height: int, width: int, random_side: bool = True, generator: torch.Generator | None = None
) -> MaskResult:
    """Horizontal concatenation in the thesis' sense (A.5.1, §9 A13): a **vertical** dividing line.

    The left/right part of width ``int(kappa * W)`` gets the ones; a per-sample fair coin (official
    ``stack_rdflip``) decides which side. Unlike the official helper, the coin only moves the ones and keeps
    their count at ``int(kappa * W)``; the role swap of the mixing block already symmetrises ownership.
    """
    return _concat_mask(kappa, height, width, "width", random_side, generator)


def vconcat_mask(
    kappa: torch.Tensor, height: int, width: int, random_side: bool = True, generator: torch.Generator | None = None
) -> MaskResult:
    """Vertical concatenation in the thesis' sense: a **horizontal** dividing line (top/bottom parts)."""
    return _concat_mask(kappa, height, width, "height", random_side, generator)


def patchup2d_mask(
    kappa: torch.Tensor, height: int, width: int, block_size: int = 7, generator: torch.Generator | None = None
) -> MaskResult:
    """PatchUp hard, one 2-D mask shared by all channels (spec §3.5).

    Each cell is a block seed with probability gamma' = kappa * S^2 / (block^2 * (S - block + 1)^2) (the
    DropBlock recalibration, written for non-square grids as H*W / ((H-block+1)(W-block+1))); the mask is the
    stride-1 max-pool of the seeds with a block x block window, so every seed opens a block of ones.
    """
    k = _check_grid(kappa, height, width)
    block = block_size
    if block < 1 or block > min(height, width):
        raise ConfigError(f"The PatchUp block size ({block}) must be between 1 and the grid size ({height}x{width}).")
    batch, device = k.shape[0], k.device
    gamma = k * (height * width) / (block**2 * (height - block + 1) * (width - block + 1))
    seeds = (
        _rng.rand((batch, 1, height, width), device, generator, dtype=k.dtype)
        < gamma.clamp(max=1.0)[:, None, None, None]
    )
    opened = F.max_pool2d(seeds.to(torch.float32), kernel_size=block, stride=1, padding=block // 2)
    return _finish(opened[:, 0, :height, :width] > 0.5)


def fmix_mask(
    kappa: torch.Tensor, height: int, width: int, decay_power: float = 3.0, generator: torch.Generator | None = None
) -> MaskResult:
    """FMix (Harris et al. 2020): top-``floor(kappa*H*W)`` cells of a low-frequency random image.

    The random image is the real inverse FFT of a complex Gaussian spectrum scaled by
    ``1 / max(freq, 1/max(H, W))^decay_power``; thresholding at its (1 - kappa) quantile yields a few large
    contiguous blobs. Not in the official MixMo code (spec §9 A14), so the paper's defaults are used.
    """
    k = _check_grid(kappa, height, width)
    batch, device = k.shape[0], k.device
    fy = torch.fft.fftfreq(height, dtype=k.dtype, device=device)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=k.dtype, device=device)[None, :]
    freqs = torch.sqrt(fx**2 + fy**2)
    scale = 1.0 / freqs.clamp_min(1.0 / max(height, width)) ** decay_power
    coeffs = _rng.randn((batch, 2, height, width // 2 + 1), device, generator, dtype=k.dtype)
    spectrum = torch.complex(coeffs[:, 0], coeffs[:, 1]) * scale
    field = torch.fft.irfft2(spectrum, s=(height, width)).reshape(batch, -1)
    order = field.argsort(dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(height * width, device=device).expand(batch, -1))
    num = torch.floor(k * height * width).long()
    return _finish((ranks < num[:, None]).reshape(batch, height, width))


def _gaussian_kernels(sigma: torch.Tensor, sigma_max: float) -> torch.Tensor:
    """Per-sample 1-D Gaussian kernels (B, size), size = 2*ceil(3*sigma_max)+1 as in the official code."""
    size = 2 * math.ceil(3.0 * sigma_max) + 1
    n = torch.arange(size, dtype=sigma.dtype, device=sigma.device) - (size - 1) / 2.0
    sig2 = 2.0 * sigma[:, None] ** 2
    return torch.exp(-(n[None, :] ** 2) / sig2) / torch.sqrt(math.pi * sig2)


def _blur_matrix(kernels: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n, n) matrices A with (A @ v)[i] = sum_j k[j - i + size//2] v[j]: a zero-padded 1-D convolution.

    Blurring rows and columns with these matrices equals the official 2-D convolution with the outer-product
    kernel and zero padding, at the cost of two tiny batched matmuls instead of a 97x97 convolution.
    """
    size = kernels.shape[1]
    pos = torch.arange(n, device=kernels.device)
    offset = pos[None, :] - pos[:, None] + size // 2  # (n, n): kernel tap linking output i to input j
    valid = (offset >= 0) & (offset < size)
    taps = kernels[:, offset.clamp(0, size - 1)]  # (B, n, n)
    return taps * valid.to(kernels.dtype)


def cowmask_mask(
    kappa: torch.Tensor,
    height: int,
    width: int,
    p_min: float = 0.2,
    p_max: float = 0.8,
    sigma_min: float = 4.0,
    sigma_max: float = 16.0,
    generator: torch.Generator | None = None,
) -> MaskResult:
    """CowMask (French et al.; official MixMo ``_cow_mask``). **Ignores kappa** (only its batch size is used).

    Per sample: p ~ U(p_min, p_max), sigma log-uniform in [sigma_min, sigma_max]; N(0,1) noise is blurred by a
    zero-padded Gaussian of that sigma (kernel size fixed by sigma_max, applied separably, which equals the
    official outer-product kernel) and thresholded at mean + sqrt(2) * erfinv(2p - 1) * std, so that about a
    fraction p of the cells, in cow-spot shapes, are ones.
    """
    if not (0.0 < p_min <= p_max < 1.0) or not (0.0 < sigma_min <= sigma_max):
        raise ConfigError("CowMask needs 0 < p_min <= p_max < 1 and 0 < sigma_min <= sigma_max.")
    k = _check_grid(kappa, height, width)
    batch, device = k.shape[0], k.device
    u = _rng.rand((batch, 2), device, generator, dtype=k.dtype)
    proba = p_min + u[:, 0] * (p_max - p_min)
    sigma = torch.exp(math.log(sigma_min) + u[:, 1] * (math.log(sigma_max) - math.log(sigma_min)))
    noise = _rng.randn((batch, height, width), device, generator, dtype=k.dtype)
    kernels = _gaussian_kernels(sigma, sigma_max)  # (B, size)
    blurred = _blur_matrix(kernels, height) @ noise @ _blur_matrix(kernels, width).transpose(1, 2)
    flat = blurred.reshape(batch, -1)
    mean, std = flat.mean(1), flat.std(1)
    threshold = mean + math.sqrt(2.0) * torch.erfinv(2.0 * proba - 1.0) * std
    return _finish(blurred <= threshold[:, None, None])


_GENERATORS: dict[str, Callable[..., MaskResult]] = {
    "cutmix": cutmix_box_mask,
    "hconcat": hconcat_mask,
    "vconcat": vconcat_mask,
    "patchup2d": patchup2d_mask,
    "fmix": fmix_mask,
    "cowmask": cowmask_mask,
}


def kind_option_names(kind: str) -> tuple[str, ...]:
    """The keyword options a mask kind accepts (e.g. ``box`` for cutmix, ``block_size`` for patchup2d)."""
    if kind not in _GENERATORS:
        raise ConfigError(f"Unknown binary mask {kind!r}; choose one of {', '.join(BINARY_KINDS)}.")
    params = inspect.signature(_GENERATORS[kind]).parameters
    return tuple(n for n in params if n not in ("kappa", "height", "width", "generator"))


def binary_mask(
    kind: str,
    kappa: torch.Tensor,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    **kind_options: object,
) -> MaskResult:
    """Dispatch to the mask generator ``kind`` (one of ``BINARY_KINDS``); returns ``(mask, area)``."""
    allowed = kind_option_names(kind)
    unknown = sorted(set(kind_options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"Option(s) {', '.join(unknown)} do not apply to the {kind!r} mask; it accepts: "
            f"{', '.join(allowed) if allowed else 'no options'}."
        )
    return _GENERATORS[kind](kappa, height, width, generator=generator, **kind_options)
