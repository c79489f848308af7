"""A tiny pre-activation CNN with the same Backbone split, for fast tests and smoke runs on CPU.

Shaped like a miniature WRN so that code written against WRN geometry carries over: a 3->16 stem at full
resolution (the mixing space), two stride-2 pre-activation convs (16w, 32w channels), a final BN-ReLU, so a 32x32
input gives an 8x8 final map exactly as WRN-28-w does on CIFAR.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mixlab.errors import ConfigError
from mixlab.models.base import Backbone
from mixlab.models.registry import register_model


class PreActConv(nn.Module):
    """BN -> ReLU -> 3x3 conv."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.relu(self.bn(x)))


class SmallCNN(Backbone):
    """smallcnn-w: stem 3->16, PreActConv(16->16w, s2), PreActConv(16w->32w, s2), BN-ReLU, GAP, Linear(32w, K)."""

    linear_init = "he_truncated"

    def __init__(self, num_classes: int, width: int = 1) -> None:
        super().__init__()
        if width < 1:
            raise ConfigError(f"A smallcnn width must be a positive integer, got {width}.")
        self.width = width
        self.num_classes = num_classes
        self.stem_channels = 16
        self.stem_stride = 1
        self.num_features = 32 * width

        self.stem = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = PreActConv(16, 16 * width, stride=2)
        self.block2 = PreActConv(16 * width, 32 * width, stride=2)
        self.bn = nn.BatchNorm2d(32 * width)
        self.head = nn.Linear(32 * width, num_classes)
        self.init_weights()

    def forward_features(self, z: Tensor) -> Tensor:
        return F.relu(self.bn(self.block2(self.block1(z))), inplace=True)


@register_model("smallcnn-{width}", description="tiny pre-activation CNN for tests and smoke runs")
def small_cnn(num_classes: int, *, width: int) -> SmallCNN:
    """Tiny pre-activation CNN (three convs) for tests and smoke runs."""
    return SmallCNN(num_classes, width=width)
