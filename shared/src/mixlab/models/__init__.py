"""Backbones with a common stem / core / pool / head split, their registry, and the generic MIMO wrapper.

``create_model("wrn28-10", 100)`` builds a backbone by name; ``MultiHeadMIMO(backbone, M)`` turns any backbone into
M encoders, one shared core and M heads. Importing this package registers the built-in families.
"""

from mixlab.models import (  # noqa: F401  (registers the families)
    preact_resnet,
    small,
    vit,  # noqa: F401  (ViT families; timm is imported only when one is built)
    wrn,
    wrn_mixmatch,
)
from mixlab.models.base import Backbone, count_parameters
from mixlab.models.init import he_truncated_normal_, init_weights, truncated_normal_
from mixlab.models.mimo import MultiHeadMIMO, encoder_filter_norms, head_column_norms, stem_conv
from mixlab.models.preact_resnet import PreActBlock, PreActResNet18
from mixlab.models.registry import available_models, create_model, load_weights, register_model, set_bn_momentum
from mixlab.models.small import SmallCNN
from mixlab.models.wide_trunk import WideResBlock, WideResTrunk, parse_trunk
from mixlab.models.wrn import WideBasic, WideResNet

__all__ = [
    "Backbone",
    "MultiHeadMIMO",
    "PreActBlock",
    "PreActResNet18",
    "SmallCNN",
    "WideBasic",
    "WideResBlock",
    "WideResNet",
    "WideResTrunk",
    "available_models",
    "count_parameters",
    "create_model",
    "encoder_filter_norms",
    "he_truncated_normal_",
    "head_column_norms",
    "init_weights",
    "load_weights",
    "parse_trunk",
    "register_model",
    "set_bn_momentum",
    "stem_conv",
    "truncated_normal_",
]
