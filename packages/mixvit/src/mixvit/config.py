"""MixViT's configuration: one flat frozen dataclass (spec §10) on the shared multi-input base.

Defaults are the thesis's CIFAR-100 recipe (A.1.5): the ConViT variant (``convit5-384``, patch 4), M = 2,
MixViT-embedding attributed after the last SA block, binarized CutMix token masks with alpha = 0.5, the
whole-input phase over the last twelfth of training, loss weights lambda_i (Eq. 4.4, summing to 1), separate
inference; AdamW lr 1e-3 (sqrt-scaled from batch 128), weight decay 0.05, 10% warm-up from 1e-6, x0.1 at epochs
125 and 140 of 150; 3 batch augmentations, AutoAugment (CIFAR policy), RandErase 0.25, simultaneous
CutMix(1.0) + MixUp(0.8) with visible-token label correction, label smoothing 0.1.

The naive transformers of Table 4.1 are ``network="multi_encoder"``: M patch embeddings and the MixMo mixing of
the shared base fields (``alpha``, ``binary_prob`` with its decay, ``weight_root``, ``encoder_init``): MIMO is
``alpha=0, binary_prob=0`` (sum of the encodings, unit loss weights), MixMo ``alpha=2, binary_prob=0.5, r=3``,
CutMix-only MixMo ``binary_prob=1`` without decay, "same init." ``encoder_init="identical"``.

The 3 batch augmentations are MixMo's batch repetition by default (each image b times in a batch, b times the
steps per epoch); ``repetition_mode="deit_ra"`` is DeiT's repeated augmentation instead (timm's
``RepeatAugSampler``: the b copies spread over batches and processes, the samples per epoch stay about N).

Base fields MixViT does not read: ``momentum``/``nesterov``/``l2`` (SGD; MixViT uses AdamW with
``weight_decay``), ``warmup_epochs`` (the warm-up is ``warmup_frac`` of training), ``augmix``; on a file-backed
dataset (ImageNet-100) ``crop_padding`` (RandomResizedCrop replaces the padded crop).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from mixlab.config import need
from mixlab.mimo.config import MultiInputConfig

from mixvit.attribution import ATTRIBUTIONS
from mixvit.augment import MSDA_KINDS, SOFT_MASKS
from mixvit.baselines import BASELINE_INFERENCE
from mixvit.masks import BOX_OWNER_LEVELS, TIE_BREAKS
from mixvit.network import ALTERNATING_PATTERNS, INFERENCE_SCHEMES

NETWORKS = ("mixvit", "multi_encoder")
INPUT_MIXING = ("binarized_cutmix", "all_tokens")
LOSS_WEIGHTING = ("lambda", "mixmo_root", "uniform")
LOSS_WEIGHT_SUM = ("one", "M")
AUTOAUGMENT = ("cifar10", "imagenet", "none")
HEAD_BLOCKS = ("ca", "sa")
MSDA_PARTNERS = ("batch", "dataset")
REPETITION_MODES = ("mixmo", "deit_ra")
_VIT_NAME = re.compile(r"^(convit\d+-\d+|cait\d+-\d+|cait-xx?s\d+)$")


@dataclass(frozen=True)
class MixViTConfig(MultiInputConfig):
    # -- data stream (A.1.5) -----------------------------------------------------------------------------------
    batch_size: int = 129  # the base batch 128, rounded to a multiple of b = 3 (43 images x 3 copies)
    batch_repetitions: int = 3  # "3 batch augmentations": MixMo's batch repetition, x3 steps per epoch
    repetition_mode: str = "mixmo"  # mixmo: b copies in a batch, x b steps | deit_ra: DeiT's RA, constant steps
    data_workers: int = 8  # DataLoader processes decoding a file-backed dataset (ImageNet-100); in-memory: unused
    autoaugment: str = "cifar10"  # cifar10 | imagenet | none
    random_erasing: float = 0.25  # RandErase probability (unstated: DeiT's default)
    label_smoothing: float = 0.1
    msda: str = "simultaneous"  # simultaneous | alternate | none
    cutmix_alpha: float = 1.0
    mixup_alpha: float = 0.8
    msda_soft_mask: str = "complementary"  # complementary: lambda_m outside the box, 1 - lambda_m inside
    msda_partner: str = "batch"  # batch: an in-batch permutation | dataset: uniform over the training set
    msda_label_correction: bool = True  # an input's MSDA share counted over the tokens it shows
    msda_primary_dominant: bool = True  # swap roles so the input's own image keeps the larger visible share
    # -- backbone ----------------------------------------------------------------------------------------------
    model: str = "convit5-384"  # convit{L}-{d} | cait{L}-{d} | cait-xxs{L} | cait-xs{L}
    patch_size: int = 4  # 4 on 32 px, 8 on 64 px, 16 on 224 px: 64 / 64 / 196 tokens
    head_block: str = "ca"  # ConViT variant: class attention (the text), or "sa" (the appendix's "2 SA blocks")
    drop_path_rate: float = 0.0  # CaiT: 0.05 (CIFAR), 0.1 (Tiny ImageNet, ImageNet-100); ConViT: 0
    # -- MixViT ------------------------------------------------------------------------------------------------
    network: str = "mixvit"  # mixvit | multi_encoder (the naive MIMO/MixMo transformers of Table 4.1)
    source_attribution: str = "embedding"  # embedding (Eq. 4.6) | encoding (Eq. 4.5) | none
    attribution_layer: int | str = "late"  # late = after the last SA block | early = before the first | 0..L
    input_mixing: str = "binarized_cutmix"  # binarized_cutmix | all_tokens (Table 4.6)
    mix_alpha: float = 0.5  # lambda ~ Beta(0.5, 0.5) for the token masks
    box_owner: str = "per_batch"  # which input gets the CutMix box: one draw per batch or per sample
    tie_break: str = "per_sample_coin"  # patches exactly half in the box: one coin per sample, or per patch
    whole_input_start: float = 11 / 12  # the whole-input probability ramps from here ...
    whole_input_pmax: float = 1.0  # ... to this at the end of training
    loss_weighting: str = "lambda"  # lambda (Eq. 4.4) | mixmo_root (w_r with weight_root) | uniform
    loss_weight_sum: str = "one"  # the weights sum to one (Eq. 4.4) or to M (MixMo's code)
    inference: str = "separate"  # mixvit: separate | sum | alternating | single; multi_encoder: sum | separate
    alternating_pattern: str = "random"  # random source per token (seeded) | checkerboard
    single_index: int = 0  # the subnetwork of single inference
    # -- shared MIMO fields, used by network="multi_encoder" -----------------------------------------------------
    alpha: float = 2.0  # MixMo's kappa ~ Beta(2, 2); <= 0 is MIMO's fixed 1/M
    binary_prob: float = 0.5
    weight_root: float = 3.0  # r of w_r (multi_encoder, and loss_weighting="mixmo_root")
    # -- optimisation (A.1.5) ----------------------------------------------------------------------------------
    epochs: int = 150
    base_lr: float = 1e-3  # at the reference batch; lr = base_lr * sqrt(global batch / lr_reference_batch)
    lr_reference_batch: int = 128
    l2: float = 0.0
    weight_decay: float = 0.05  # AdamW's decoupled decay (0.1 on Tiny ImageNet and ImageNet-100)
    warmup_frac: float = 0.1  # linear warm-up over the first 10% of training ...
    warmup_lr: float = 1e-6  # ... from this learning rate
    milestones: tuple[int, ...] = (125, 140)  # lr x gamma after these many completed epochs

    def lr_for(self, world_size: int = 1) -> float:
        """sqrt scaling with the effective (global) batch: ``batch_size`` rows on each of ``world_size`` ranks."""
        return self.base_lr * math.sqrt(self.batch_size * world_size / self.lr_reference_batch)

    @property
    def lr(self) -> float:
        return self.lr_for(1)

    @property
    def warmup(self) -> float:
        """Warm-up length in epochs."""
        return self.warmup_frac * self.epochs

    def validate(self) -> MixViTConfig:
        # DeiT's repeated augmentation spreads an image's b copies over batches (and processes): any batch size.
        need(self.batch_repetitions >= 1, f"batch repetitions b must be at least 1, not {self.batch_repetitions}")
        base = self if self.repetition_mode != "deit_ra" else dataclasses.replace(self, batch_repetitions=1)
        MultiInputConfig.validate(base)
        choices = {
            "repetition_mode": (self.repetition_mode, REPETITION_MODES),
            "network": (self.network, NETWORKS),
            "source_attribution": (self.source_attribution, ATTRIBUTIONS),
            "input_mixing": (self.input_mixing, INPUT_MIXING),
            "box_owner": (self.box_owner, BOX_OWNER_LEVELS),
            "tie_break": (self.tie_break, TIE_BREAKS),
            "loss_weighting": (self.loss_weighting, LOSS_WEIGHTING),
            "loss_weight_sum": (self.loss_weight_sum, LOSS_WEIGHT_SUM),
            "alternating_pattern": (self.alternating_pattern, ALTERNATING_PATTERNS),
            "msda": (self.msda, MSDA_KINDS),
            "msda_soft_mask": (self.msda_soft_mask, SOFT_MASKS),
            "msda_partner": (self.msda_partner, MSDA_PARTNERS),
            "autoaugment": (self.autoaugment, AUTOAUGMENT),
            "head_block": (self.head_block, HEAD_BLOCKS),
        }
        for name, (value, allowed) in choices.items():
            need(value in allowed, f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        schemes = INFERENCE_SCHEMES if self.network == "mixvit" else BASELINE_INFERENCE
        need(
            self.inference in schemes,
            f"a {self.network} network infers by {', '.join(schemes)}, not {self.inference!r}",
        )
        need(
            bool(_VIT_NAME.match(self.model)),
            f"model must be a vision transformer (convit5-384, cait-xxs24, cait-xs24, convit{{L}}-{{d}}, "
            f"cait{{L}}-{{d}}), not {self.model!r}",
        )
        need(
            self.attribution_layer in ("late", "early")
            or (
                isinstance(self.attribution_layer, int)
                and not isinstance(self.attribution_layer, bool)
                and self.attribution_layer >= 0
            ),
            f"attribution_layer must be late, early or a block index >= 0, not {self.attribution_layer!r}",
        )
        need(self.mix_alpha > 0, f"mix_alpha must be positive, not {self.mix_alpha}")
        need(0.0 < self.whole_input_start <= 1.0, f"whole_input_start must be in (0, 1], not {self.whole_input_start}")
        need(0.0 <= self.whole_input_pmax <= 1.0, f"whole_input_pmax must be in [0, 1], not {self.whole_input_pmax}")
        need(
            0 <= self.single_index < self.num_members,
            f"single_index must name a subnetwork in 0..{self.num_members - 1}, not {self.single_index}",
        )
        need(0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1), not {self.label_smoothing}")
        need(0.0 <= self.random_erasing <= 1.0, f"random_erasing must be in [0, 1], not {self.random_erasing}")
        need(
            self.msda == "none" or (self.cutmix_alpha > 0 and self.mixup_alpha > 0),
            "cutmix_alpha and mixup_alpha must be positive (turn the MSDA off with msda=none)",
        )
        need(self.patch_size >= 1, f"patch_size must be positive, not {self.patch_size}")
        need(self.data_workers >= 0, f"data_workers must be >= 0, not {self.data_workers}")
        need(0.0 <= self.drop_path_rate < 1.0, f"drop_path_rate must be in [0, 1), not {self.drop_path_rate}")
        need(0.0 <= self.warmup_frac < 1.0, f"warmup_frac must be in [0, 1), not {self.warmup_frac}")
        need(self.warmup_lr > 0, f"warmup_lr must be positive, not {self.warmup_lr}")
        need(
            self.network == "mixvit" or self.input_mixing == "binarized_cutmix",
            "input_mixing=all_tokens is a MixViT ablation; the multi_encoder baselines mix with MixMo's block",
        )
        return self
