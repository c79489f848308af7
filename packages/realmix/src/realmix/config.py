"""RealMix's configuration: the shared SSL fields (mixlab.ssl.SSLConfig) plus Extend, TSA, the OOD mask and the
transfer-learning initialisation (spec §8). ``variant`` picks RealMix or one of the base algorithms it is compared
with; the RealMix-only fields are ignored by the base algorithms."""

from __future__ import annotations

from dataclasses import dataclass

from mixlab.config import need
from mixlab.ssl import BASE_VARIANTS, SSLConfig

from realmix.extend import CUTOUT_IMPLS, EXTEND_AUGS, EXTEND_MODES

VARIANTS = (*BASE_VARIANTS, "realmix")
TSA_SCHEDULES = ("none", "linear", "log", "exp")


@dataclass(frozen=True)
class RealMixConfig(SSLConfig):
    variant: str = "realmix"
    # -- Extend: the offline augmented copies of the unlabeled set (spec §3.2 a) ------------------------------
    extend_aug: str = "cutout"  # cutout | simple (flip + translate) | none (the plain unlabeled set)
    extend_copies: int = 50
    extend_mode: str = "virtual"  # virtual (copy (i, j) drawn on demand from (seed, i, j)) | materialize
    extend_seed: int = 0
    cutout_impl: str = "random_erasing"  # the official code's Random Erasing | devries (Cutout square)
    cutout_size: int = 16  # DeVries side (CIFAR-10: 16, SVHN: 20)
    erasing_p: float = 0.3
    erasing_area: tuple[float, float] = (0.02, 0.4)
    erasing_aspect: tuple[float, float] = (0.3, 1 / 0.3)
    # -- Training Signal Annealing on the mixed labeled rows (spec §3.7) --------------------------------------
    tsa: str = "none"  # none | linear | log | exp (linear for <= 250 labels)
    tsa_impl: str = "intended"  # intended (threshold on the labels) | official (the released code's logits bug)
    # -- OOD mask on the mixed unlabeled rows (spec §3.8) -------------------------------------------------------
    ood_gamma: float = 0.0  # share of the lowest-confidence unlabeled rows dropped from L_u in every batch
    ood_rule: str = "paper"  # paper (exactly floor(gamma N)) | official (strictly above the percentile)
    # -- transfer learning (spec §5.3) -----------------------------------------------------------------------
    transfer_learning: bool = False  # Table 4 recipes: start from init_checkpoint (required)

    def variants(self) -> tuple[str, ...]:
        return VARIANTS

    def validate(self):
        super().validate()
        need(self.extend_aug in EXTEND_AUGS, f"extend_aug must be one of {', '.join(EXTEND_AUGS)}")
        need(self.extend_mode in EXTEND_MODES, f"extend_mode must be one of {', '.join(EXTEND_MODES)}")
        need(self.cutout_impl in CUTOUT_IMPLS, f"cutout_impl must be one of {', '.join(CUTOUT_IMPLS)}")
        need(self.extend_copies >= 1, f"extend_copies must be >= 1, not {self.extend_copies}")
        need(self.tsa in TSA_SCHEDULES, f"tsa must be one of {', '.join(TSA_SCHEDULES)}")
        need(self.tsa_impl in ("intended", "official"), "tsa_impl must be intended or official")
        need(0.0 <= self.ood_gamma < 1.0, f"ood_gamma must be in [0, 1), not {self.ood_gamma}")
        need(self.ood_rule in ("paper", "official"), "ood_rule must be paper or official")
        need(self.variant != "realmix" or self.k_aug >= 1, "RealMix needs k_aug >= 1")

        return self
