"""DeepLabV3+ from segmentation-models-pytorch with a same-resolution MITrans: a documented deviation (spec §9, A1).

The paper's network is :class:`~mixlab.seg.models.psp_unet.PSPUNet`. This variant (``arch="deeplabv3plus"``)
takes smp's ``DeepLabV3Plus(encoder_name, encoder_weights=None, encoder_output_stride=16 (or 8), classes=C,
aux_params=dict(classes=C, pooling="avg"))`` and re-wires its forward:

    f = encoder(x); enc = f[-1]                     # pairing features (Gamma_enc)
    f[-1] = NonLocal2d(f[-1])                       # NL-only MITrans: ASPP needs its input resolution unchanged
    logits = segmentation_head(decoder(f))          # ASPP on f[-1], fused with f[2] (/4), up-sampled x4
    cls = classification_head(enc)                  # GAP -> Linear

and returns the same ``dict(logits, enc, cls)`` as PSPUNet. smp's parts are adopted as direct children
(``encoder``, ``decoder``, ``segmentation_head``, ``classification_head``) plus ``mitrans``, so ``model.encoder``
is the pretrained part for the learning-rate split, as in PSPUNet.

smp needs inputs divisible by the output stride (the ASPP output, up-sampled by OS/4, must meet the /4 skip).
:meth:`DeepLabV3Plus.forward` pads the input at the bottom and right with zeros (the mean colour after
normalisation, as the training crops are padded) to the next multiple and crops the logits back, so 321 and 513
crops work; ``enc`` keeps the padded extent (ceil(H/OS) x ceil(W/OS)).

Training with a batch of one image fails inside smp's ASPP image-pooling branch (BatchNorm over a 1x1 map); the
batches of the method (B_l + B_u >= 2) never do that.

smp is the optional ``mixlab[seg]`` extra: it is imported when a model is built, never at import time.
ImageNet weights come from a local torchvision ResNet file (smp's ResNet encoders use torchvision's key names).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch.nn.functional as F
from torch import Tensor, nn

from mixlab.errors import ConfigError
from mixlab.seg.models.encoders import load_pretrained
from mixlab.seg.models.mitrans import FeatureMix, NonLocal2d

DEEPLAB_ENCODERS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101")
DEEPLAB_OUTPUT_STRIDES: tuple[int, ...] = (8, 16)


def _smp() -> ModuleType:
    """segmentation_models_pytorch, or a one-line ConfigError naming the extra to install."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError:  # pragma: no cover - exercised only where smp is absent
        raise ConfigError('arch "deeplabv3plus" needs segmentation-models-pytorch: pip install "mixlab[seg]"') from None
    return smp


class DeepLabV3Plus(nn.Module):
    """smp's DeepLabV3+ (ResNet encoder, no download) with an optional non-local block on the deepest feature."""

    def __init__(
        self,
        encoder_name: str,
        num_classes: int,
        pretrained: str | Path | None = None,
        output_stride: int = 16,
        decoder_channels: int = 256,
        use_mitrans: bool = True,
        nl_scale: bool = True,
        nl_zero_init: bool = True,
    ) -> None:
        super().__init__()
        if encoder_name not in DEEPLAB_ENCODERS:
            raise ConfigError(
                f"Unknown DeepLabV3+ encoder {encoder_name!r}. Known encoders: {', '.join(DEEPLAB_ENCODERS)}."
            )
        if output_stride not in DEEPLAB_OUTPUT_STRIDES:
            raise ConfigError(f"DeepLabV3+ output_stride must be 8 or 16, got {output_stride!r}.")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}.")
        if isinstance(decoder_channels, bool) or not isinstance(decoder_channels, int) or decoder_channels < 1:
            raise ConfigError(f"DeepLabV3+ decoder_channels must be one positive integer, got {decoder_channels!r}.")
        smp = _smp()
        net = smp.DeepLabV3Plus(
            encoder_name=encoder_name,
            encoder_weights=None,  # never download; local weights below
            encoder_output_stride=output_stride,
            decoder_channels=decoder_channels,
            classes=num_classes,
            aux_params={"classes": num_classes, "pooling": "avg"},
        )
        self.num_classes = num_classes
        self.output_stride = output_stride
        self.use_mitrans = use_mitrans
        self.encoder = net.encoder
        self.decoder = net.decoder
        self.segmentation_head = net.segmentation_head
        self.classification_head = net.classification_head
        enc_channels = self.encoder.out_channels[-1]
        self.mitrans = NonLocal2d(enc_channels, scale=nl_scale, zero_init=nl_zero_init) if use_mitrans else None
        if pretrained is not None:
            load_pretrained(self.encoder, pretrained)

    def encode(self, x: Tensor) -> list[Tensor]:
        """smp's encoder features of ``x`` padded to a multiple of the output stride, the deepest one passed through
        the non-local block when there is one (its input, the pairing feature, is appended last)."""
        h, w = x.shape[-2:]
        m = self.output_stride
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        features = list(self.encoder(x))
        enc = features[-1]
        if self.mitrans is not None:
            features[-1] = self.mitrans(enc)
        return [*features, enc]

    def decode(self, features: list[Tensor], size: Sequence[int]) -> Tensor:
        """Logits cropped to ``size`` from the feature list of `encode`."""
        h, w = size
        logits = self.segmentation_head(self.decoder(features[:-1]))
        padded = features[0].shape[-2:]
        if logits.shape[-2:] != padded:  # smp guarantees equality for divisible inputs; stay safe
            logits = F.interpolate(logits, size=padded, mode="bilinear", align_corners=False)
        return logits[..., :h, :w]

    def forward(self, x: Tensor, feature_mix: FeatureMix | None = None) -> dict[str, Tensor]:
        """``dict(logits, enc, cls)``; with ``feature_mix`` also ``mix_logits`` (see `PSPUNet.forward`)."""
        features = self.encode(x)
        enc = features[-1]
        out = {"logits": self.decode(features, x.shape[-2:]), "enc": enc, "cls": self.classification_head(enc)}
        if feature_mix is not None:
            out["mix_logits"] = self.decode(feature_mix(features), x.shape[-2:])
        return out
