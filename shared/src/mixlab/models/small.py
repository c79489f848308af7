"""A tiny pre-activation CNN with the same Backbone split, for fast tests and smoke runs on CPU.

Shaped like a miniature WRN so that code written against WRN geometry carries over: a 3->16 stem at full
resolution (the mixing space), two stride-2 pre-activation convs (16w, 32w channels), a final BN-ReLU, so a 32x32
input gives an 8x8 final map exactly as WRN-28-w does on CIFAR.

``smallcnn-gn-w`` is the same network with GroupNorm (8 groups) in place of every BatchNorm: each image is normalised
on its own, so a step on W processes of batch B/W equals a step on one process of batch B (the DDP equivalence test),
which BatchNorm's per-process batch statistics prevent.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mixlab.errors import ConfigError
from mixlab.models.base import Backbone
from mixlab.models.registry import register_model

NORMS = ("bn", "gn")


def _norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm2d ("bn") or the batch-independent GroupNorm with 8 groups ("gn")."""
    if kind == "gn":
        return nn.GroupNorm(8, channels)
    return nn.BatchNorm2d(channels)


class PreActConv(nn.Module):
    """Norm (BN, or GN) -> ReLU -> 3x3 conv."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str = "bn") -> None:
        super().__init__()
        self.bn = _norm(norm, in_planes)
        self.conv = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.relu(self.bn(x)))


class SmallCNN(Backbone):
    """smallcnn-w: stem 3->16, PreActConv(16->16w, s2), PreActConv(16w->32w, s2), BN-ReLU, GAP, Linear(32w, K).

    ``norm="gn"`` replaces every BatchNorm by GroupNorm (smallcnn-gn-w); the module names stay the same.
    """

    linear_init = "he_truncated"

    def __init__(self, num_classes: int, width: int = 1, norm: str = "bn") -> None:
        super().__init__()
        if width < 1:
            raise ConfigError(f"A smallcnn width must be a positive integer, got {width}.")
        if norm not in NORMS:
            raise ConfigError(f"A smallcnn norm must be one of {', '.join(NORMS)}, got {norm!r}.")
        self.width = width
        self.norm = norm
        self.num_classes = num_classes
        self.stem_channels = 16
        self.stem_stride = 1
        self.num_features = 32 * width

        self.stem = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = PreActConv(16, 16 * width, stride=2, norm=norm)
        self.block2 = PreActConv(16 * width, 32 * width, stride=2, norm=norm)
        self.bn = _norm(norm, 32 * width)
        self.head = nn.Linear(32 * width, num_classes)
        self.init_weights()

    def forward_features(self, z: Tensor) -> Tensor:
        return F.relu(self.bn(self.block2(self.block1(z))), inplace=True)


@register_model("smallcnn-{width}", description="tiny pre-activation CNN for tests and smoke runs")
def small_cnn(num_classes: int, *, width: int) -> SmallCNN:
    """Tiny pre-activation CNN (three convs) for tests and smoke runs."""
    return SmallCNN(num_classes, width=width)


@register_model("smallcnn-gn-{width}", description="smallcnn with GroupNorm instead of BatchNorm (batch-independent)")
def small_cnn_gn(num_classes: int, *, width: int) -> SmallCNN:
    """smallcnn-w without BatchNorm (GroupNorm, 8 groups): its outputs do not depend on the other images of a batch."""
    return SmallCNN(num_classes, width=width, norm="gn")
