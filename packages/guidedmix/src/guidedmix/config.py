"""GuidedMix-Net's configuration (spec guidedmix §6): the shared segmentation fields plus every switch of the paper's
ablations and of the released code's reading.

``variant="supervised"`` is Table 2's "FCN" row (the same network trained on the labeled images only, L_ce + L_cla);
``guidedmix`` is the method. The fields left at their defaults give the paper's main recipe; each ablation of
Tables 1, 2 and 6-8 changes one of them (the recipes do exactly that).
"""

from __future__ import annotations

from dataclasses import dataclass

from mixlab.config import need
from mixlab.seg.config import SegSSLConfig

VARIANTS = ("guidedmix", "supervised")


@dataclass(frozen=True)
class GuidedMixConfig(SegSSLConfig):
    variant: str = "guidedmix"
    # -- pair selection (§2.3) --------------------------------------------------------------------------------
    pairing: str = "similar"  # similar (nearest in Γ_enc space) | random (Table 2 "similar pair ✗"; Cityscapes)
    pair_feature: str = "map"  # map (Eq. 3: flattened Γ_enc maps) | pooled (their global average)
    pair_assignment: str = "argmin"  # argmin (per unlabeled image, with replacement) | one_to_one (Hungarian)
    # -- LUPI (§2.4) ------------------------------------------------------------------------------------------
    lambda_alpha: float = 1.0  # Beta(alpha, alpha) before folding (not in the paper: the released code's 1)
    lambda_max: float = 0.5  # the tables' "lambda < tau": VOC 0.5, Cityscapes 0.3, Context 0.4
    lambda_per_sample: bool = False  # one lambda per iteration (default) or per mixed image
    # -- pseudo-mask generation (§2.6) ------------------------------------------------------------------------
    decoupling: str = "soft"  # soft (Eq. 8) | hard (Eq. 7; Table 2)
    dec_decoupling: str = "same"  # L_dec's decoupling: same as the main branch | hard (Eq. 12 as printed) | soft
    decouple_space: str = "prob"  # prob (softmax maps) | logits (the released code)
    decouple_normalize: bool = False  # divide the soft decoupling by 1 - lambda (A7)
    # -- losses (§2.7) ----------------------------------------------------------------------------------------
    usup_grad: str = "direct"  # direct: M_u trained towards sg(M_u-dec) | mixed: M_u-dec towards sg(M_u) | both
    mse_reduction: str = "mean"  # mean over B C H W (CCT) | paper (summed over C: use w_usup_max ~ 30 / C)
    usup_mask_padding: bool = False  # average L_usup over the unlabeled crop's real pixels only (A20)
    use_dec_loss: bool = True
    use_cls_loss: bool = True  # off on Cityscapes (the paper: class imbalance)
    w_usup_max: float = 30.0
    rampup_frac: float = 0.1  # omega ramps over this share of the steps, after the warm-up
    warmup_iters: int = 1000  # supervised-only steps first (the classifier is "first trained using labeled data")
    # -- the released code's reading (spec §10): mix encoder features instead of images, focal consistency -------
    mix_level: str = "image"  # image (the paper) | features (released AAAI code)
    focal_gamma: float = 0.5
    focal_weight: float = 10.0

    def variants(self) -> tuple[str, ...]:
        return VARIANTS

    def validate(self):
        super().validate()
        need(self.pairing in ("similar", "random"), f"pairing must be similar or random, not {self.pairing!r}")
        need(self.pair_feature in ("map", "pooled"), f"pair_feature must be map or pooled, not {self.pair_feature!r}")
        need(self.pair_assignment in ("argmin", "one_to_one"), "pair_assignment must be argmin or one_to_one")
        need(self.lambda_alpha > 0, f"lambda_alpha must be > 0, not {self.lambda_alpha}")
        need(0 < self.lambda_max <= 0.5, f"lambda_max must be in (0, 0.5], not {self.lambda_max}")
        need(self.decoupling in ("soft", "hard"), f"decoupling must be soft or hard, not {self.decoupling!r}")
        need(self.dec_decoupling in ("same", "soft", "hard"), "dec_decoupling must be same, soft or hard")
        need(self.decouple_space in ("prob", "logits"), "decouple_space must be prob or logits")
        need(self.usup_grad in ("direct", "mixed", "both"), "usup_grad must be direct, mixed or both")
        need(self.mse_reduction in ("mean", "paper"), "mse_reduction must be mean or paper")
        need(self.w_usup_max >= 0 and 0 <= self.rampup_frac <= 1, "w_usup_max >= 0 and rampup_frac in [0, 1]")
        need(self.warmup_iters >= 0, f"warmup_iters must be >= 0, not {self.warmup_iters}")
        need(self.mix_level in ("image", "features"), f"mix_level must be image or features, not {self.mix_level!r}")
        need(self.focal_gamma >= 0 and self.focal_weight >= 0, "focal_gamma and focal_weight must be >= 0")
        need(
            self.variant != "guidedmix" or self.unlabeled_batch_size >= 1,
            "GuidedMix needs unlabeled images in every step: unlabeled_batch_size >= 1",
        )
        return self
