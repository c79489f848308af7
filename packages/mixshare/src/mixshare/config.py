"""MixShare's configuration: one flat frozen dataclass (spec §8, `mixshare:` block, with the §5.5/§6.4 defaults).

Defaults are the full MixShare framework on CIFAR-100 with WRN-28-2: identical encoders at init, CutMix on every
batch (p=1, no decay), 10% of each batch with the same image on both inputs, raw ratios (r=1, w = 2 kappa),
b=2, alpha=2, LR x0.1 after epochs 75/150/225, 300 epochs, and fadeout unmixing over 100 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixlab.config import need
from mixlab.mimo.config import MultiInputConfig
from mixlab.mixing import BINARY_KINDS

UNMIX_MODES = ("none", "full", "partial", "fadeout")
FADEOUT_GRANULARITY = ("epoch", "step")
MASK_DOWNSAMPLE = ("area", "nearest", "area_threshold")


@dataclass(frozen=True)
class MixShareConfig(MultiInputConfig):
    # -- MixShare's defaults for the shared knobs (spec §5.5, §6.4) ----------------------------------------
    batch_repetitions: int = 2  # b ("bar2")
    input_repetition: float = 0.1  # share of rows with the same image on every input (A.6.1)
    model: str = "wrn28-2"
    encoder_init: str = "identical"  # independent (MixMo) | identical (MixShare) | colinear (A.6.2)
    binary_prob: float = 1.0  # p: MixShare always mixes binarily (Alg. A.7 has no linear branch)
    binary_prob_decay_start: float = 1.0  # 1 = no end-of-training decay; MixMo: 11/12
    weight_root: float = 1.0  # r=1: raw ratios, w = M kappa (A.6.1); MixMo: 3
    milestones: tuple[int, ...] = (75, 150, 225)
    # -- MixShare's own knobs (spec §5.2-§5.4) ---------------------------------------------------------------
    colinear_scale_range: tuple[float, float] = (0.5, 1.5)  # per-filter s_k ~ U(low, high), colinear only
    unmix: str = "fadeout"  # none | full | partial | fadeout
    unmix_fraction: float = 0.25  # partial: the first floor(f * D) channels of the final map are unmixed
    fadeout_epochs: float = 100.0  # fadeout: mask m + rho (1 - m), rho = min(1, e / fadeout_epochs)
    fadeout_granularity: str = "epoch"  # epoch: e = completed epochs | step: fractional epochs
    mask_downsample: str = "area"  # area | nearest | area_threshold (area pooling, then > 0.5)
    unmix_normalize: bool = False  # True: divide the masked sum by the mask area instead of h*w

    def validate(self) -> MixShareConfig:
        super().validate()
        need(
            self.block in BINARY_KINDS, f"block must be a binary block ({', '.join(BINARY_KINDS)}), not {self.block!r}"
        )
        low, high = self.colinear_scale_range
        need(0 < low <= high, f"colinear_scale_range must satisfy 0 < low <= high, not {self.colinear_scale_range}")
        need(self.unmix in UNMIX_MODES, f"unmix must be one of {', '.join(UNMIX_MODES)}, not {self.unmix!r}")
        need(0.0 <= self.unmix_fraction <= 1.0, f"unmix_fraction must be in [0, 1], not {self.unmix_fraction}")
        need(self.fadeout_epochs > 0, f"fadeout_epochs must be positive, not {self.fadeout_epochs}")
        need(self.fadeout_granularity in FADEOUT_GRANULARITY, "fadeout_granularity must be epoch or step")
        need(self.mask_downsample in MASK_DOWNSAMPLE, f"mask_downsample must be one of {', '.join(MASK_DOWNSAMPLE)}")
        need(
            self.unmix == "none" or (self.binary_prob == 1.0 and self.binary_prob_decay_start == 1.0),
            f"unmix={self.unmix} reuses the binary mask on every batch: it needs binary_prob=1 and "
            "binary_prob_decay_start=1 (no decay)",
        )
        return self
