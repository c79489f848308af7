"""The split every classification backbone exposes: stem -> core -> pool -> head.

Multi-input multi-output methods need to take a network apart at two places: after the first convolution (the
"encoder", whose output is the mixing space where inputs are combined) and before global pooling (the final feature
map F, which MixShare's unmixing pools under a mask). Every backbone therefore implements the same four pieces, so
the MIMO wrapper and the methods stay generic over the architecture.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

from mixlab.models.init import LinearInit, init_weights


class Backbone(nn.Module, abc.ABC):
    """A classifier split as ``head(pool(forward_features(stem(x))))``.

    Attributes set by every subclass:
        stem: the first convolution, the MIMO encoder ``c_i``; its output is the mixing space.
        head: the dense classifier ``d_i`` (``Linear(num_features, num_classes)`` with bias).
        num_features: D, channels of the final feature map F and size of the pooled features.
        num_classes: K.
        stem_channels: C0, channels of the mixing space.
        stem_stride: input pixels per mixing-space cell along one axis (WRN: 1, PreActResNet: 2).
        linear_init: how this family initialises its dense layers (see ``mixlab.models.init``); copies of the
            stem and head made by wrappers are re-initialised with the same scheme.
    """

    stem: nn.Module
    head: nn.Module
    num_features: int
    num_classes: int
    stem_channels: int
    stem_stride: int
    linear_init: LinearInit = "he_truncated"

    @abc.abstractmethod
    def forward_features(self, z: Tensor) -> Tensor:
        """Core network: mixing-space tensor (B, C0, H0, W0) -> final feature map F (B, D, h, w).

        Includes the final BN-ReLU where the architecture has one, so F is what gets pooled.
        """

    def pool(self, feature_map: Tensor) -> Tensor:
        """Global average pooling (B, D, h, w) -> (B, D); ``flatten`` keeps it valid under channels_last."""
        return torch.flatten(nn.functional.adaptive_avg_pool2d(feature_map, 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.forward_features(self.stem(x))))

    def init_weights(self, module: nn.Module | None = None, *, generator: torch.Generator | None = None) -> None:
        """(Re-)initialise ``module`` (default: the whole backbone) with this family's official scheme."""
        init_weights(self if module is None else module, linear_init=self.linear_init, generator=generator)


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once), the figure the papers' tables report."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
