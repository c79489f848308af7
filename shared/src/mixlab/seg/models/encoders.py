"""ResNet encoders for dense prediction: a feature pyramid like smp's, built from torchvision with no download.

:class:`ResNetEncoder` returns the six features ``[x (3, /1), stem (/2), layer1 (/4), layer2 (/8), layer3 (/16),
layer4 (/32)]`` of smp's ResNet encoders (spec guidedmix §3.1 and §9). Its parameter names are torchvision's
(``conv1``, ``bn1``, ``layer1.0.conv1``, ...), so an ImageNet file such as ``resnet50-0676ba61.pth`` loads as is
with :func:`load_pretrained` (the classifier ``fc.*`` is dropped).

* ``resnet18`` / ``resnet34`` / ``resnet50`` / ``resnet101``: torchvision's networks built with ``weights=None``.
  Weights are never fetched from any hub; ImageNet weights come from a local file (spec A21).
* ``resnet-tiny``: a BasicBlock ResNet with one block per stage, an 8-channel stem and widths (8, 16, 32, 64)
  (about 0.1 M parameters) for tests and CPU runs.

``output_stride`` 16 dilates layer4 and 8 dilates layer3 and layer4 instead of striding them (DeepLab's
convention). Bottleneck networks use torchvision's ``replace_stride_with_dilation``; BasicBlock networks (which
torchvision refuses to dilate) get the same scheme applied here: the first block of a dilated stage keeps the
previous dilation, the others use the new one, and padding equals dilation so sizes are kept.

Sizes: every stride-2 layer maps n to ceil(n / 2), so the feature at stride s of an H x W input is
ceil(H / s) x ceil(W / s) (65 -> 33 -> 17 -> 9 -> 5 -> 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet

from mixlab.errors import CheckpointError, ConfigError
from mixlab.models.registry import read_state_dict, state_mismatch

ENCODERS: tuple[str, ...] = ("resnet-tiny", "resnet18", "resnet34", "resnet50", "resnet101")
OUTPUT_STRIDES: tuple[int, ...] = (8, 16, 32)
TINY_STEM = 8
TINY_WIDTHS = (8, 16, 32, 64)

_TORCHVISION_BUILDERS = {
    "resnet18": tv_resnet.resnet18,
    "resnet34": tv_resnet.resnet34,
    "resnet50": tv_resnet.resnet50,
    "resnet101": tv_resnet.resnet101,
}
# Prefixes of wrapped or nested state dicts: DDP, torch.compile, and a segmentation model's encoder.
_STRIP_PREFIXES = ("module.", "_orig_mod.", "encoder.")


def _dilation_plan(output_stride: int) -> tuple[bool, bool, bool]:
    """torchvision's ``replace_stride_with_dilation`` flags for layer2..layer4."""
    if output_stride not in OUTPUT_STRIDES:
        raise ConfigError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}.")
    return {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}[output_stride]


def _set_dilation(conv: nn.Conv2d, dilation: int) -> None:
    conv.dilation = (dilation, dilation)
    conv.padding = (dilation, dilation)


def _dilate_basic_layers(net: nn.Module, plan: tuple[bool, bool, bool]) -> None:
    """Turn the stride of the flagged BasicBlock stages into dilation, as torchvision does for Bottlenecks."""
    dilation = 1
    for layer, dilate in zip((net.layer2, net.layer3, net.layer4), plan):
        if not dilate:
            continue
        previous, dilation = dilation, dilation * 2
        for index, block in enumerate(layer):
            d = previous if index == 0 else dilation
            if index == 0:
                block.conv1.stride = (1, 1)
                block.stride = 1
                if block.downsample is not None:
                    block.downsample[0].stride = (1, 1)
            _set_dilation(block.conv1, d)
            _set_dilation(block.conv2, d)


def _tiny_layer(inplanes: int, planes: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(tv_resnet.conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    return nn.Sequential(tv_resnet.BasicBlock(inplanes, planes, stride, downsample))


class _TinyResNet(nn.Module):
    """resnet-tiny: torchvision's layout and BasicBlocks at (8, 16, 32, 64) channels, one block per stage."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, TINY_STEM, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(TINY_STEM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        w1, w2, w3, w4 = TINY_WIDTHS
        self.layer1 = _tiny_layer(TINY_STEM, w1, 1)
        self.layer2 = _tiny_layer(w1, w2, 2)
        self.layer3 = _tiny_layer(w2, w3, 2)
        self.layer4 = _tiny_layer(w3, w4, 2)
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class ResNetEncoder(nn.Module):
    """A ResNet trunk returning smp's feature list; ``out_channels`` and ``reductions`` describe the six features.

    ``reductions`` holds each feature's stride relative to the input: (1, 2, 4, 8, 16, 32) at output stride 32,
    (1, 2, 4, 8, 16, 16) at 16 and (1, 2, 4, 8, 8, 8) at 8.
    """

    def __init__(self, name: str = "resnet50", output_stride: int = 32) -> None:
        super().__init__()
        plan = _dilation_plan(output_stride)
        if name == "resnet-tiny":
            net: nn.Module = _TinyResNet()
            _dilate_basic_layers(net, plan)
            stem, widths = TINY_STEM, TINY_WIDTHS
        elif name in _TORCHVISION_BUILDERS:
            bottleneck = name in ("resnet50", "resnet101")
            # weights=None: torchvision builds the architecture only and never downloads.
            net = _TORCHVISION_BUILDERS[name](
                weights=None, replace_stride_with_dilation=list(plan) if bottleneck else None
            )
            if not bottleneck:
                _dilate_basic_layers(net, plan)
            expansion = 4 if bottleneck else 1
            stem, widths = 64, tuple(w * expansion for w in (64, 128, 256, 512))
        else:
            raise ConfigError(f"Unknown encoder {name!r}. Known encoders: {', '.join(ENCODERS)}.")
        self.name = name
        self.output_stride = output_stride
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels: tuple[int, ...] = (3, stem, *widths)
        reductions, stride = [1, 2, 4], 4
        for dilated in plan:
            stride = stride if dilated else stride * 2
            reductions.append(stride)
        self.reductions: tuple[int, ...] = tuple(reductions)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = [x]
        x = self.relu(self.bn1(self.conv1(x)))
        features.append(x)
        x = self.layer1(self.maxpool(x))
        features.append(x)
        for layer in (self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


def _encoder_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip wrapper prefixes; from a whole segmentation model keep its ``encoder.*`` part; drop ``fc.*``."""
    out = dict(state)
    changed = True
    while changed and out:
        changed = False
        for prefix in _STRIP_PREFIXES:
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                changed = True
    nested = {k[len("encoder.") :]: v for k, v in out.items() if k.startswith("encoder.")}
    if nested:  # a full model's state dict: its encoder part only
        out = nested
    return {k: v for k, v in out.items() if not k.startswith("fc.")}


def load_pretrained(encoder: nn.Module, path: str | Path) -> nn.Module:
    """Load a local torchvision-format ResNet state dict into ``encoder`` (ours or smp's), exactly.

    Accepts a plain state dict, one under a ``state_dict`` / ``model`` key, with ``module.`` / ``encoder.``
    prefixes; ``fc.*`` is ignored and BatchNorm's ``num_batches_tracked`` may be absent (torchvision's ImageNet
    files lack it). The file is read as data (``weights_only=True``). A missing or unreadable file, or any missing,
    unexpected or wrongly shaped key, raises a one-line :class:`CheckpointError` naming the file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"No encoder weights file at '{path}'. Pretrained weights are never downloaded: give the local path of a "
            "torchvision ResNet state dict (e.g. resnet50-0676ba61.pth), or None for random initialisation."
        )
    state = _encoder_keys(read_state_dict(path, what="encoder weights file"))
    problem = state_mismatch(encoder.state_dict(), state, optional=lambda key: key.endswith("num_batches_tracked"))
    if problem:
        name = getattr(encoder, "name", type(encoder).__name__)
        raise CheckpointError(
            f"The weights in '{path}' do not fit the {name} encoder: {problem}. Is it a torchvision ResNet of the same "
            "depth?"
        )
    with torch.no_grad():
        encoder.load_state_dict(state, strict=False)  # checked above: only num_batches_tracked may be absent
    return encoder
