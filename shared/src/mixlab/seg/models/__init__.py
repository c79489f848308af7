"""Dense-prediction models of the segmentation family (spec guidedmix §3.1, §9).

* :class:`PSPUNet`: the paper's network, ResNet + PSP encoder and a MITrans/PixelShuffle U-Net decoder.
* :class:`DeepLabV3Plus`: smp's DeepLabV3+ with a non-local block on its deepest feature (documented deviation;
  needs the ``mixlab[seg]`` extra, imported only when built).
* :class:`NonLocal2d`, :class:`MITransBlock`: the MITrans pieces; :class:`ResNetEncoder`, :func:`load_pretrained`:
  torchvision ResNets as smp-style feature pyramids, local ImageNet weights only.

Every model's ``forward(x)`` returns ``dict(logits=(B, C, H, W), enc=Gamma_enc features, cls=(B, C))``;
``forward(x, feature_mix=f)`` also decodes ``f(features)`` into ``mix_logits`` in the same pass (``encode`` /
``decode`` give the two halves).
"""

from mixlab.seg.models.deeplab import DeepLabV3Plus
from mixlab.seg.models.encoders import ENCODERS, ResNetEncoder, load_pretrained
from mixlab.seg.models.mitrans import FeatureMix, MITransBlock, NonLocal2d, icnr_
from mixlab.seg.models.psp_unet import PSPModule, PSPUNet
from mixlab.seg.models.registry import (
    SEG_ARCHS,
    available_seg_models,
    create_seg_model,
    encoder_parameters,
    new_module_parameters,
)

__all__ = [
    "ENCODERS",
    "SEG_ARCHS",
    "DeepLabV3Plus",
    "FeatureMix",
    "MITransBlock",
    "NonLocal2d",
    "PSPModule",
    "PSPUNet",
    "ResNetEncoder",
    "available_seg_models",
    "create_seg_model",
    "encoder_parameters",
    "icnr_",
    "load_pretrained",
    "new_module_parameters",
]
