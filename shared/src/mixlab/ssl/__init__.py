"""Semi-supervised building blocks shared by the SSL methods (RealMix, SAMOSA, SciMix): weight EMA, ramps,
BN-statistics freezing, label guessing, biased MixUp, interleaving, the unlabeled losses, Mean Teacher's dual
head; the step-based `SSLMethod` on the shared engine, and the four base algorithms as classes with hook points
(`Supervised`, `MeanTeacher`, `MixMatch`, `FixMatch`; `ALGORITHMS` by name)."""

from mixlab.ssl.algorithms import ALGORITHMS, FixMatch, MeanTeacher, MixMatch, Supervised, algorithm_for, with_variant
from mixlab.ssl.bn import bn_stats_frozen
from mixlab.ssl.config import BASE_VARIANTS, SSLConfig
from mixlab.ssl.data import InputPipeline, SSLData, build_ssl_data
from mixlab.ssl.ema import ModelEMA, mean_teacher_decay
from mixlab.ssl.guess import guess_labels, sharpen
from mixlab.ssl.heads import DualHead
from mixlab.ssl.interleave import interleave, interleave_offsets
from mixlab.ssl.losses import fixmatch_unlabeled_loss, logit_distance, probability_mse, softmax_mse
from mixlab.ssl.method import SSLMethod, StepContext, primary
from mixlab.ssl.mixup import MixUpResult, biased_mixup
from mixlab.ssl.ramps import cosine_rampdown, linear_ramp, sigmoid_ramp
from mixlab.ssl.streams import InfiniteIndexStream

__all__ = [
    "ALGORITHMS",
    "BASE_VARIANTS",
    "DualHead",
    "FixMatch",
    "MeanTeacher",
    "MixMatch",
    "StepContext",
    "Supervised",
    "algorithm_for",
    "primary",
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
