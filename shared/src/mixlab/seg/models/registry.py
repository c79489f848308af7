"""One factory for the dense-prediction models, and the encoder / new-module parameter split.

``create_seg_model("psp_unet", "resnet50", 21)`` builds the paper's network (:class:`PSPUNet`, output stride 32 by
default); ``"deeplabv3plus"`` builds smp's DeepLabV3+ variant (:class:`DeepLabV3Plus`, output stride 16 by
default, a documented deviation). Both return ``dict(logits, enc, cls)`` from ``forward`` and keep their ResNet
under ``model.encoder``: :func:`encoder_parameters` are those (pretrained, base LR) and
:func:`new_module_parameters` the rest (PSP, decoder, MITrans, classifier, head; ``head_lr_mult`` x LR, spec §3.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from mixlab.errors import ConfigError
from mixlab.seg.models.deeplab import DEEPLAB_ENCODERS, DeepLabV3Plus
from mixlab.seg.models.encoders import ENCODERS
from mixlab.seg.models.psp_unet import PSPUNet

SEG_ARCHS: tuple[str, ...] = ("psp_unet", "deeplabv3plus")
DEFAULT_OUTPUT_STRIDE = {"psp_unet": 32, "deeplabv3plus": 16}
# resnet-tiny is for tests and CPU runs: a narrow PSP and decoder to match its 64-channel last stage.
TINY_PSP_CHANNELS = 32
TINY_DECODER_CHANNELS = (32, 16, 16, 8)


def available_seg_models() -> dict[str, tuple[str, ...]]:
    """Each architecture with the encoders it accepts."""
    return {"psp_unet": ENCODERS, "deeplabv3plus": DEEPLAB_ENCODERS}


def create_seg_model(
    arch: str,
    encoder: str,
    num_classes: int,
    *,
    pretrained: str | Path | None = None,
    output_stride: int | None = None,
    use_mitrans: bool = True,
    mitrans_nl_stages: Sequence[int] = (4, 3),
    nl_scale: bool = True,
    nl_zero_init: bool = True,
    psp_channels: int | None = None,
    decoder_channels: Sequence[int] | int | None = None,
) -> nn.Module:
    """Build a segmentation model; unknown names or impossible options raise a one-line :class:`ConfigError`.

    ``pretrained`` is a local torchvision ResNet state dict loaded into the encoder (never a download).
    For ``psp_unet``: ``psp_channels`` defaults to 512 (32 for resnet-tiny), ``decoder_channels`` to
    (256, 128, 64, 32) ((32, 16, 16, 8) for resnet-tiny). For ``deeplabv3plus``: ``decoder_channels`` is smp's
    single ASPP/decoder width (default 256), ``psp_channels`` must stay None, and ``mitrans_nl_stages`` is not
    used (its one non-local block sits on the deepest encoder feature).
    """
    arch_key = arch.strip().lower().replace("-", "_") if isinstance(arch, str) else ""
    arch_key = {"deeplabv3+": "deeplabv3plus", "deeplabv3_plus": "deeplabv3plus", "pspunet": "psp_unet"}.get(
        arch_key, arch_key
    )
    known = available_seg_models()
    if arch_key not in known:
        raise ConfigError(f"Unknown segmentation architecture {arch!r}. Known architectures: {', '.join(SEG_ARCHS)}.")
    encoder_key = encoder.strip().lower() if isinstance(encoder, str) else ""
    if encoder_key not in known[arch_key]:
        raise ConfigError(f"Unknown encoder {encoder!r} for {arch_key}. Known encoders: {', '.join(known[arch_key])}.")
    stride = DEFAULT_OUTPUT_STRIDE[arch_key] if output_stride is None else output_stride
    if arch_key == "psp_unet":
        tiny = encoder_key == "resnet-tiny"
        if decoder_channels is not None and isinstance(decoder_channels, int):
            raise ConfigError(f"psp_unet takes 4 decoder_channels, got the single value {decoder_channels!r}.")
        return PSPUNet(
            encoder_key,
            num_classes,
            pretrained=pretrained,
            output_stride=stride,
            psp_channels=psp_channels if psp_channels is not None else (TINY_PSP_CHANNELS if tiny else 512),
            decoder_channels=(
                tuple(decoder_channels)
                if decoder_channels is not None
                else (TINY_DECODER_CHANNELS if tiny else (256, 128, 64, 32))
            ),
            use_mitrans=use_mitrans,
            mitrans_nl_stages=mitrans_nl_stages,
            nl_scale=nl_scale,
            nl_zero_init=nl_zero_init,
        )
    if psp_channels is not None:
        raise ConfigError("deeplabv3plus has no PSP module: leave psp_channels unset.")
    if decoder_channels is not None and not isinstance(decoder_channels, int):
        raise ConfigError(f"deeplabv3plus takes one decoder width (an integer), got {decoder_channels!r}.")
    return DeepLabV3Plus(
        encoder_key,
        num_classes,
        pretrained=pretrained,
        output_stride=stride,
        decoder_channels=256 if decoder_channels is None else decoder_channels,
        use_mitrans=use_mitrans,
        nl_scale=nl_scale,
        nl_zero_init=nl_zero_init,
    )


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The (ImageNet-pretrained) encoder's parameters: everything under ``model.encoder``."""
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ConfigError(f"{type(model).__name__} has no 'encoder' module to split the parameters by.")
    return list(encoder.parameters())


def new_module_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter outside ``model.encoder``: PSP, decoder, MITrans, classifier and head."""
    own = {id(p) for p in encoder_parameters(model)}
    return [p for p in model.parameters() if id(p) not in own]
