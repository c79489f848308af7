"""Pre-activation Wide ResNet in the official MixMo layout (spec mixmo-mixshare §2.2).

The official code (ported from edward2) differs from the usual PyTorch WRN in two places that leave the parameter
count unchanged but change the function: a downsampling block pads its activation by one pixel on the right and
bottom and runs its *second* 3x3 conv with stride 2 and no padding, and the 1x1 shortcut reads the raw block input
rather than the pre-activated one. We keep that layout so numbers are comparable with the thesis.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mixlab.errors import ConfigError
from mixlab.models.base import Backbone
from mixlab.models.registry import register_model

BN_MOMENTUM = 0.1


class WideBasic(nn.Module):
    """``conv1(relu(bn1(x)))`` -> ``relu(bn2)`` -> [pad] -> ``conv2`` (stride s) -> ``+ shortcut(x)``."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=BN_MOMENTUM)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        # TF-style "SAME" downsampling: pad right/bottom only, then a stride-2 conv without padding. The official
        # code pads only when the channel count also changes, which in a WRN is always the case when stride > 1.
        self.pad: nn.Module = nn.ZeroPad2d((0, 1, 0, 1)) if stride != 1 else nn.Identity()
        self.conv2 = nn.Conv2d(
            planes, planes, kernel_size=3, stride=stride, padding=0 if stride != 1 else 1, bias=False
        )
        self.shortcut: nn.Module = (
            nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False)
            if stride != 1 or in_planes != planes
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x), inplace=True))
        out = self.conv2(self.pad(F.relu(self.bn2(out), inplace=True)))
        return out + self.shortcut(x)


class WideResNet(Backbone):
    """WRN-d-w: stem conv 3->16, three groups of ``n = (d - 4) / 6`` WideBasic blocks (16w, 32w, 64w channels,
    strides 1, 2, 2), final BN-ReLU, global average pooling, ``Linear(64w, K)``. No dropout, no conv biases.
    """

    linear_init = "he_truncated"

    def __init__(self, num_classes: int, depth: int = 28, width: int = 10) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ConfigError(f"A Wide ResNet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, ...), got {depth}.")
        if width < 1:
            raise ConfigError(f"A Wide ResNet width must be a positive integer, got {width}.")
        blocks_per_group = (depth - 4) // 6
        channels = (16, 16 * width, 32 * width, 64 * width)
        self.depth, self.width = depth, width
        self.num_classes = num_classes
        self.stem_channels = channels[0]
        self.stem_stride = 1
        self.num_features = channels[3]

        self.stem = nn.Conv2d(3, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_group(channels[0], channels[1], blocks_per_group, stride=1)
        self.layer2 = self._make_group(channels[1], channels[2], blocks_per_group, stride=2)
        self.layer3 = self._make_group(channels[2], channels[3], blocks_per_group, stride=2)
        self.bn = nn.BatchNorm2d(channels[3], momentum=BN_MOMENTUM)
        self.head = nn.Linear(channels[3], num_classes)
        self.init_weights()

    @staticmethod
    def _make_group(in_planes: int, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        blocks = [WideBasic(in_planes, planes, stride)]
        blocks += [WideBasic(planes, planes, 1) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks)

    def forward_features(self, z: Tensor) -> Tensor:
        out = self.layer3(self.layer2(self.layer1(z)))
        return F.relu(self.bn(out), inplace=True)


@register_model("wrn{depth}-{width}", description="pre-activation Wide ResNet, official MixMo layout (CIFAR)")
def wide_resnet(num_classes: int, *, depth: int, width: int) -> WideResNet:
    """Pre-activation Wide ResNet-depth-width in the official MixMo layout (CIFAR)."""
    return WideResNet(num_classes, depth=depth, width=width)
