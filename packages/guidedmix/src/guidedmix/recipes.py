"""GuidedMix-Net's paper settings as recipes, each carrying the mIoU (%) the paper reports (spec guidedmix §3.5, §5).

Every setting shares 40k iterations, SGD (lr 1e-3, momentum 0.9, weight decay 1e-4, poly 0.9), alpha = 1, soft
decoupling and MITrans; the pretrained encoder is given with ``--pretrained PATH`` (a local torchvision ResNet file:
nothing is downloaded). ``digits-*`` / ``fashion-*`` recipes are our reduced settings on the built-in
``digit-scenes`` and on the Fashion-MNIST scenes (no paper number).
"""

from __future__ import annotations

import dataclasses

from mixlab.recipes import PaperResult, Recipe, RecipeBook

from guidedmix.config import GuidedMixConfig

#: VOC, CCT setting (Tables 1-4): ResNet-50, 321 crops, 12 + 12 per step, lambda < 0.5, the official 1,464 train
#: images labeled and the other 9,118 of train_aug unlabeled.
VOC_R50 = GuidedMixConfig(
    dataset="voc-aug", labels="voc-aug-1464", encoder="resnet50", crop_size=321, batch_size=12,
    unlabeled_batch_size=12, lambda_max=0.5, steps=40_000, eval_every=4_000, output_stride=32,
    psp_channels=512, decoder_channels=(256, 128, 64, 32), warmup_iters=1000,
)  # fmt: skip
#: VOC, GCT protocol (Tables 5, 10): ResNet-101, fractions of the 10,582 train_aug images.
VOC_R101 = dataclasses.replace(VOC_R50, encoder="resnet101", labels="1/8")
#: Cityscapes (Tables 6, 7): ResNet-101, 513 crops, 8 + 8, lambda < 0.3, random pairs, no classifier loss.
CITYSCAPES = dataclasses.replace(
    VOC_R101, dataset="cityscapes", labels="1/8", crop_size=513, batch_size=8, unlabeled_batch_size=8,
    lambda_max=0.3, pairing="random", use_cls_loss=False,
)  # fmt: skip
#: PASCAL-Context (Tables 8, 9): ResNet-101, 480 crops, 8 + 8, lambda < 0.4, 60 classes.
CONTEXT = dataclasses.replace(
    VOC_R101, dataset="pascal-context", labels="1/8", crop_size=480, batch_size=8, unlabeled_batch_size=8,
    lambda_max=0.4,
)  # fmt: skip
#: The released AAAI code's reading (spec §10): DeepLabV3+ (ASPP) at output stride 8, encoder features mixed instead
#: of images, random pairs, decoupling on logits, focal consistency (gamma 0.5, weight 10), 512 crops, lr 0.01,
#: weight decay 5e-4. Not the paper's method; here to compare the two readings.
RELEASED = dataclasses.replace(
    VOC_R101, arch="deeplabv3plus", output_stride=8, mix_level="features", pairing="random", decouple_space="logits",
    crop_size=512, lr=0.01, head_lr_mult=1.0, weight_decay=5e-4, use_mitrans=False, w_usup_max=1.0, rampup_frac=0.0,
    psp_channels=None, decoder_channels=None,
)  # fmt: skip

#: Ours on the built-in digit-scenes (64 x 64, 11 classes): the tiny ResNet (PSP 64, decoder 64-48-32-32: the
#: registry's narrower tiny default stays at the background prior), 8 + 8 per step, SGD 0.05 from scratch.
DIGITS = GuidedMixConfig(
    dataset="digit-scenes", labels="100", encoder="resnet-tiny", crop_size=64, batch_size=8, unlabeled_batch_size=8,
    steps=2000, eval_every=500, warmup_iters=300, lr=0.05, head_lr_mult=1.0, rotate_deg=10.0,
    scale_range=(0.75, 1.5), lambda_max=0.5, workers=0, eval_batch_size=50, psp_channels=64,
    decoder_channels=(64, 48, 32, 32),
)  # fmt: skip
#: Ours on the Fashion-MNIST scenes (11 classes: background + the 10 garment classes), sized for a CPU: the digits
#: settings on 64 x 64 canvases (a GPU run can take --encoder resnet18 --crop-size 96 --set scene_size=96).
FASHION = dataclasses.replace(DIGITS, dataset="fashion-scenes", labels="200", scene_size=64)

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")  # fmt: skip
#: Table 3: per-class IoU of the main VOC recipe (background not listed; implied ~93.9).
TABLE3 = (89.9, 60.3, 83.4, 71.1, 74.4, 88.1, 83.2, 86.9, 30.5, 74.5, 57.8, 84.6, 78.1, 81.6, 83.5, 53.2, 79.1, 48.7,
          77.6, 67.3)  # fmt: skip


def _miou(table: str, value: float, **extra: float) -> PaperResult:
    return PaperResult(table, {"miou": value} | extra)


def _build() -> tuple[dict[str, Recipe], dict[str, str]]:
    recipes: dict[str, Recipe] = {}

    def add(name: str, config: GuidedMixConfig, description: str, *results: PaperResult) -> None:
        recipes[name] = Recipe(name, config.validate(), description, results)

    # VOC, ResNet-50, 1,464 labels: the main model (Tables 1-4), its per-class IoU (Table 3), the ablations.
    main = "voc-r50-1464"
    add(main, VOC_R50, "VOC, ResNet-50, 1,464 labels (official train list) / 9,118 unlabeled: the full model",
        _miou("Table 2 (full model)", 73.7), _miou("Table 1 (lambda < 0.5)", 73.7),
        _miou("Table 4 (1,464 labels; train memory 15k MB, CCT 24k MB)", 73.7),
        PaperResult("Table 3 (per-class IoU)", {"miou": 73.7} | {f"iou_{c}": v for c, v in zip(VOC_CLASSES, TABLE3)}))  # fmt: skip
    for tau, value in ((0.1, 67.9), (0.2, 69.5), (0.3, 70.7), (0.4, 71.4)):
        add(f"{main}-lambda{tau}", dataclasses.replace(VOC_R50, lambda_max=tau),
            f"VOC, ResNet-50, 1,464 labels, lambda < {tau}", _miou(f"Table 1 (lambda < {tau})", value))  # fmt: skip
    for suffix, change, value, what in (
        ("supervised", {"variant": "supervised"}, 69.9, "the same network on the 1,464 labeled images only (FCN)"),
        ("random-pairs", {"pairing": "random"}, 71.9, "random pairs instead of similar ones"),
        ("no-mitrans", {"use_mitrans": False}, 72.7, "no MITrans (a PixelShuffle U-Net decoder)"),
        ("hard", {"decoupling": "hard"}, 71.4, "hard decoupling (Eq. 7)"),
    ):
        add(f"{main}-{suffix}", dataclasses.replace(VOC_R50, **change), f"VOC, ResNet-50, 1,464 labels: {what}",
            _miou(f"Table 2 ({suffix})", value))  # fmt: skip
    for labels, value in ((500, 65.4), (1000, 68.1)):
        add(f"voc-r50-{labels}", dataclasses.replace(VOC_R50, labels=str(labels)),
            f"VOC, ResNet-50, {labels} random train_aug labels", _miou(f"Table 4 ({labels} labels)", value))  # fmt: skip

    # VOC, ResNet-101, fractions of train_aug (Table 5), 512 crops with and without multi-scale + flip (Table 10).
    for fraction, t5, t10, t10ms in (("1/8", 73.4, 75.2, 76.4), ("1/4", 75.5, 76.5, 77.8), ("1/2", 76.5, 77.1, 78.2)):
        tag = fraction.replace("/", "-")
        base = dataclasses.replace(VOC_R101, labels=fraction)
        add(f"voc-r101-{tag}", base, f"VOC train_aug, ResNet-101, {fraction} labeled", _miou("Table 5", t5))
        crop512 = dataclasses.replace(base, crop_size=512)
        add(f"voc-r101-{tag}-crop512", crop512, f"VOC train_aug, ResNet-101, {fraction} labeled, 512 crops",
            _miou("Table 10 (single scale)", t10))  # fmt: skip
        add(f"voc-r101-{tag}-crop512-msflip", dataclasses.replace(crop512, tta="ms_flip"),
            f"VOC train_aug, ResNet-101, {fraction} labeled, 512 crops, multi-scale + flip evaluation",
            _miou("Table 10 (+MS and flip)", t10ms))  # fmt: skip
    add("voc-r101-1-16", dataclasses.replace(VOC_R101, labels="1/16"),
        "VOC train_aug, ResNet-101, 1/16 labeled (662; mentioned, not reported by the paper)")  # fmt: skip
    add("voc-r101-1-8-released", RELEASED, "VOC train_aug, 1/8: the released code's reading (DeepLabV3+ OS 8, "
        "features mixed, logits decoupled, focal consistency; spec §10); no paper number")  # fmt: skip

    # Cityscapes (Tables 6, 7).
    for labels, value in (("100", 56.9), ("1/8", 65.8), ("1/4", 67.5), ("1/2", 69.8)):
        tag = labels.replace("/", "-")
        add(f"cityscapes-r101-{tag}", dataclasses.replace(CITYSCAPES, labels=labels),
            f"Cityscapes, ResNet-101, {labels} labeled, random pairs, no L_cla", _miou("Table 7", value),
            *((_miou("Table 6 (lambda < 0.3)", value),) if labels == "1/8" else ()))  # fmt: skip
    for tau, value in ((0.1, 64.3), (0.2, 64.0), (0.4, 65.5), (0.5, 65.7)):
        add(f"cityscapes-r101-1-8-lambda{tau}", dataclasses.replace(CITYSCAPES, lambda_max=tau),
            f"Cityscapes, ResNet-101, 1/8 labeled, lambda < {tau}", _miou(f"Table 6 (lambda < {tau})", value))  # fmt: skip

    # PASCAL-Context (Tables 8, 9).
    for labels, value in (("1/8", 40.3), ("1/4", 41.7)):
        tag = labels.replace("/", "-")
        add(f"context-r101-{tag}", dataclasses.replace(CONTEXT, labels=labels),
            f"PASCAL-Context, ResNet-101, {labels} labeled, lambda < 0.4", _miou("Table 9", value),
            *((_miou("Table 8 (lambda < 0.4)", value),) if labels == "1/8" else ()))  # fmt: skip
    for tau, value in ((0.1, 37.6), (0.2, 39.4), (0.3, 39.8), (0.5, 40.1)):
        add(f"context-r101-1-8-lambda{tau}", dataclasses.replace(CONTEXT, lambda_max=tau),
            f"PASCAL-Context, ResNet-101, 1/8 labeled, lambda < {tau}", _miou(f"Table 8 (lambda < {tau})", value))  # fmt: skip

    # Ours: reduced settings on built-in / Fashion-MNIST scenes, GuidedMix against the supervised baseline.
    for name, base, counts in (("digits", DIGITS, ("50", "100", "200")), ("fashion", FASHION, ("100", "400"))):
        for labels in counts:
            config = dataclasses.replace(base, labels=labels)
            add(f"{name}-{labels}", config, f"{base.dataset}, {labels} labeled: GuidedMix (ours, reduced)")
            add(f"{name}-{labels}-supervised", dataclasses.replace(config, variant="supervised"),
                f"{base.dataset}, {labels} labeled: the supervised baseline (ours, reduced)")  # fmt: skip

    defaults = {"digit-scenes": "digits-100", "fashion-scenes": "fashion-100", "voc-aug": main,
                "cityscapes": "cityscapes-r101-1-8", "pascal-context": "context-r101-1-8"}  # fmt: skip
    return recipes, defaults


RECIPES, DEFAULTS = _build()
BOOK = RecipeBook("guidedmix", RECIPES, DEFAULTS, builtin_dataset="digit-scenes")
