"""Semi-supervised building blocks shared by the SSL methods (MixMatch/RealMix, Mean Teacher, FixMatch):
weight EMA, ramps, BN-statistics freezing, label guessing, biased MixUp, interleaving, the unlabeled losses; and
the step-based SSL method (`SSLMethod`: supervised / Mean Teacher / MixMatch / FixMatch) on the shared engine."""

from mixlab.ssl.bn import bn_stats_frozen
from mixlab.ssl.config import BASE_VARIANTS, VARIANT_DEFAULTS, SSLConfig, with_variant
from mixlab.ssl.data import InputPipeline, SSLData, build_ssl_data
from mixlab.ssl.ema import ModelEMA, mean_teacher_decay
from mixlab.ssl.guess import guess_labels, sharpen
from mixlab.ssl.interleave import interleave, interleave_offsets
from mixlab.ssl.losses import fixmatch_unlabeled_loss, logit_distance, probability_mse, softmax_mse
from mixlab.ssl.method import SSLMethod
from mixlab.ssl.mixup import MixUpResult, biased_mixup
from mixlab.ssl.ramps import cosine_rampdown, linear_ramp, sigmoid_ramp
from mixlab.ssl.streams import InfiniteIndexStream

__all__ = [
    "BASE_VARIANTS",
    "VARIANT_DEFAULTS",
    "InfiniteIndexStream",
    "InputPipeline",
    "SSLConfig",
    "SSLData",
    "SSLMethod",
    "build_ssl_data",
    "with_variant",
    "MixUpResult",
    "ModelEMA",
    "biased_mixup",
    "bn_stats_frozen",
    "cosine_rampdown",
    "fixmatch_unlabeled_loss",
    "guess_labels",
    "interleave",
    "interleave_offsets",
    "linear_ramp",
    "logit_distance",
    "mean_teacher_decay",
    "probability_mse",
    "sharpen",
    "sigmoid_ramp",
    "softmax_mse",
]
