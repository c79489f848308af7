"""PreActResNet-18-w as in the official MixMo code for Tiny ImageNet (spec mixmo-mixshare §2.3).

Differences from a textbook pre-activation ResNet that the official code has and we keep: the 3->64 stem conv has
stride 2 and is not widened, the 1x1 shortcut reads the pre-activated input and has no BN, and there is no final
BN-ReLU before pooling. Hence the spec's exact counts (11,268,616 parameters at w=1 with 200 classes).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mixlab.errors import ConfigError
from mixlab.models.base import Backbone
from mixlab.models.registry import register_model

BN_MOMENTUM = 0.1


class PreActBlock(nn.Module):
    """``o = relu(bn1(x))``; ``conv2(relu(bn2(conv1(o)))) + (conv1x1(o) if reshaped else x)``."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=BN_MOMENTUM)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = (
            nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False)
            if stride != 1 or in_planes != planes
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        o = F.relu(self.bn1(x))
        shortcut = self.shortcut(o) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(o)), inplace=True))
        return out + shortcut


class PreActResNet18(Backbone):
    """PreActResNet-18-w: stem conv 3->64 stride 2, layers of 2 blocks at 64w/128w/256w/512w (strides 1,2,2,2),
    global average pooling, ``Linear(512w, K)`` initialised N(0, 0.01).
    """

    linear_init = "normal"

    def __init__(self, num_classes: int, width: int = 1) -> None:
        super().__init__()
        if width < 1:
            raise ConfigError(f"A PreActResNet-18 width must be a positive integer, got {width}.")
        self.width = width
        self.num_classes = num_classes
        self.stem_channels = 64
        self.stem_stride = 2
        planes = (64 * width, 128 * width, 256 * width, 512 * width)
        self.num_features = planes[3]

        self.stem = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        in_planes = 64
        layers = []
        for p, stride in zip(planes, (1, 2, 2, 2), strict=True):
            layers.append(nn.Sequential(PreActBlock(in_planes, p, stride), PreActBlock(p, p, 1)))
            in_planes = p
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.head = nn.Linear(planes[3], num_classes)
        self.init_weights()

    def forward_features(self, z: Tensor) -> Tensor:
        # No final BN-ReLU: the official model pools the raw output of layer4.
        return self.layer4(self.layer3(self.layer2(self.layer1(z))))

    def pool(self, feature_map: Tensor) -> Tensor:
        """Global average pooling. The official ``avg_pool2d(4)`` is the same on the 4x4 map of a 64x64 input;
        the global version also works at other input sizes."""
        return super().pool(feature_map)


@register_model("preactresnet18-{width}", description="PreActResNet-18-w, official MixMo layout (Tiny ImageNet)")
def preact_resnet18(num_classes: int, *, width: int) -> PreActResNet18:
    """PreActResNet-18-width in the official MixMo layout (Tiny ImageNet, 64x64 inputs)."""
    return PreActResNet18(num_classes, width=width)
