"""Mixed-sample operations shared by the methods: ratios, w_r, binary masks, the MixMo block, pixel MSDA,
FDA's Fourier amplitude swap."""

from mixlab.mixing.block import (
    LINEAR_BLOCKS,
    MixingPlan,
    binary_prob_schedule,
    mix,
    sample_mixing,
)
from mixlab.mixing.masks import (
    BINARY_KINDS,
    binary_mask,
    cowmask_mask,
    cutmix_box_mask,
    fmix_mask,
    hconcat_mask,
    kind_option_names,
    patchup2d_mask,
    vconcat_mask,
)
from mixlab.mixing.pixel import (
    corrected_lambda,
    fourier_amplitude_swap,
    mix_soft_targets,
    pixel_cutmix,
    pixel_mixup,
    soft_cross_entropy,
    soft_targets,
)
from mixlab.mixing.ratios import sample_lambda, sample_ratios
from mixlab.mixing.weights import reweight, weighted_head_loss

__all__ = [
    "BINARY_KINDS",
    "LINEAR_BLOCKS",
    "MixingPlan",
    "binary_mask",
    "binary_prob_schedule",
    "corrected_lambda",
    "cowmask_mask",
    "cutmix_box_mask",
    "fmix_mask",
    "hconcat_mask",
    "kind_option_names",
    "mix",
    "mix_soft_targets",
    "patchup2d_mask",
    "fourier_amplitude_swap",
    "pixel_cutmix",
    "pixel_mixup",
    "reweight",
    "sample_lambda",
    "sample_mixing",
    "sample_ratios",
    "soft_cross_entropy",
    "soft_targets",
    "vconcat_mask",
    "weighted_head_loss",
]
