"""GuidedMix-Net's network (paper Sec. 4.2; spec guidedmix §3.1): ResNet + PSP encoder, MITrans U-Net decoder.

The paper gives: an ImageNet ResNet encoder with a PSP module after its last stage, and a U-Net decoder with skip
connections, PixelShuffle and MITrans blocks. Widths, stage count and output stride are the spec's assumptions:

======== ======================== ================================================================ ============
stage    input                    op                                                               output
======== ======================== ================================================================ ============
encoder  image                    ResNet (output stride 32)                                        v1..v5
PSP      v5 (2048, /32)           bins (1, 2, 3, 6) of in/4 = 512 ch, concat with v5, Conv3x3-BN-ReLU e (512, /32)
cls      e                        GAP -> Linear(512 -> C)                                          (C,)
dec-4    e, skip v4 (1024, /16)   MITrans, NL on                                                   256, /16
dec-3    256, skip v3 (512, /8)   MITrans, NL on                                                   128, /8
dec-2    128, skip v2 (256, /4)   MITrans, NL off                                                  64, /4
dec-1    64, skip v1 (64, /2)     MITrans, NL off                                                  32, /2
head     32                       Conv1x1(32 -> 4C) + PixelShuffle2, bilinear resize to H x W      C, H x W
======== ======================== ================================================================ ============

``forward(x)`` returns ``dict(logits=(B, C, H, W), enc=(B, psp_channels, ceil(H/32), ceil(W/32)), cls=(B, C))``
for any H x W (odd sizes such as 65 or 321 included; each stage resizes to its skip's size when they differ).
``enc`` is Gamma_enc, the features the similar-pair search compares. At output stride 16 or 8 (dilated encoder) the
decoder blocks whose input already has the skip's resolution skip the PixelShuffle, and ``enc`` is at /16 or /8.

Parameter counts for 21 classes (defaults: psp 512, decoder (256, 128, 64, 32), MITrans at stages 4 and 3):

* ResNet-50: 52,633,641 = encoder 23,508,032 + PSP 23,073,280 (bins 1,049,088 for the 1x1 bin with its bias and
  1,049,600 for each BN bin, and the Conv3x3-BN 4096 -> 512 with 18,875,392) + decoder 6,038,784 (of which the two non-local blocks hold
  525,312 at /32 and 131,584 at /16) + classifier 10,773 + head 2,772. Without MITrans: 51,976,745.
* ResNet-101: 71,625,769 (encoder 42,500,160; the rest as for ResNet-50). Without MITrans: 70,968,873.

PSP and batch size 1: BatchNorm over a 1x1 pooled map has one value per channel when the batch has one image, and
fails in training mode. As in smp's ``PSPBlock``, the 1x1 bin therefore has no normalisation (its conv has a bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixlab.errors import ConfigError
from mixlab.seg.models.encoders import ResNetEncoder, load_pretrained
from mixlab.seg.models.mitrans import ConvBNReLU, FeatureMix, MITransBlock, icnr_

PSP_BINS: tuple[int, ...] = (1, 2, 3, 6)
DECODER_STAGES: tuple[int, ...] = (4, 3, 2, 1)  # dec-4 takes the PSP output, dec-1 the stem skip


class PSPModule(nn.Module):
    """Pyramid pooling (Zhao et al. 2017): per bin b, AdaptiveAvgPool(b) -> Conv1x1(in -> bin_channels) -> BN ->
    ReLU, upsampled back; concatenated with the input and fused by Conv3x3-BN-ReLU -> ``out_channels``.

    ``bin_channels`` defaults to ``in_channels // 4`` (512 for ResNet-50's 2048). The bin of size 1 has no
    BatchNorm (a bias instead), so training with one image per batch works.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 512,
        bins: Sequence[int] = PSP_BINS,
        bin_channels: int | None = None,
    ) -> None:
        super().__init__()
        bin_channels = bin_channels or max(in_channels // 4, 1)
        self.stages = nn.ModuleList()
        for size in bins:
            if size == 1:
                layers: list[nn.Module] = [nn.Conv2d(in_channels, bin_channels, 1, bias=True)]
            else:
                layers = [nn.Conv2d(in_channels, bin_channels, 1, bias=False), nn.BatchNorm2d(bin_channels)]
            self.stages.append(nn.Sequential(nn.AdaptiveAvgPool2d(size), *layers, nn.ReLU(inplace=True)))
        self.bottleneck = ConvBNReLU(in_channels + len(bins) * bin_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pyramid = [x]
        for stage in self.stages:
            pyramid.append(F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False))
        return self.bottleneck(torch.cat(pyramid, dim=1))


class PSPUNet(nn.Module):
    """ResNet encoder + PSP (Gamma_enc), image-level classifier, 4 MITrans decoder blocks, PixelShuffle head."""

    def __init__(
        self,
        encoder_name: str,
        num_classes: int,
        pretrained: str | Path | None = None,
        output_stride: int = 32,
        psp_channels: int = 512,
        decoder_channels: Sequence[int] = (256, 128, 64, 32),
        use_mitrans: bool = True,
        mitrans_nl_stages: Sequence[int] = (4, 3),
        nl_scale: bool = True,
        nl_zero_init: bool = True,
    ) -> None:
        super().__init__()
        decoder_channels = tuple(decoder_channels)
        nl_stages = tuple(mitrans_nl_stages)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}.")
        if len(decoder_channels) != 4 or any(not isinstance(c, int) or c < 1 for c in decoder_channels):
            raise ConfigError(f"decoder_channels must be 4 positive integers, got {decoder_channels!r}.")
        if not isinstance(psp_channels, int) or psp_channels < 1:
            raise ConfigError(f"psp_channels must be a positive integer, got {psp_channels!r}.")
        if any(s not in DECODER_STAGES for s in nl_stages):
            raise ConfigError(f"mitrans_nl_stages must be taken from {DECODER_STAGES}, got {nl_stages!r}.")
        self.num_classes = num_classes
        self.use_mitrans = use_mitrans
        self.mitrans_nl_stages = nl_stages if use_mitrans else ()

        self.encoder = ResNetEncoder(encoder_name, output_stride)
        if pretrained is not None:
            load_pretrained(self.encoder, pretrained)
        channels, reductions = self.encoder.out_channels, self.encoder.reductions
        self.psp = PSPModule(channels[5], psp_channels)
        self.classifier = nn.Linear(psp_channels, num_classes)

        blocks = []
        in_ch, in_red = psp_channels, reductions[5]
        for stage, out_ch in zip(DECODER_STAGES, decoder_channels):
            skip_ch, skip_red = channels[stage], reductions[stage]
            blocks.append(
                MITransBlock(
                    in_ch,
                    skip_ch,
                    out_ch,
                    nonlocal_=stage in self.mitrans_nl_stages,
                    scale_factor=in_red // skip_red,
                    nl_scale=nl_scale,
                    nl_zero_init=nl_zero_init,
                )
            )
            in_ch, in_red = out_ch, skip_red
        self.decoder = nn.ModuleList(blocks)

        self.head = nn.Sequential(nn.Conv2d(decoder_channels[-1], 4 * num_classes, 1), nn.PixelShuffle(2))
        icnr_(self.head[0].weight, 2)
        nn.init.zeros_(self.head[0].bias)

    def encode(self, x: Tensor) -> list[Tensor]:
        """The encoder's feature list with the PSP output (Gamma_enc) appended: what the decoder reads."""
        features = self.encoder(x)
        return [*features, self.psp(features[5])]

    def decode(self, features: list[Tensor], size: Sequence[int]) -> Tensor:
        """Logits at ``size`` from the feature list of `encode`."""
        y = features[-1]
        for block, stage in zip(self.decoder, DECODER_STAGES):
            y = block(y, features[stage])
        logits = self.head(y)
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return logits

    def forward(self, x: Tensor, feature_mix: FeatureMix | None = None) -> dict[str, Tensor]:
        """``dict(logits, enc, cls)``; with ``feature_mix`` (a function of the feature list returning another one,
        e.g. mixtures of the batch's features) also ``mix_logits``, decoded from those features in the same pass."""
        features = self.encode(x)
        enc = features[-1]
        out = {"logits": self.decode(features, x.shape[-2:]), "enc": enc, "cls": self.classifier(enc.mean(dim=(2, 3)))}
        if feature_mix is not None:
            out["mix_logits"] = self.decode(feature_mix(features), x.shape[-2:])
        return out
