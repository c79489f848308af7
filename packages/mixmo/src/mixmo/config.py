"""MixMo's configuration: the shared multi-input knobs plus in-pixel MSDA and Table 3.4's classifier variants.

Defaults are the thesis's main Cut-MixMo CIFAR-100 run (WRN-28-10, M=2, alpha=2, r=3, p=0.5, b=4). Recipes
(`mixmo.recipes`) replace fields; the command line replaces fields of the recipe; the resolved config is saved in
the run directory and inside every checkpoint, so `mixmo eval` rebuilds exactly the trained network.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixlab.config import need
from mixlab.mimo.config import MultiInputConfig

MIXING_BLOCKS = ("linear", "cutmix", "hconcat", "vconcat", "patchup2d", "fmix", "cowmask")
HEAD_MODES = ("per_member", "single_soft", "random_assign", "predominant_first")
PIXEL_MSDA = ("none", "cutmix", "mixup")


@dataclass(frozen=True)
class MixMoConfig(MultiInputConfig):
    block: str = "cutmix"  # Table 3.3's binary block; "linear" means never binary (Linear-MixMo, MIMO)
    pixel_msda: str = "none"  # in-pixel MSDA on each input before MixMo: none | cutmix | mixup
    pixel_msda_prob: float = 0.5  # official value; the thesis does not state it
    pixel_msda_alpha: float = 1.0  # lambda ~ Beta(1, 1)
    pixel_msda_swap_if_minor: bool = True  # lambda* inside the MixMo mask, batch image kept dominant (MixMo)
    head_mode: str = "per_member"  # Table 3.4: per_member | single_soft | random_assign | predominant_first

    def validate(self) -> MixMoConfig:
        super().validate()
        need(self.block in MIXING_BLOCKS, f"block must be one of {', '.join(MIXING_BLOCKS)}, not {self.block!r}")
        need(self.head_mode in HEAD_MODES, f"head_mode must be one of {', '.join(HEAD_MODES)}, not {self.head_mode!r}")
        need(self.pixel_msda in PIXEL_MSDA, f"pixel_msda must be one of {', '.join(PIXEL_MSDA)}")
        need(0.0 <= self.pixel_msda_prob <= 1.0, f"pixel_msda_prob must be in [0, 1], not {self.pixel_msda_prob}")
        need(self.pixel_msda_alpha > 0, "pixel_msda_alpha must be positive")
        need(
            self.head_mode in ("per_member", "single_soft") or self.num_members == 2,
            f"head_mode {self.head_mode} is defined for M=2 only (Table 3.4)",
        )
        need(
            self.head_mode not in ("random_assign", "predominant_first") or self.shared_encoder,
            f"head_mode {self.head_mode} is Table 3.4's one-encoder variant: set shared_encoder",
        )
        return self
