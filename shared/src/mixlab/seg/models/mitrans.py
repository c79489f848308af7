"""MITrans (Mutual Information Transfer, GuidedMix-Net Sec. 3.2, Eqs. 4-5, Fig. 4; spec guidedmix §2.5).

A MITrans block is a decoder up-block: an embedded-Gaussian non-local block on the deep feature v_j, then
PixelShuffle up-sampling and U-Net skip fusion with the encoder feature v_{j-1} of twice the spatial size.

:class:`NonLocal2d` (Eq. 5): Q = Conv1x1(v): C -> C/2, K = Conv1x1(v): C -> C/2, V = Conv1x1(v): C -> C,
A = softmax_m(Q_n . K_m / tau) over the key positions m (the paper's "over the channel dimension" can only mean the
key axis of the N x N matrix, A4), v' = A V + v. tau = sqrt(C/2) when ``scale`` (an assumption; the paper has no
scaling). With ``zero_init`` V's weight and bias start at zero so the block starts as the identity, exactly.
Attention runs inside each image: the inter-image transfer comes from the mixed input holding both images.
The forward uses ``F.scaled_dot_product_attention`` (fused and memory-lean: the N x N matrix is not stored on
GPU kernels that support it); ``use_sdpa=False`` gives the explicit softmax form, and :meth:`NonLocal2d.attention`
returns A itself.

:class:`MITransBlock`: u = PixelShuffle_2(ReLU(Conv1x1(v'): C -> 4 C_o)) (ICNR-initialised so that the shuffle
starts as nearest-neighbour up-sampling), bilinearly resized to the skip's size when they differ (odd crops such
as 321), then ConvBNReLU3x3(cat[u, skip]) -> C_o and ConvBNReLU3x3 -> C_o. With ``scale_factor=1`` (an input
already at the skip's resolution, i.e. a dilated encoder at output stride 8/16) the shuffle is skipped and the
1x1 conv maps C -> C_o.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixlab.errors import ConfigError

#: A function of a model's feature list returning another one to decode in the same forward (feature-level mixing).
FeatureMix = Callable[[list[Tensor]], list[Tensor]]


class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block with a residual: ``x + reshape(softmax(Q K^T / tau) V)`` per image."""

    def __init__(self, channels: int, scale: bool = True, zero_init: bool = True, use_sdpa: bool = True) -> None:
        super().__init__()
        if channels < 1:
            raise ConfigError(f"NonLocal2d needs at least one channel, got {channels}.")
        inter = max(channels // 2, 1)
        self.channels, self.inter_channels = channels, inter
        self.query = nn.Conv2d(channels, inter, kernel_size=1)
        self.key = nn.Conv2d(channels, inter, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.softmax_scale = 1.0 / math.sqrt(inter) if scale else 1.0
        self.use_sdpa = use_sdpa
        if zero_init:
            nn.init.zeros_(self.value.weight)
            nn.init.zeros_(self.value.bias)

    def _project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q, K as (B, N, C/2) and V as (B, N, C) with N = h * w positions in row-major order."""
        q = self.query(x).flatten(2).transpose(1, 2)
        k = self.key(x).flatten(2).transpose(1, 2)
        v = self.value(x).flatten(2).transpose(1, 2)
        return q, k, v

    def attention(self, x: Tensor) -> Tensor:
        """The attention matrix A (B, N, N): row n is the softmax over key positions m of Q_n . K_m / tau."""
        q, k, _ = self._project(x)
        return torch.softmax(torch.bmm(q, k.transpose(1, 2)) * self.softmax_scale, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self._project(x)
        if self.use_sdpa:
            # One head: (B, 1, N, d). SDPA's softmax is over the key axis, like attention().
            y = F.scaled_dot_product_attention(
                q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=self.softmax_scale
            ).squeeze(1)
        else:
            y = torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)) * self.softmax_scale, dim=-1), v)
        return x + y.transpose(1, 2).reshape(b, c, h, w)


def icnr_(weight: Tensor, upscale: int = 2) -> Tensor:
    """ICNR initialisation (Aitken et al. 2017) of a conv feeding ``PixelShuffle(upscale)``, in place.

    Each group of ``upscale**2`` output channels that the shuffle spreads over one output channel gets the same
    kaiming-normal kernel, so the shuffled output starts as a nearest-neighbour up-sampling (no checkerboard).
    """
    groups = upscale * upscale
    out_channels = weight.shape[0]
    if out_channels % groups:
        raise ValueError(f"ICNR needs a multiple of {groups} output channels, got {out_channels}")
    sub = torch.empty(out_channels // groups, *weight.shape[1:], dtype=weight.dtype, device=weight.device)
    nn.init.kaiming_normal_(sub, nonlinearity="relu")
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(groups, dim=0))  # PixelShuffle reads channel c * r^2 + k into channel c
    return weight


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> ReLU, kaiming-initialised."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        super().__init__(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class MITransBlock(nn.Module):
    """Decoder up-block: optional :class:`NonLocal2d` on the deep input, PixelShuffle up-sampling, skip fusion.

    ``forward(x, skip)`` maps (B, in_channels, h, w) and (B, skip_channels, H_s, W_s) to (B, out_channels, H_s,
    W_s) for any skip size (normally 2h x 2w, or h x w with ``scale_factor=1``).
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        nonlocal_: bool = True,
        *,
        scale_factor: int = 2,
        nl_scale: bool = True,
        nl_zero_init: bool = True,
        icnr: bool = True,
    ) -> None:
        super().__init__()
        if scale_factor not in (1, 2):
            raise ConfigError(f"MITransBlock up-samples by 1 or 2, got scale_factor={scale_factor}.")
        self.nonlocal_block = NonLocal2d(in_channels, scale=nl_scale, zero_init=nl_zero_init) if nonlocal_ else None
        self.scale_factor = scale_factor
        self.expand = nn.Conv2d(in_channels, out_channels * scale_factor**2, kernel_size=1)
        if scale_factor > 1 and icnr:
            icnr_(self.expand.weight, scale_factor)
        else:
            nn.init.kaiming_normal_(self.expand.weight, nonlinearity="relu")
        nn.init.zeros_(self.expand.bias)
        self.relu = nn.ReLU(inplace=True)
        self.shuffle = nn.PixelShuffle(scale_factor) if scale_factor > 1 else nn.Identity()
        self.fuse = nn.Sequential(
            ConvBNReLU(out_channels + skip_channels, out_channels), ConvBNReLU(out_channels, out_channels)
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        if self.nonlocal_block is not None:
            x = self.nonlocal_block(x)
        u = self.shuffle(self.relu(self.expand(x)))
        if u.shape[-2:] != skip.shape[-2:]:
            u = F.interpolate(u, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([u, skip], dim=1))
