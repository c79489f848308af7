"""AdaIN style transfer (Huang & Belongie 2017), a comparison hybrid of Table 2.5, from pretrained files only.

The thesis compares SciMix's hybrids with AdaIN's without naming the pretrained network (spec §3.8). The common
PyTorch release of the authors' model is two state dicts: the normalised VGG-19 (``vgg_normalised.pth``: a 1x1
preprocessing convolution, then VGG-19 with reflection padding) and the decoder (``decoder.pth``), in the
``nn.Sequential`` layouts built below. ``scimix transfer --adain-vgg FILE --adain-decoder FILE`` loads them (nothing
is downloaded). The encoder is used up to relu4_1; a hybrid is ``decoder(AdaIN(f(content), f(style)))`` with the
semantic parent as content and the context parent as style (alpha = 1), on images in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
from mixlab.errors import ConfigError
from torch import Tensor, nn

#: The encoder's modules up to relu4_1 (a full normalised VGG-19 file holds more; they are not used).
ENCODER_DEPTH = 31
_ENCODER = ((3, 64, False), (64, 64, True), (64, 128, False), (128, 128, True), (128, 256, False),
            (256, 256, False), (256, 256, False), (256, 256, True), (256, 512, False))  # fmt: skip
_DECODER = ((512, 256, True), (256, 256, False), (256, 256, False), (256, 256, False), (256, 128, True),
            (128, 128, False), (128, 64, True), (64, 64, False))  # fmt: skip


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3), nn.ReLU()]


def vgg_encoder() -> nn.Sequential:
    """The normalised VGG-19 up to relu4_1, module indices as in the release (0: the 1x1 preprocessing conv)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    for c_in, c_out, pool in _ENCODER:
        layers += _conv(c_in, c_out)
        if pool:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
    return nn.Sequential(*layers)


def adain_decoder() -> nn.Sequential:
    """The decoder that inverts relu4_1 features (nearest up-sampling after the 1st, 5th and 7th convolutions)."""
    layers: list[nn.Module] = []
    for c_in, c_out, up in _DECODER:
        layers += _conv(c_in, c_out)
        if up:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(64, 3, 3)]
    return nn.Sequential(*layers)


def adaptive_instance_norm(content: Tensor, style: Tensor, eps: float = 1e-5) -> Tensor:
    """Eq. 2.5: the content features with each map's mean and standard deviation replaced by the style's."""

    def moments(x: Tensor) -> tuple[Tensor, Tensor]:
        flat = x.flatten(2)
        return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]

    (c_mean, c_std), (s_mean, s_std) = moments(content), moments(style)
    return (content - c_mean) / c_std * s_std + s_mean


def _load(path: Path, module: nn.Module, what: str, keep: int | None = None) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except Exception as exc:  # a file torch cannot read as tensors
        raise ConfigError(f"{path} is not a state dict of tensors ({what}): {exc}".splitlines()[0]) from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} is not a state dict of tensors ({what})")
    if keep is not None:  # a full VGG-19 file: only the modules up to relu4_1
        state = {k: v for k, v in state.items() if k.split(".")[0].isdigit() and int(k.split(".")[0]) < keep}
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{path} does not fit the {what} of the AdaIN release: {exc}".splitlines()[0]) from None


class AdaINTransfer(nn.Module):
    """``forward(content, style)``: images (N, 3, H, W) in [0, 1] -> the content in the style, in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder, self.decoder = vgg_encoder(), adain_decoder()

    @classmethod
    def from_files(cls, vgg: Path, decoder: Path) -> AdaINTransfer:
        model = cls()
        _load(vgg, model.encoder, "normalised VGG-19 encoder", keep=ENCODER_DEPTH)
        _load(decoder, model.decoder, "decoder")
        return model.eval().requires_grad_(False)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        features = adaptive_instance_norm(self.encoder(content), self.encoder(style))
        out = self.decoder(features)  # sides rounded up to a multiple of 8 by the pools: cropped back
        return out[..., : content.shape[-2], : content.shape[-1]].clamp(0.0, 1.0)
