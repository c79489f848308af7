"""The configuration every multi-input multi-output method shares (MixMo, MixShare, ...).

One flat frozen dataclass of the thesis's common knobs (spec §8): data stream, backbone and members, the mixing
block, optimisation. A method subclasses it, adds its own fields and may redeclare a field to change its default
(MixShare: p=1, r=1, b=2, identical encoders). `validate()` checks the common fields; subclasses extend it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from mixlab.config import need

ENCODER_INITS = ("independent", "identical", "colinear")
ENSEMBLE_REDUCE = ("mean_logits", "mean_probs")
LEVELS = ("batch", "sample")


@dataclass(frozen=True)
class MultiInputConfig:
    # -- data --------------------------------------------------------------------------------------------
    dataset: str = "cifar100"
    image_size: int = 0  # side the dataset is built at (digits: any, e.g. 16; file-backed sets: crop side); 0: its own
    batch_size: int = 64  # rows per step and per process; each row carries M images
    batch_repetitions: int = 4  # b: every sampled image appears b times in a batch (spec §3.8)
    input_repetition: float = 0.0  # share of rows with the same image on every input (MixShare: 0.1)
    crop_padding: int = 4  # random crop after zero padding
    hflip: bool = True
    augmix: bool = False  # CIFAR-100-C robustness experiments (Table 3.2)
    # -- model -------------------------------------------------------------------------------------------
    model: str = "wrn28-10"
    num_members: int = 2  # M; 1 is the plain network
    shared_encoder: bool = False  # Table 3.4: one encoder for every input
    encoder_init: str = "independent"  # independent | identical | colinear (MixShare's kernel alignment)
    # -- mixing block ------------------------------------------------------------------------------------
    block: str = "cutmix"  # the binary block used with probability p (Table 3.3)
    alpha: float = 2.0  # kappa ~ Beta(alpha, alpha) / Dir_M(alpha); <= 0 means fixed 1/M (MIMO)
    binary_prob: float = 0.5  # p: probability that a batch uses the binary block rather than linear mixing
    binary_prob_decay_start: float = 11 / 12  # p decays linearly to 0 over the last 1/12 of training
    scale_by_M: bool = True  # the xM factor matching the test-time sum of encodings
    binary_choice_level: str = "batch"  # binary-vs-linear drawn per batch (official) or per sample
    role_swap_level: str = "batch"  # which input owns the patch: drawn per batch (official) or per sample
    cutmix_box: str = "clip"  # clip (official: box clipped at the border) | inside
    weight_root: float = 3.0  # r of w_r; 1 gives w = M kappa; inf gives w = 1
    ensemble_reduce: str = "mean_logits"  # how the M heads are averaged at test time
    # -- optimisation ------------------------------------------------------------------------------------
    epochs: int = 300
    steps: int | None = None  # run length in optimizer steps (default: epochs x steps per epoch)
    eval_every: int | None = None  # optimizer steps between evaluations (default: one epoch)
    base_lr: float = 0.1  # lr = base_lr / b * batch_size / lr_reference_batch (spec §6.2)
    lr_reference_batch: int = 128
    momentum: float = 0.9
    nesterov: bool = True
    l2: float = 3e-4  # official: 3e-4 * sum(theta^2) added to the loss == SGD weight decay 6e-4 on all params
    weight_decay: float = 0.0  # optimizer weight decay on top (Tiny ImageNet: 1e-4, with l2 = 0)
    warmup_epochs: float = 1.0
    milestones: tuple[int, ...] = (100, 200, 225)  # LR x gamma after these many completed epochs
    gamma: float = 0.1
    seed: int = 0

    def lr_for(self, world_size: int = 1) -> float:
        """The thesis's linear rule on the global batch: ``base_lr / b * (batch_size x world_size) / 128``, so that
        ``--batch-size B/N`` on N processes trains as the 1-process recipe of batch B does."""
        return self.base_lr / self.batch_repetitions * self.batch_size * world_size / self.lr_reference_batch

    @property
    def lr(self) -> float:
        return self.lr_for(1)

    @property
    def optimizer_weight_decay(self) -> float:
        """SGD weight decay equal to the official L2 loss term (its gradient is 2 * l2 * theta) plus any extra."""
        return 2.0 * self.l2 + self.weight_decay

    def dataset_options(self) -> dict:
        """Options of `build_dataset` for the train and test splits: the image side when ``image_size`` is set (a
        dataset that cannot change its size refuses it with a one-line error)."""
        return {"image_size": self.image_size} if self.image_size else {}

    def validate(self):
        need(self.image_size >= 0, f"image_size must be >= 0 (0: the dataset's own), not {self.image_size}")
        need(self.num_members >= 1, f"num_members (M) must be at least 1, not {self.num_members}")
        need(self.batch_size >= 1, f"batch size must be positive, not {self.batch_size}")
        need(self.batch_repetitions >= 1, f"batch repetitions b must be at least 1, not {self.batch_repetitions}")
        need(
            self.batch_size % self.batch_repetitions == 0,
            f"batch size {self.batch_size} is not divisible by the batch repetitions b={self.batch_repetitions}",
        )
        need(0.0 <= self.input_repetition <= 1.0, f"input_repetition must be in [0, 1], not {self.input_repetition}")
        need(0.0 <= self.binary_prob <= 1.0, f"binary_prob (p) must be in [0, 1], not {self.binary_prob}")
        need(0.0 < self.binary_prob_decay_start <= 1.0, "binary_prob_decay_start must be in (0, 1]")
        need(self.weight_root > 0 or math.isinf(self.weight_root), f"weight_root r must be > 0, not {self.weight_root}")
        need(self.encoder_init in ENCODER_INITS, f"encoder_init must be one of {', '.join(ENCODER_INITS)}")
        need(self.ensemble_reduce in ENSEMBLE_REDUCE, f"ensemble_reduce must be one of {', '.join(ENSEMBLE_REDUCE)}")
        need(self.binary_choice_level in LEVELS and self.role_swap_level in LEVELS, "levels must be batch or sample")
        need(self.cutmix_box in ("clip", "inside"), "cutmix_box must be clip or inside")
        need(self.epochs >= 1, f"epochs must be at least 1, not {self.epochs}")
        need(self.steps is None or self.steps >= 1, f"steps must be at least 1, not {self.steps}")
        need(self.eval_every is None or self.eval_every >= 1, f"eval_every must be at least 1, not {self.eval_every}")
        need(self.base_lr > 0, f"the learning rate must be positive, not {self.base_lr}")
        need(self.l2 >= 0 and self.weight_decay >= 0, "l2 and weight_decay must be >= 0")
        need(self.crop_padding >= 0, "crop_padding must be >= 0")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
