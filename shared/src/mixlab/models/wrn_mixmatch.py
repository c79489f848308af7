"""WRN-28-2 of the MixMatch / RealMix TensorFlow code (spec realmix §4), reusable by the other SSL papers.

It differs from the MixMo WRN (``wrn.py``) in every convention the SSL papers inherited from that code: leaky ReLU
(slope 0.1) instead of ReLU, TensorFlow BatchNorm (PyTorch ``momentum=0.001``, ``eps=1e-3``), convolutions with a
zero-initialised bias, He fan-out normal conv init, Glorot-normal dense init, and widths ``16k * (1, 2, 4)`` after a
16-channel stem, with ``activate_before_residual`` in the very first block. Stride-2 3x3 convs use TensorFlow
"SAME" alignment by default (an even input is padded one pixel right/bottom only), so the function matches the
released code; ``tf_same_padding=False`` gives the symmetric padding of the PyTorch ports (MixMatch-pytorch,
FixMatch-pytorch). The parameter count (1,469,642 for K=10) does not depend on it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixlab.errors import ConfigError
from mixlab.models.base import Backbone
from mixlab.models.registry import register_model

BN_MOMENTUM = 0.001  # TF momentum 0.999
BN_EPS = 1e-3  # TF default
LEAKY_SLOPE = 0.1


def tf_same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """Zero-pad ``x`` as TensorFlow's "SAME" does before a strided conv: total ``max((ceil(n/s)-1) s + k - n, 0)``
    per axis, the smaller half on the top/left (so an even input gets one pixel on the bottom/right only)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class MixMatchBlock(nn.Module):
    """Pre-activation block: ``h = lrelu(bn1(x))``; [x = h]; ``conv2(lrelu(bn2(conv1(h))))`` + (1x1 conv of) x."""

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int,
        *,
        activate_before_residual: bool,
        bn_momentum: float,
        bn_eps: float,
        conv_bias: bool,
        leaky_slope: float,
        tf_same_padding: bool,
    ) -> None:
        super().__init__()
        self.activate_before_residual = activate_before_residual
        self.leaky_slope = leaky_slope
        self.stride = stride
        self.tf_same_padding = tf_same_padding and stride != 1
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=bn_momentum, eps=bn_eps)
        self.conv1 = nn.Conv2d(
            in_planes, planes, 3, stride=stride, padding=0 if self.tf_same_padding else 1, bias=conv_bias
        )
        self.bn2 = nn.BatchNorm2d(planes, momentum=bn_momentum, eps=bn_eps)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=conv_bias)
        # The official code adds a 1x1 conv whenever the channel count changes (a strided block always changes it).
        if in_planes == planes and stride != 1:
            raise ConfigError("A strided MixMatch WRN block must also change the channel count.")
        self.shortcut: nn.Module = (
            nn.Conv2d(in_planes, planes, 1, stride=stride, bias=conv_bias) if in_planes != planes else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.bn1(x), self.leaky_slope)
        if self.activate_before_residual:
            x = h
        if self.tf_same_padding:
            h = tf_same_pad(h, 3, self.stride)
        h = self.conv2(F.leaky_relu(self.bn2(self.conv1(h)), self.leaky_slope))
        return self.shortcut(x) + h


class WideResNetMixMatch(Backbone):
    """WRN-d-k of MixMatch: stem conv3x3 3->16, three stages of ``(d - 4) / 6`` blocks with 16k, 32k, 64k channels
    (strides 1, 2, 2), final lrelu(BN), global average pooling, ``Linear(64k, K)``."""

    def __init__(
        self,
        num_classes: int,
        depth: int = 28,
        width: int = 2,
        *,
        bn_momentum: float = BN_MOMENTUM,
        bn_eps: float = BN_EPS,
        conv_bias: bool = True,
        leaky_slope: float = LEAKY_SLOPE,
        tf_same_padding: bool = True,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ConfigError(f"A Wide ResNet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, ...), got {depth}.")
        if width < 1:
            raise ConfigError(f"A Wide ResNet width must be a positive integer, got {width}.")
        if not 0.0 <= bn_momentum <= 1.0 or not bn_eps > 0.0:
            raise ConfigError(
                f"BatchNorm needs 0 <= bn_momentum <= 1 (PyTorch convention; TF's 0.999 is 0.001 here) and "
                f"bn_eps > 0, got bn_momentum={bn_momentum}, bn_eps={bn_eps}."
            )
        if not leaky_slope >= 0.0:
            raise ConfigError(f"leaky_slope must be non-negative (0 gives ReLU), got {leaky_slope}.")
        blocks_per_stage = (depth - 4) // 6
        channels = (16, 16 * width, 32 * width, 64 * width)
        self.depth, self.width = depth, width
        self.num_classes = num_classes
        self.stem_channels = channels[0]
        self.stem_stride = 1
        self.num_features = channels[3]
        self.leaky_slope = leaky_slope
        options = dict(
            bn_momentum=bn_momentum,
            bn_eps=bn_eps,
            conv_bias=conv_bias,
            leaky_slope=leaky_slope,
            tf_same_padding=tf_same_padding,
        )

        self.stem = nn.Conv2d(3, channels[0], kernel_size=3, stride=1, padding=1, bias=conv_bias)
        stages = []
        for index in range(3):
            stride = 1 if index == 0 else 2
            blocks = [
                MixMatchBlock(
                    channels[index], channels[index + 1], stride, activate_before_residual=index == 0, **options
                )
            ]
            blocks += [
                MixMatchBlock(channels[index + 1], channels[index + 1], 1, activate_before_residual=False, **options)
                for _ in range(blocks_per_stage - 1)
            ]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(channels[3], momentum=bn_momentum, eps=bn_eps)
        self.head = nn.Linear(channels[3], num_classes)
        self.init_weights()

    def forward_features(self, z: Tensor) -> Tensor:
        out = self.layer3(self.layer2(self.layer1(z)))
        return F.leaky_relu(self.bn(out), self.leaky_slope)

    def init_weights(self, module: nn.Module | None = None, *, generator: torch.Generator | None = None) -> None:
        """The TF code's scheme: conv kernels N(0, 1/sqrt(0.5 k^2 f_out)) (He fan-out), dense kernels Glorot
        normal, biases 0, BN gamma 1 / beta 0 with fresh running statistics. Also used by wrappers that re-initialise
        copies of the stem and head, so they get this family's scheme."""
        with torch.no_grad():
            for m in (self if module is None else module).modules():
                if isinstance(m, nn.Conv2d):
                    k_h, k_w = m.kernel_size
                    _normal_(m.weight, 1.0 / math.sqrt(0.5 * k_h * k_w * m.out_channels), generator)
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.Linear):
                    fan_out, fan_in = m.weight.shape
                    _normal_(m.weight, math.sqrt(2.0 / (fan_in + fan_out)), generator)  # xavier_normal_, gain 1
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_parameters()


def _normal_(tensor: Tensor, std: float, generator: torch.Generator | None) -> None:
    """N(0, std) fill drawn on the generator's device (or the tensor's, with the global RNG); meta tensors skipped."""
    if tensor.is_meta:
        return
    device = generator.device if generator is not None else tensor.device
    tensor.copy_(torch.randn(tensor.shape, generator=generator, device=device, dtype=torch.float32).mul_(std))


@register_model("wrnmm{depth}-{width}", description="Wide ResNet of the MixMatch/RealMix code (SSL, CIFAR/SVHN)")
def wide_resnet_mixmatch(
    num_classes: int,
    *,
    depth: int,
    width: int,
    bn_momentum: float = BN_MOMENTUM,
    bn_eps: float = BN_EPS,
    conv_bias: bool = True,
    leaky_slope: float = LEAKY_SLOPE,
    tf_same_padding: bool = True,
) -> WideResNetMixMatch:
    """Wide ResNet-depth-width of the MixMatch/RealMix code (leaky ReLU, TF BatchNorm, conv biases)."""
    return WideResNetMixMatch(
        num_classes,
        depth=depth,
        width=width,
        bn_momentum=bn_momentum,
        bn_eps=bn_eps,
        conv_bias=conv_bias,
        leaky_slope=leaky_slope,
        tf_same_padding=tf_same_padding,
    )
