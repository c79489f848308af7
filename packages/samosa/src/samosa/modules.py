"""SAMOSA's four modules (spec samosa-scimix §2.2, thesis Tables A.1-A.6).

- `E_c` (the semantic encoder): the WRN trunk of `mixlab.models.WideResTrunk`; it returns ``z_c`` (block 12) and
  ``u`` (block 11), which `Omega_rec` ties to the decoder's first layer.
- `C` (`DualHeadClassifier`): BN, LeakyReLU, global average pooling, a primary and a stability linear head.
- `E_r` (`GateEncoder`): its own trunk, a linear layer to S = 64 units, a softmax: the gates ``z_r``.
- `D` (`GatedDecoder`): eight deconvolution blocks turn ``z_c`` alone into S maps (``D_pre``), the gates re-weight
  the maps, four more blocks and a final deconvolution render the image (``D_post``). Linear output: images are
  reconstructed in the standardised space.

With WRN-28-2 and K = 10: E_c 1,466,064, C 2,836, E_r 1,990,416, D 785,843 parameters (tested). A smaller trunk
(the digits recipes' wrn10-1) scales the decoder's widths with it: its first blocks have the trunk's width, the
others half of it, as Table A.3 has 128 and 64 for WRN-28-2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mixlab.models import WideResTrunk
from torch import Tensor, nn

SLOPE = 0.1  # LeakyReLU slope of every block (Table A.5, A.6)


class DualHeadClassifier(nn.Module):
    """`C` (Table A.4): z_c -> (B, 2, K), the primary head's logits first. With ``heads=1`` (MixMatch, FixMatch:
    spec §1.5 uses the primary head only) there is no stability head and the output is (B, K)."""

    def __init__(self, channels: int, num_classes: int, heads: int = 2):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.primary = nn.Linear(channels, num_classes)
        self.stability = nn.Linear(channels, num_classes) if heads == 2 else None

    def forward(self, z_c: Tensor) -> Tensor:
        f = torch.flatten(F.adaptive_avg_pool2d(F.leaky_relu(self.bn(z_c), SLOPE), 1), 1)
        if self.stability is None:
            return self.primary(f)
        return torch.stack([self.primary(f), self.stability(f)], dim=1)


class SamosaNet(nn.Module):
    """The classifier `C(E_c(x))` the base algorithm trains, averages (EMA) and evaluates: x -> (B, 2, K) (or (B, K)
    with one head).

    While ``trace`` is a list, every forward appends its ``(z_c, u)``: the SAMOSA losses reuse the features of the
    classifier's own training pass instead of a second one.
    """

    def __init__(self, depth: int, width: int, num_classes: int, *, heads: int = 2, shortcut_bn: bool = False):
        super().__init__()
        self.encoder = WideResTrunk(depth, width, shortcut_bn=shortcut_bn, slope=SLOPE)
        self.classifier = DualHeadClassifier(self.encoder.num_features, num_classes, heads)
        self.num_classes = num_classes
        self.trace: list[tuple[Tensor, Tensor]] | None = None

    def forward(self, x: Tensor) -> Tensor:
        z_c, u = self.encoder(x)
        if self.trace is not None:
            self.trace.append((z_c, u))
        return self.classifier(z_c)


class GateEncoder(nn.Module):
    """`E_r` (Table A.2): x -> z_r, S gates (softmax: nonnegative, summing to 1)."""

    def __init__(self, depth: int, width: int, num_gates: int, *, image_size: int = 32, shortcut_bn: bool = False,
                 activation: str = "softmax"):  # fmt: skip
        super().__init__()
        self.trunk = WideResTrunk(depth, width, shortcut_bn=shortcut_bn, slope=SLOPE)
        side = image_size // 4
        self.linear = nn.Linear(self.trunk.num_features * side * side, num_gates)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        z, _ = self.trunk(x)
        logits = self.linear(torch.flatten(z, 1))
        return torch.softmax(logits, dim=1) if self.activation == "softmax" else torch.sigmoid(logits)


def _deconv(in_channels: int, out_channels: int, stride: int, bias: bool = False) -> nn.ConvTranspose2d:
    """3x3 transposed convolution; ``output_padding = stride - 1`` makes stride 2 exactly double H and W."""
    return nn.ConvTranspose2d(
        in_channels, out_channels, 3, stride=stride, padding=1, output_padding=stride - 1, bias=bias
    )


class DeconvBlock(nn.Module):
    """Table A.6: BN -> LeakyReLU -> 3x3 transposed conv with stride s (+ BN after it when ``extra_bn``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, extra_bn: bool = False):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.deconv = _deconv(in_channels, out_channels, stride)
        self.extra_bn = nn.BatchNorm2d(out_channels) if extra_bn else None

    def forward(self, x: Tensor) -> Tensor:
        y = self.deconv(F.leaky_relu(self.bn(x), SLOPE))
        return self.extra_bn(y) if self.extra_bn is not None else y


class ResidualDeconvBlock(nn.Module):
    """HybridNet's decoder block (the `deconv_block=residual` flag): BN-LReLU-Deconv(s), BN-LReLU-Deconv, plus a
    1x1 transposed-convolution shortcut when the channels or the stride change."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, extra_bn: bool = False):
        super().__init__()
        self.first = DeconvBlock(in_channels, out_channels, stride, extra_bn=extra_bn)
        self.second = DeconvBlock(out_channels, out_channels)
        self.shortcut = None
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.ConvTranspose2d(
                in_channels, out_channels, 1, stride=stride, output_padding=stride - 1, bias=False
            )

    def forward(self, x: Tensor) -> Tensor:
        y = self.second(self.first(x))
        return y + (x if self.shortcut is None else self.shortcut(x))


class GatedDecoder(nn.Module):
    """`D` (Table A.3): (z_c, z_r) -> image. ``first(z_c)`` is D^(0), ``maps(z_c)`` the S maps h of D_pre."""

    def __init__(self, channels: int, num_gates: int, *, residual: bool = False, extra_bn_resample: bool = False):
        super().__init__()
        block = ResidualDeconvBlock if residual else DeconvBlock
        half = channels // 2

        def up(i: int, o: int) -> nn.Module:  # the two stride-2 blocks
            return block(i, o, 2, extra_bn=extra_bn_resample)

        pre = [block(channels, channels), block(channels, channels), block(channels, channels), up(channels, half)]
        pre += [block(half, half) for _ in range(3)] + [up(half, num_gates)]
        self.pre = nn.ModuleList(pre)
        post = [block(num_gates, half), block(half, half), block(half, half), block(half, 16)]
        self.post = nn.Sequential(*post, _deconv(16, 3, 1, bias=True))

    def first(self, z_c: Tensor) -> Tensor:
        return self.pre[0](z_c)

    def maps(self, z_c: Tensor) -> Tensor:
        h = z_c
        for layer in self.pre:
            h = layer(h)
        return h

    def forward(self, z_c: Tensor, z_r: Tensor) -> Tensor:
        h = self.maps(z_c)
        return self.post(h * z_r[:, :, None, None])  # h'[b, c] = z_r[b, c] h[b, c]
