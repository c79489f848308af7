"""The configuration every semi-supervised segmentation method shares (spec guidedmix §3, §4).

One flat frozen dataclass: the dataset and its labeled / unlabeled split (``labels``: a count, a fraction of the train
set or a named setting of the papers; or published split lists), the joint augmentation, the dense network, the optimisation
(SGD, poly schedule, a larger learning rate for the new modules than for the pretrained encoder), the step budget and
the inference mode of the evaluation. A package (GuidedMix) subclasses it and adds its own fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mixlab.config import need

ARCHS = ("psp_unet", "deeplabv3plus")
EVAL_MODES = ("whole", "slide")
TTA_MODES = ("none", "ms_flip")


@dataclass(frozen=True)
class SegSSLConfig:
    variant: str = "supervised"
    # -- data and split --------------------------------------------------------------------------------------
    dataset: str = "digit-scenes"
    labels: str = "100"  # the labeled images: a count ("1464"), a fraction of the train split ("1/8", n = ceil(f N))
    # or a named setting of mixlab.seg.splits.SPLIT_SETTINGS ("voc-aug-1464": the official train list)
    labeled_list: str | None = None  # a published split list (one image id per line): replaces `labels`
    unlabeled_list: str | None = None  # default: the rest of the train split
    split_seed: int = 0
    dataset_scale: float | None = None  # cityscapes: resize images and masks on load (reduced runs)
    scene_size: int | None = None  # digit-scenes / fashion-scenes: the canvas side (default 64 / 96)
    # -- augmentation (spec §3.3) ----------------------------------------------------------------------------
    crop_size: int = 64
    scale_range: tuple[float, float] = (0.5, 2.0)
    rotate_deg: float = 10.0
    hflip: bool = True
    # -- network (spec §3.1) ---------------------------------------------------------------------------------
    arch: str = "psp_unet"
    encoder: str = "resnet-tiny"
    pretrained: str | None = None  # a local torchvision-format ResNet state dict for the encoder (never a hub)
    output_stride: int | None = None  # None: 32 for psp_unet, 16 for deeplabv3plus
    psp_channels: int | None = None  # None: 512 (the spec's width), smaller for resnet-tiny
    decoder_channels: tuple[int, ...] | None = None  # None: (256, 128, 64, 32)
    use_mitrans: bool = True
    mitrans_nl_stages: tuple[int, ...] = (4, 3)
    nl_scale: bool = True
    nl_zero_init: bool = True
    bn_momentum: float | None = None  # override BatchNorm's momentum (short runs)
    # -- budget and optimisation (spec §3.2) -----------------------------------------------------------------
    steps: int = 40_000
    eval_every: int = 2_000
    batch_size: int = 12  # labeled images per step and process
    unlabeled_batch_size: int = 12  # unlabeled images per step and process
    lr: float = 1e-3
    head_lr_mult: float = 10.0  # new modules (PSP, decoder, MITrans, classifier, head) vs the pretrained encoder
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    lr_warmup_steps: int = 0  # linear learning-rate warm-up before the poly schedule (0: none, as in the paper)
    clip_grad_norm: float | None = None
    workers: int = 2  # DataLoader workers decoding file datasets (in-memory datasets need none)
    seed: int = 0
    # -- evaluation (spec §3.4) ------------------------------------------------------------------------------
    eval_mode: str = "whole"  # whole image | slide (sliding windows, Cityscapes option)
    slide_window: int = 513
    slide_stride: int = 342
    tta: str = "none"  # none | ms_flip (Table 10: scales x {identity, flip}, softmax averaged)
    tta_scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    eval_batch_size: int = 16  # in-memory datasets; file datasets go one image at a time (sizes differ)
    max_eval_images: int | None = None  # score only the first N validation images (quick checks)

    def variants(self) -> tuple[str, ...]:
        return ("supervised",)

    def validate(self):
        need(
            self.variant in self.variants(),
            f"variant must be one of {', '.join(self.variants())}, not {self.variant!r}",
        )
        need(bool(str(self.labels).strip()), "labels must be a count, a fraction (1/8) or a named split setting")
        need(self.unlabeled_list is None or self.labeled_list is not None, "unlabeled_list needs labeled_list")
        need(self.crop_size >= 8, f"crop_size must be at least 8 pixels, not {self.crop_size}")
        lo, hi = self.scale_range
        need(0 < lo <= hi, f"scale_range must be 0 < low <= high, not {self.scale_range}")
        need(0 <= self.rotate_deg <= 180, f"rotate_deg must be in [0, 180], not {self.rotate_deg}")
        need(self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        need(
            self.arch == "psp_unet"
            or (self.psp_channels is None and (self.decoder_channels is None or len(self.decoder_channels) == 1)),
            "deeplabv3plus has no PSP module and one decoder width: leave psp_channels unset and give at most one "
            "decoder_channels value",
        )
        need(self.output_stride in (None, 8, 16, 32), f"output_stride must be 8, 16 or 32, not {self.output_stride}")
        need(all(s in (1, 2, 3, 4) for s in self.mitrans_nl_stages), "mitrans_nl_stages are decoder stages 1-4")
        need(self.bn_momentum is None or 0.0 < self.bn_momentum <= 1.0, "bn_momentum must be in (0, 1]")
        need(self.steps >= 1, f"steps must be at least 1, not {self.steps}")
        need(self.eval_every >= 1, f"eval_every must be at least 1, not {self.eval_every}")
        need(self.batch_size >= 1, f"batch_size must be at least 1, not {self.batch_size}")
        need(self.unlabeled_batch_size >= 0, "unlabeled_batch_size must be >= 0")
        need(self.lr > 0 and self.head_lr_mult > 0, "lr and head_lr_mult must be > 0")
        need(self.weight_decay >= 0 and 0 <= self.momentum < 1, "weight_decay >= 0 and momentum in [0, 1)")
        need(self.poly_power >= 0, f"poly_power must be >= 0, not {self.poly_power}")
        need(self.lr_warmup_steps >= 0, "lr_warmup_steps must be >= 0")
        need(self.clip_grad_norm is None or self.clip_grad_norm > 0, "clip_grad_norm must be > 0")
        need(self.workers >= 0, "workers must be >= 0")
        need(self.eval_mode in EVAL_MODES, f"eval_mode must be one of {', '.join(EVAL_MODES)}")
        need(self.tta in TTA_MODES, f"tta must be one of {', '.join(TTA_MODES)}")
        need(self.slide_window >= 8 and 1 <= self.slide_stride <= self.slide_window, "slide: 1 <= stride <= window")
        need(len(self.tta_scales) >= 1 and all(s > 0 for s in self.tta_scales), "tta_scales must be positive")
        need(self.eval_batch_size >= 1, "eval_batch_size must be >= 1")
        need(self.max_eval_images is None or self.max_eval_images >= 1, "max_eval_images must be >= 1")
        need(self.dataset_scale is None or self.dataset_scale > 0, "dataset_scale must be > 0")
        need(self.scene_size is None or self.scene_size >= 16, "scene_size must be at least 16 pixels")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
