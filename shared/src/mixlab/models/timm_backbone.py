"""Any convolutional timm model as a mixlab :class:`Backbone` (``--model timm:resnet18``), through the ``mixlab[vit]``
extra; never downloaded.

The split the MIMO methods need is found from timm's own metadata: the stem (the MIMO encoder) is the model's first
convolution, ``pretrained_cfg["first_conv"]`` (``conv1`` for ResNets, ``stem.0`` for ConvNeXt); the core is the timm
model's ``forward_features`` with that convolution replaced by the identity, so whatever follows it inside the model
(BatchNorm, activation, pooling) stays in the core; the head is a new linear layer on the pooled features. Models
whose features are not a 4-D map (vision transformers) are refused: mixlab's ViTs are ``--model convit*`` / ``cait*``.

Local weights: ``timm:resnet18@/path/to/model.safetensors`` (or ``.pth`` / ``.bin``) loads a file in timm's own format
through timm (``pretrained_cfg_overlay=dict(file=...)``) before the split.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mixlab.errors import CheckpointError, ConfigError
from mixlab.models.base import Backbone

PREFIX = "timm:"


def _timm():
    try:
        import timm
    except ImportError:
        raise ConfigError('timm models need the vit extra: pip install "mixlab[vit]"') from None
    return timm


def _submodule_path(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    parent = model
    *parents, leaf = dotted.split(".")
    for name in parents:
        parent = getattr(parent, name)
    return parent, leaf


class TimmBackbone(Backbone):
    """``head(pool(core.forward_features(stem(x))))`` over a timm model (see the module docstring)."""

    linear_init = "normal"

    def __init__(self, name: str, num_classes: int, weights: str | Path | None = None):
        super().__init__()
        timm = _timm()
        if name not in timm.list_models():
            close = timm.list_models(f"*{name}*")[:5]
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise ConfigError(f"timm has no model {name!r}{hint}")
        options: dict = {"pretrained": False, "num_classes": 0, "global_pool": ""}
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise CheckpointError(f"no timm weights file at {path} (nothing is downloaded)")
            options.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        try:
            core = timm.create_model(name, **options)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"timm could not build {name} from {weights}: {first}") from None
        first_conv = (core.pretrained_cfg or {}).get("first_conv")
        if not isinstance(first_conv, str):
            raise ConfigError(f"timm model {name!r} names no first convolution: it cannot be split into stem and core")
        parent, leaf = _submodule_path(core, first_conv)
        stem = getattr(parent, leaf)
        if not isinstance(stem, nn.Conv2d):
            raise ConfigError(f"timm model {name!r} starts with a {type(stem).__name__}, not a convolution")
        setattr(parent, leaf, nn.Identity())
        try:
            with torch.no_grad():
                probe = core.forward_features(stem(torch.zeros(1, stem.in_channels, 64, 64)))
        except (AssertionError, RuntimeError, ValueError):  # e.g. a ViT's fixed input size
            probe = torch.zeros(())
        if probe.dim() != 4:
            raise ConfigError(
                f"timm model {name!r} does not give a feature map (B, C, H, W): only convolutional timm models "
                "are backbones here (mixlab's vision transformers are the convit / cait models)"
            )
        self.timm_name = name
        self.stem, self.core = stem, core
        self.num_features, self.num_classes = int(probe.shape[1]), num_classes
        self.stem_channels, self.stem_stride = stem.out_channels, int(stem.stride[0])
        self.head = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward_features(self, z: Tensor) -> Tensor:
        return self.core.forward_features(z)


def create_timm_backbone(spec: str, num_classes: int) -> TimmBackbone:
    """``spec`` is ``timm:<name>`` or ``timm:<name>@<weights file>``."""
    body = spec[len(PREFIX) :]
    name, _, weights = body.partition("@")
    if not name:
        raise ConfigError("give a timm model name after 'timm:', e.g. --model timm:resnet18")
    return TimmBackbone(name, num_classes, weights or None)
