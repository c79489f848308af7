"""The WRN-28-2 trunk of SAMOSA and SciMix (spec samosa-scimix §1.3, thesis Tables A.1/A.2/A.5/A.8/A.9).

A stem convolution and 12 pre-activation `WideResBlock`s (BN -> LeakyReLU(0.1) -> conv, twice; the 1x1 shortcut,
where the shape changes, takes the block's raw input as Table A.5 prints it), with no final BN / activation and no
pooling: both methods' encoders (`E_c`, `E_r`) start from this map. ``forward`` returns the last block's output
and the one before it (SAMOSA's `u`, which its `Omega_rec` ties to the decoder's first layer).

Convolutions are bias-free (they are all followed by a BatchNorm), BatchNorm keeps PyTorch's momentum 0.1, and the
weights keep PyTorch's default initialisation, as the HybridNet code the thesis adapted: 1,466,064 parameters for
WRN-28-2 (+448 with the shortcut BatchNorms of the MixMatch runs, ``shortcut_bn=True``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mixlab.errors import ConfigError


class WideResBlock(nn.Module):
    """Pre-activation block with ``out_channels`` filters and stride ``stride`` (Table A.5)."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, *, shortcut_bn: bool = False, slope: float = 0.1
    ):
        super().__init__()
        self.slope = slope
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if in_channels != out_channels or stride != 1:
            layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)]
            if shortcut_bn:
                layers.append(nn.BatchNorm2d(out_channels))
            self.shortcut = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        r = self.conv1(F.leaky_relu(self.bn1(x), self.slope))
        r = self.conv2(F.leaky_relu(self.bn2(r), self.slope))
        return (x if self.shortcut is None else self.shortcut(x)) + r


class WideResTrunk(nn.Module):
    """WRN-``depth``-``width`` without head: (B, 3, H, W) -> (last block's map, the previous block's map).

    For WRN-28-2 on 32x32 inputs both are (B, 128, 8, 8). ``num_features`` is the channel count of the output.
    """

    def __init__(self, depth: int = 28, width: int = 2, *, shortcut_bn: bool = False, slope: float = 0.1):
        super().__init__()
        if (depth - 4) % 6 or depth < 10:
            raise ConfigError(f"a wide ResNet trunk has depth 6n + 4 (10, 16, 22, 28, ...), not {depth}")
        per_stage = (depth - 4) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        in_channels = 16
        for stage, channels in enumerate(widths):
            for i in range(per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(WideResBlock(in_channels, channels, stride, shortcut_bn=shortcut_bn, slope=slope))
                in_channels = channels
        self.blocks = nn.ModuleList(blocks)
        self.num_features = widths[-1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.stem(x)
        for block in self.blocks[:-1]:
            h = block(h)
        return self.blocks[-1](h), h


def parse_trunk(name: str, *, min_depth: int = 10) -> tuple[int, int]:
    """(depth, width) of a trunk named ``wrn{depth}-{width}`` (a config's ``model``), refused with one line otherwise."""
    try:
        depth, width = (int(v) for v in name.removeprefix("wrn").split("-"))
    except ValueError:
        raise ConfigError(f"model must name a trunk as wrn{{depth}}-{{width}} (e.g. wrn28-2), not {name!r}") from None
    if depth < min_depth:
        raise ConfigError(f"this method's trunk needs depth >= {min_depth} (16, 22, 28...), not {depth}")
    return depth, width
