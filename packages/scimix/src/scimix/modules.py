"""SciMix's modules (spec samosa-scimix §3.2, thesis Tables A.7-A.11).

- `E_c` (`SemanticEncoder`): the WRN trunk of `mixlab.models.WideResTrunk`, BN, LeakyReLU(0.1), global average
  pooling: the 128-d semantic code ``z_c``, which is also the generator's style.
- `C` (`ClassifierHead`): a primary and a stability linear head on ``z_c``; `ScimixNet` is ``C(E_c(x))``, the
  classifier of both phases (the generator's criterion, then the new classifier ``f``).
- `E_r` (`ContextEncoder`): its own trunk and a 1x1 convolution to 8 channels: the spatial context code ``z_r``
  (8 x H/4 x W/4), the generator's input.
- `G` (`StyleGenerator`): five `StyleResBlock`s (StyleGAN2 modulated convolutions, Swapping-Autoencoder layout,
  the spec's [REC]) on ``z_r`` with the style ``z_c``, the last two up-sampling x2, and a linear 3x3 output conv:
  images are rendered in the standardised space.
- `D` (`Discriminator`): a StyleGAN2-like residual discriminator without normalisation or minibatch-stddev.
- `StructuralAdapters`: the two extra layers of the "structural z_c" ablation (``style_code=nonsemantic``).

With WRN-28-2 and K = 10: E_c 1,466,320, C 2,580, E_r 1,467,096, G 527,947 (default widths), D 887,841
parameters (tested).

Initialisation (a choice; the sources say "default PyTorch values unless specified"): every layer keeps PyTorch's
default initialisation, the modulated convolutions included (Kaiming-uniform weights used as they are, zero biases),
and each style affine ``A`` is a plain ``nn.Linear`` with its bias set to 1. The generator phase trains every module
with one SGD optimizer (§3.7); with StyleGAN2's equalized learning rate (N(0, 1) weights scaled by 1/sqrt(fan_in) at
run time) SGD would move the modulated weights ~fan_in times slower than the rest of the model, since demodulation
makes them scale-invariant. ``equalized_lr=True`` (ModulatedConv2d, StyleResBlock, StyleGenerator) gives StyleGAN2's
scheme for Adam-style runs. Demodulation makes the forward pass independent of the weights' scale either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.models import WideResTrunk
from torch import Tensor, nn

SLOPE = 0.1  # LeakyReLU slope of the encoders (Tables A.5, A.8)
GAN_SLOPE = 0.2  # LeakyReLU slope of G and D (StyleGAN2)
DEMOD_EPS = 1e-8
UPSAMPLE_MODES = ("bilinear", "nearest")


def _upsample(x: Tensor, mode: str) -> Tensor:
    if mode == "bilinear":
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return F.interpolate(x, scale_factor=2, mode="nearest")


def _check_upsample_mode(mode: str) -> None:
    if mode not in UPSAMPLE_MODES:
        raise ConfigError(f"upsample_mode must be one of {', '.join(UPSAMPLE_MODES)}, not {mode!r}")


# -- encoders and classifier ------------------------------------------------------------------------------------


class SemanticEncoder(nn.Module):
    """`E_c` (Table A.8): x (B, 3, H, W) -> z_c (B, C), C = ``num_features`` (128 for WRN-28-2)."""

    def __init__(self, depth: int = 28, width: int = 2, *, slope: float = SLOPE):
        super().__init__()
        self.trunk = WideResTrunk(depth, width, slope=slope)
        self.num_features = self.trunk.num_features
        self.bn = nn.BatchNorm2d(self.num_features)
        self.slope = slope

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(the pre-pool map after BN-LeakyReLU (B, C, H/4, W/4), z_c (B, C))."""
        h, _ = self.trunk(x)
        h = F.leaky_relu(self.bn(h), self.slope)
        return h, h.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)[1]


class ClassifierHead(nn.Module):
    """`C` (Table A.7): z_c (B, C) -> (B, 2, K), the primary head's logits first; (B, K) with ``heads=1``."""

    def __init__(self, channels: int, num_classes: int, heads: int = 2):
        super().__init__()
        if heads not in (1, 2):
            raise ConfigError(f"the classifier has 1 or 2 heads, not {heads}")
        self.primary = nn.Linear(channels, num_classes)
        self.stability = nn.Linear(channels, num_classes) if heads == 2 else None

    def forward(self, z_c: Tensor) -> Tensor:
        if self.stability is None:
            return self.primary(z_c)
        return torch.stack([self.primary(z_c), self.stability(z_c)], dim=1)


class ScimixNet(nn.Module):
    """The classifier ``C(E_c(x))`` of both phases: x -> (B, 2, K) (or (B, K) with one head)."""

    def __init__(self, depth: int, width: int, num_classes: int, *, heads: int = 2):
        super().__init__()
        self.encoder = SemanticEncoder(depth, width)
        self.classifier = ClassifierHead(self.encoder.num_features, num_classes, heads)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.encoder(x))


class ContextEncoder(nn.Module):
    """`E_r` (Table A.9): x -> z_r (B, ``code_channels``, H/4, W/4), a 1x1 convolution (with bias) straight on the
    trunk's last map (no BN or activation before it, as tabled)."""

    def __init__(self, depth: int = 28, width: int = 2, code_channels: int = 8):
        super().__init__()
        self.trunk = WideResTrunk(depth, width, slope=SLOPE)
        self.num_features = self.trunk.num_features
        self.code_channels = code_channels
        self.conv = nn.Conv2d(self.num_features, code_channels, 1)

    def trunk_features(self, x: Tensor) -> Tensor:
        """The trunk's last map (B, C, H/4, W/4)."""
        return self.trunk(x)[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.trunk_features(x))


class StructuralAdapters(nn.Module):
    """The "structural z_c" ablation (``style_code=nonsemantic``, Table IV, spec §3.10 [REC]): the spatial input is a
    1x1 convolution of E_c's pre-pool map, the style the pooled E_r trunk after its own BN-LeakyReLU(0.1)."""

    def __init__(self, channels: int, code_channels: int = 8):
        super().__init__()
        self.spatial = nn.Conv2d(channels, code_channels, 1)
        self.bn = nn.BatchNorm2d(channels)

    def spatial_from_semantic(self, pre_pool_map: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, code_channels, h, w)."""
        return self.spatial(pre_pool_map)

    def style_from_context(self, trunk_map: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, C)."""
        return F.leaky_relu(self.bn(trunk_map), SLOPE).mean(dim=(2, 3))


# -- generator ---------------------------------------------------------------------------------------------------


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution (spec §3.2), activation included:

    w = A(s) (A = Linear(style_dim -> in_ch), bias initialised to 1); W' = W * w_i (per sample); with ``demodulate``
    W'' = W' / sqrt(sum_{i,k} W'^2 + 1e-8) (per sample and output channel); a grouped convolution with the batch
    folded into the groups; [+ per-pixel noise times a learned per-channel scale, with ``use_noise``]; + bias; then
    LeakyReLU(0.2) * sqrt(2) when ``activate`` (the default). With ``upsample``, x is first up-sampled x2
    (``upsample_mode`` bilinear or nearest), "same" padding keeps the size. The noise scales start at 0 (StyleGAN2).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, style_dim: int = 128, *, demodulate: bool = True,
                 upsample: bool = False, upsample_mode: str = "bilinear", activate: bool = True,
                 use_noise: bool = False, equalized_lr: bool = False):  # fmt: skip
        super().__init__()
        _check_upsample_mode(upsample_mode)
        self.in_ch, self.out_ch, self.kernel = in_ch, out_ch, kernel
        self.demodulate, self.activate = demodulate, activate
        self.upsample, self.upsample_mode = upsample, upsample_mode
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel, kernel))
        if equalized_lr:
            nn.init.normal_(self.weight)
            self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        else:
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default
            self.scale = 1.0
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.affine = nn.Linear(style_dim, in_ch)
        nn.init.ones_(self.affine.bias)
        self.noise_strength = nn.Parameter(torch.zeros(out_ch)) if use_noise else None

    def modulated_weight(self, style: Tensor) -> Tensor:
        """The per-sample kernels (B, out_ch, in_ch, k, k) for the styles (B, style_dim)."""
        w = self.affine(style)  # (B, in_ch)
        weight = self.weight[None] * self.scale * w[:, None, :, None, None]
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + DEMOD_EPS)
        return weight

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        if self.upsample:
            x = _upsample(x, self.upsample_mode)
        b, _, h, w = x.shape
        weight = self.modulated_weight(style).reshape(b * self.out_ch, self.in_ch, self.kernel, self.kernel)
        y = F.conv2d(x.reshape(1, b * self.in_ch, h, w), weight, padding=self.kernel // 2, groups=b)
        y = y.reshape(b, self.out_ch, y.shape[-2], y.shape[-1])
        if self.noise_strength is not None:
            noise = torch.randn(b, 1, y.shape[-2], y.shape[-1], device=y.device, dtype=y.dtype)
            y = y + noise * self.noise_strength[None, :, None, None]
        y = y + self.bias[None, :, None, None]
        if self.activate:
            y = F.leaky_relu(y, GAN_SLOPE) * math.sqrt(2)
        return y


class StyleResBlock(nn.Module):
    """(res + skip) / sqrt(2), res = ModConv3x3(out->out)(ModConv3x3(in->out, upsample)(x, s), s) (each with its
    LeakyReLU(0.2)*sqrt(2)); skip = x when in == out and no up-sampling, else Conv1x1(in->out, no bias)(x) up-sampled
    x2 (same mode) when ``upsample`` (a 1x1 convolution commutes with the up-sampling)."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, *, upsample: bool = False,
                 upsample_mode: str = "bilinear", use_noise: bool = False, equalized_lr: bool = False):  # fmt: skip
        super().__init__()
        opts = {"upsample_mode": upsample_mode, "use_noise": use_noise, "equalized_lr": equalized_lr}
        self.conv1 = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample, **opts)
        self.conv2 = ModulatedConv2d(out_ch, out_ch, 3, style_dim, **opts)
        self.upsample, self.upsample_mode = upsample, upsample_mode
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False) if in_ch != out_ch or upsample else None

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        res = self.conv2(self.conv1(x, style), style)
        skip = x
        if self.skip is not None:
            skip = self.skip(x)
            if self.upsample:
                skip = _upsample(skip, self.upsample_mode)
        return (res + skip) / math.sqrt(2)


class StyleGenerator(nn.Module):
    """`G` (Table A.10): (z_c (B, style_dim), z_r (B, code_channels, h, w)) -> image (B, 3, 4h, 4w) (one x2 per
    up-sampling block). ``blocks`` hold the StyleResBlocks, ``out`` the linear 3x3 output convolution; with
    ``mapping_layers`` > 0 an MLP (Linear + LeakyReLU(0.2), n times) maps z_c to the style; with ``normalize_codes``
    z_c and z_r are first divided by their per-sample L2 norms (z_r's over all its entries)."""

    def __init__(self, style_dim: int = 128, code_channels: int = 8, widths: Sequence[int] = (32, 64, 128, 64, 32),
                 upsample: Sequence[bool] = (False, False, False, True, True), *, use_noise: bool = False,
                 upsample_mode: str = "bilinear", mapping_layers: int = 0, normalize_codes: bool = False,
                 equalized_lr: bool = False):  # fmt: skip
        super().__init__()
        widths, upsample = tuple(widths), tuple(upsample)
        if len(widths) != len(upsample) or not widths:
            raise ConfigError(
                f"the generator needs one up-sampling flag per block: widths {widths}, upsample {upsample}"
            )
        if mapping_layers < 0:
            raise ConfigError(f"mapping_layers must be >= 0, not {mapping_layers}")
        _check_upsample_mode(upsample_mode)
        self.style_dim, self.code_channels, self.normalize_codes = style_dim, code_channels, normalize_codes
        layers: list[nn.Module] = []
        for _ in range(mapping_layers):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(GAN_SLOPE)]
        self.mapping = nn.Sequential(*layers)
        blocks, in_ch = [], code_channels
        for out_ch, up in zip(widths, upsample):
            blocks.append(StyleResBlock(in_ch, out_ch, style_dim, upsample=up, upsample_mode=upsample_mode,
                                        use_noise=use_noise, equalized_lr=equalized_lr))  # fmt: skip
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(in_ch, 3, 3, padding=1)

    def style(self, z_c: Tensor) -> Tensor:
        """The style every block receives: z_c (normalised, mapped, as configured)."""
        if self.normalize_codes:
            z_c = F.normalize(z_c, dim=1)
        return self.mapping(z_c)

    def forward(self, z_c: Tensor, z_r: Tensor) -> Tensor:
        s = self.style(z_c)
        h = z_r
        if self.normalize_codes:
            h = h / h.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
        for block in self.blocks:
            h = block(h, s)
        return self.out(h)


# -- discriminator -----------------------------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
    """res = LReLU(Conv3x3(in->out, stride 2)(LReLU(Conv3x3(in->in)(x)))), skip = Conv1x1(in->out)(AvgPool2(x)),
    output (res + skip) / sqrt(2): halves H and W (even sizes). The 3x3 convolutions have biases, the skip has none
    (StyleGAN2)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        res = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), GAN_SLOPE)), GAN_SLOPE)
        return (res + self.skip(F.avg_pool2d(x, 2))) / math.sqrt(2)


class Discriminator(nn.Module):
    """`D` (Table A.11): image (B, 3, S, S) -> logit (B, 1) (``D(.)`` of the losses is its sigmoid).

    ``conv1`` (stride 2) and one `DiscriminatorBlock` per entry of ``widths`` after the first: for S = 32 the maps are
    32x16x16, 64x8x8, 128x4x4, 256x2x2. Larger images get extra blocks of the last width until the map is at most 3x3
    (spec §3.7: 64 -> 2x2, 96 -> 3x3); the first linear layer takes the flattened map (1024 values at 32 px).
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), hidden: int = 256, image_size: int = 32):
        super().__init__()
        widths = tuple(widths)
        if not widths:
            raise ConfigError("the discriminator needs at least one width")
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=2, padding=1)
        side = (image_size + 1) // 2
        chans = list(widths[1:])
        while side // 2 ** len(chans) > 3:
            chans.append(widths[-1])
        blocks, in_ch = [], widths[0]
        for out_ch in chans:
            if side % 2:
                raise ConfigError(f"the discriminator halves its maps: image_size {image_size} gives an odd {side}")
            blocks.append(DiscriminatorBlock(in_ch, out_ch))
            in_ch, side = out_ch, side // 2
        self.blocks = nn.ModuleList(blocks)
        self.image_size, self.final_side = image_size, side
        self.fc1 = nn.Linear(in_ch * side * side, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.conv1(x), GAN_SLOPE)
        for block in self.blocks:
            h = block(h)
        return self.fc2(F.leaky_relu(self.fc1(torch.flatten(h, 1)), GAN_SLOPE))
