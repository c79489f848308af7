"""The configuration every semi-supervised method shares.

One flat frozen dataclass: the data split (label count, class-mismatch protocol), the input pipeline, the step
budget, optimisation, the EMA, and the knobs of the four base algorithms (supervised, Mean Teacher, MixMatch,
FixMatch; their own default hyperparameters live on their classes, `mixlab.ssl.algorithms`). A package (RealMix,
SAMOSA, SciMix) subclasses it and adds its own fields.

Training is counted in optimizer steps (``steps``) and evaluated every ``eval_every`` steps (the MixMatch code's
"64 kimg" epochs); an epoch of the data stream is one pass over the unlabeled set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from mixlab.config import need

BASE_VARIANTS = ("supervised", "mean-teacher", "mixmatch", "fixmatch")
OPTIMIZERS = ("adam", "sgd")
WEIGHT_DECAY_MODES = ("decoupled", "l2")
LR_SCHEDULES = ("constant", "cosine", "cosine_horizon")
INPUT_SCALES = ("minus_one_one", "normalize")
RAMPS = ("linear", "sigmoid")


@dataclass(frozen=True)
class SSLConfig:
    RENAMED: ClassVar[dict[str, str]] = {"total_steps": "steps"}  # fields of older saved configs

    variant: str = "mixmatch"  # supervised | mean-teacher | mixmatch | fixmatch (packages add theirs)
    # -- data split --------------------------------------------------------------------------------------
    dataset: str = "cifar10"
    image_size: int | None = None  # datasets decoded at a chosen size (cub200: 64 or 96); None: the dataset's own
    num_labeled: int = 250
    num_validation: int = 0  # held out of both sets (the MixMatch protocol uses none)
    split_seed: int = 1
    labeled_classes: tuple[int, ...] | None = None  # None: every class
    mismatch: float | None = None  # % of the unlabeled classes outside labeled_classes (RealMix/Oliver protocol)
    unlabeled_classes: tuple[int, ...] | None = None  # explicit unlabeled classes (instead of mismatch)
    balance: str = "uniform"  # uniform (N/K per class) | proportional (to the training class frequencies)
    unlabeled_includes_labeled: bool = False  # FixMatch: the labeled images are also in the unlabeled set
    use_extra: bool = False  # SVHN: append the 531k `extra` images to the unlabeled set
    eval_restrict_classes: bool = False  # predict by argmax over the labeled classes only (mismatch protocol)
    # -- input pipeline ----------------------------------------------------------------------------------
    model: str = "wrnmm28-2"
    bn_momentum: float | None = None  # override the backbone's BatchNorm momentum (short runs: faster statistics)
    input_scale: str = "minus_one_one"  # x*2/255-1 (MixMatch code) | normalize (dataset mean/std)
    crop_padding: int = 4  # reflect-padded random translation of the weak augmentation
    hflip: bool = True  # CIFAR yes, SVHN / digits no
    randaugment_ops: int = 2  # FixMatch strong view: RandAugment(N ops, random magnitude) + Cutout
    randaugment_magnitude: int = 10
    strong_cutout: int = 16  # Cutout side of the strong view in pixels (0: off)
    # -- steps -------------------------------------------------------------------------------------------
    batch_size: int = 64  # labeled images per step and process
    unlabeled_ratio: int = 1  # mu: unlabeled images per labeled image in a step (FixMatch: 7)...
    unlabeled_batch_size: int | None = None  # ... or the unlabeled batch itself (Mean Teacher code: 124 + 388)
    steps: int | None = 2**19  # the budget in optimizer steps (MixMatch, FixMatch count them)...
    epochs: float | None = None  # ... or in epochs over the unlabeled set (SAMOSA, SciMix), when steps is None
    eval_every: int = 1024  # steps between evaluations (64 kimg at B=64); there is always one at the end
    report_last: int = 20  # report the median of the last N evaluations (MixMatch protocol)
    seed: int = 0
    # -- optimisation ------------------------------------------------------------------------------------
    optimizer: str = "adam"
    lr: float = 0.002
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    weight_decay: float = 0.02
    weight_decay_on: str = "kernels"  # kernels: conv/linear weights only (MixMatch code) | all (PyTorch SGD default)
    weight_decay_mode: str = "decoupled"  # decoupled: kernels *= 1 - wd*lr after each step (MixMatch code) | l2
    lr_schedule: str = "constant"  # constant | cosine (FixMatch: lr * cos(7 pi k / 16 K)) | cosine_horizon (below)
    lr_horizon: float = 1.0  # cosine_horizon: the cosine reaches 0 at horizon x cycle (SAMOSA/SciMix: 350/300)
    lr_cycles: int = 1  # cosine_horizon: restarts of the schedule (SAMOSA Mean Teacher: 3 cycles)
    clip_grad_norm: float | None = None  # clip the global gradient norm (SAMOSA: 1.0)
    init_checkpoint: str | None = None  # start from a local checkpoint's weights; its classifier head is not loaded
    ema_decay: float = 0.999  # evaluation model (and Mean Teacher's teacher)
    ema_buffers: str = "copy"  # copy the live BN statistics (MixMatch code) | average them | own (Mean Teacher code:
    # the teacher's statistics come from its own train-mode passes)
    ema_warmup: bool = False  # Mean Teacher's decay min(1 - 1/(t+1), ema_decay), t = steps done
    label_smoothing: float = 0.0
    # -- unlabeled loss ----------------------------------------------------------------------------------
    lambda_u: float = 75.0  # weight of the unlabeled loss (MixMatch CIFAR-10: 75, SVHN: 250)
    rampup_steps: int = 16384  # lambda_u ramps from 0 to lambda_u over these steps (0: no ramp)...
    rampup_epochs: float | None = None  # ... or over these epochs of the unlabeled set (Mean Teacher code: 5)
    rampup: str = "linear"  # linear (MixMatch) | sigmoid (Mean Teacher's exp(-5(1-t)^2))
    # -- Mean Teacher ------------------------------------------------------------------------------------
    dual_head: bool = False  # spec samosa-scimix §1.4: primary + stability heads, consistency on every row
    logit_distance_weight: float = 0.01  # dual head: lambda_logit of ||y_pred - y_cons||^2 / K
    # -- MixMatch ----------------------------------------------------------------------------------------
    k_aug: int = 2  # augmentations per unlabeled image for the guess
    temperature: float = 0.5  # sharpening T
    mixup_alpha: float = 0.75
    mixup_per_sample: bool = True  # one lambda per row (MixMatch/RealMix code) or per batch (YU1ut port)
    bn_mode: str = "interleave"  # interleave (3 forwards, official) | concat (one forward of 3B)
    guess_updates_bn: bool = False  # the official code discards the guessing passes' BN updates
    # -- FixMatch ----------------------------------------------------------------------------------------
    threshold: float = 0.95  # confidence tau of the pseudo-labels

    @property
    def unlabeled_batch(self) -> int:
        if self.unlabeled_batch_size is not None:
            return self.unlabeled_batch_size
        return self.batch_size * self.unlabeled_ratio

    def variants(self) -> tuple[str, ...]:
        return BASE_VARIANTS

    def validate(self):
        need(
            self.variant in self.variants(),
            f"variant must be one of {', '.join(self.variants())}, not {self.variant!r}",
        )
        need(self.num_labeled >= 1, f"num_labeled must be at least 1, not {self.num_labeled}")
        need(self.image_size is None or self.image_size >= 8, f"image_size must be >= 8, not {self.image_size}")
        need(self.batch_size >= 1 and self.unlabeled_ratio >= 1, "batch_size and unlabeled_ratio must be >= 1")
        need(self.unlabeled_batch_size is None or self.unlabeled_batch_size >= 1, "unlabeled_batch_size must be >= 1")
        need(self.steps is not None or self.epochs is not None, "give the budget: steps or epochs")
        need(self.steps is None or self.steps >= 1, f"steps must be at least 1, not {self.steps}")
        need(self.epochs is None or self.epochs > 0, f"epochs must be positive, not {self.epochs}")
        need(self.eval_every >= 1, f"eval_every must be at least 1, not {self.eval_every}")
        need(self.lr_horizon > 0 and self.lr_cycles >= 1, "lr_horizon must be > 0 and lr_cycles >= 1")
        need(
            self.weight_decay_on in ("kernels", "all"),
            f"weight_decay_on must be kernels or all, not {self.weight_decay_on!r}",
        )
        need(self.clip_grad_norm is None or self.clip_grad_norm > 0, "clip_grad_norm must be > 0")
        need(self.logit_distance_weight >= 0, "logit_distance_weight must be >= 0")
        need(self.report_last >= 1, "report_last must be >= 1")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        need(self.weight_decay_mode in WEIGHT_DECAY_MODES, f"weight_decay_mode: one of {', '.join(WEIGHT_DECAY_MODES)}")
        need(self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
        need(self.input_scale in INPUT_SCALES, f"input_scale must be one of {', '.join(INPUT_SCALES)}")
        need(self.rampup in RAMPS, f"rampup must be one of {', '.join(RAMPS)}")
        need(self.ema_buffers in ("copy", "average", "own"), "ema_buffers must be copy, average or own")
        need(
            self.ema_buffers != "own" or self.variant == "mean-teacher",
            "ema_buffers=own keeps the statistics of the teacher's own passes: only Mean Teacher has them",
        )
        need(self.bn_mode in ("interleave", "concat"), "bn_mode must be interleave or concat")
        need(self.bn_momentum is None or 0.0 < self.bn_momentum <= 1.0, "bn_momentum must be in (0, 1]")
        need(self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0")
        need(0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1), not {self.ema_decay}")
        need(0.0 <= self.label_smoothing < 1.0, "label_smoothing must be in [0, 1)")
        need(self.lambda_u >= 0 and self.rampup_steps >= 0, "lambda_u and rampup_steps must be >= 0")
        need(self.rampup_epochs is None or self.rampup_epochs >= 0, "rampup_epochs must be >= 0")
        need(self.k_aug >= 1, f"k_aug must be >= 1, not {self.k_aug}")
        need(self.temperature > 0, f"the sharpening temperature must be > 0, not {self.temperature}")
        need(0.0 < self.threshold <= 1.0, f"threshold must be in (0, 1], not {self.threshold}")
        need(self.crop_padding >= 0 and self.strong_cutout >= 0, "crop_padding and strong_cutout must be >= 0")
        need(self.mismatch is None or 0.0 <= self.mismatch <= 100.0, "mismatch is a percentage in [0, 100]")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Fields that describe the data and the budget (run length and what scales with it: the EMA horizon, the lambda_u
#: ramp, the BatchNorm momentum): kept when a recipe is switched to another algorithm (`with_variant`).
DATA_FIELDS = (
    "dataset", "image_size", "num_labeled", "num_validation", "split_seed", "labeled_classes", "mismatch", "unlabeled_classes",
    "balance", "use_extra", "eval_restrict_classes", "model", "bn_momentum", "crop_padding", "hflip", "batch_size",
    "steps", "epochs", "eval_every", "report_last", "seed", "ema_decay", "rampup_steps", "init_checkpoint",
)  # fmt: skip
