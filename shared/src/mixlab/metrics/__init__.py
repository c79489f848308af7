"""Evaluation metrics: top-k, NLL, ECE, Brier, temperature scaling, ensemble diversity, sharing diagnostics and
SAMOSA / SciMix hybrid quality, segmentation (confusion matrix, mIoU)."""

from mixlab.metrics.analysis import (
    SHARE_VARIANTS,
    active_filter_fraction,
    encoder_influence,
    head_influence,
    share_rate,
)
from mixlab.metrics.calibration import (
    OFFICIAL_SPLIT_SEED,
    OFFICIAL_TS_DTYPE,
    OFFICIAL_TS_LRS,
    OFFICIAL_TS_MAX_ITER,
    cross_halves_calibrated,
    fit_temperature,
    split_halves,
)
from mixlab.metrics.classification import (
    BRIER_CONVENTION,
    BRIER_REDUCTIONS,
    brier,
    ece,
    expected_calibration_error,
    nll,
    reliability_bins,
    topk_accuracy,
)
from mixlab.metrics.diversity import mean_pairwise_diversity, ratio_error_diversity
from mixlab.metrics.hybrids import (
    background_separation,
    hybrid_pairs,
    inherits_nonsemantic_class,
    linear_probe_accuracy,
    nonsemantic_separation,
    pixel_preservation_rate,
    samosa_separation,
    scimix_transfer,
    semantic_separation,
)
from mixlab.metrics.segmentation import MIOU_CONVENTION, ConfusionMatrix, segmentation_scores
from mixlab.metrics.summary import ENSEMBLE_REDUCTIONS, classification_metrics, ensemble_logits

__all__ = [
    "BRIER_CONVENTION",
    "BRIER_REDUCTIONS",
    "ENSEMBLE_REDUCTIONS",
    "MIOU_CONVENTION",
    "ConfusionMatrix",
    "OFFICIAL_SPLIT_SEED",
    "OFFICIAL_TS_DTYPE",
    "OFFICIAL_TS_LRS",
    "OFFICIAL_TS_MAX_ITER",
    "SHARE_VARIANTS",
    "active_filter_fraction",
    "background_separation",
    "brier",
    "classification_metrics",
    "cross_halves_calibrated",
    "ece",
    "encoder_influence",
    "ensemble_logits",
    "expected_calibration_error",
    "fit_temperature",
    "head_influence",
    "hybrid_pairs",
    "inherits_nonsemantic_class",
    "linear_probe_accuracy",
    "mean_pairwise_diversity",
    "nll",
    "nonsemantic_separation",
    "pixel_preservation_rate",
    "ratio_error_diversity",
    "samosa_separation",
    "scimix_transfer",
    "reliability_bins",
    "segmentation_scores",
    "semantic_separation",
    "share_rate",
    "split_halves",
    "topk_accuracy",
]
