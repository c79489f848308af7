"""SAMOSA's paper settings as recipes, each carrying the numbers the paper reports (spec samosa-scimix §2.7, §2.9).

Budgets are in epochs over the unlabeled set, as the sources count them ([T] A.1.1), and become steps when the run
knows its data. Every table row is one recipe: the baselines are the same recipes with the SAMOSA components off
(Mean Teacher "reproduced, 3 cycles" keeps the cycles and LR restarts; MixMatch "reproduced" its shortened
schedule). ``digits-*`` recipes are our own reduced settings on the built-in data (no paper number).
"""

from __future__ import annotations

import dataclasses

from mixlab.recipes import PaperResult, Recipe, RecipeBook

from samosa.config import SamosaConfig

#: Mean Teacher with SAMOSA, CIFAR-10 ([T] A.1.1, l. 2161-2173; [S] §4.1): SGD Nesterov 0.9, weight decay 5e-4,
#: cosine from 0.2 over a 350-epoch horizon per 300-epoch cycle, 3 cycles with LR restarts, batch 124 + 388, the
#: dual-head Mean Teacher (consistency 300 ramped over 5 epochs, logit distance 0.01, EMA 0.97 after a linear
#: start), gradients clipped to norm 1, hybrids in epochs [150, 250) of cycles 2 and 3.
MT_CIFAR10 = SamosaConfig(
    variant="mean-teacher",
    dataset="cifar10",
    model="wrn28-2",
    num_labeled=1000,
    split_seed=0,
    dual_head=True,
    input_scale="normalize",
    crop_padding=4,
    hflip=True,
    batch_size=124,
    unlabeled_batch_size=388,
    steps=None,
    epochs=900,
    eval_every=2000,
    report_last=1,
    optimizer="sgd",
    lr=0.2,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,
    weight_decay_mode="l2",
    weight_decay_on="all",
    lr_schedule="cosine_horizon",
    lr_horizon=350 / 300,
    lr_cycles=3,
    clip_grad_norm=1.0,
    ema_decay=0.97,
    ema_warmup=True,
    ema_buffers="own",
    lambda_u=300.0,
    rampup="sigmoid",
    rampup_epochs=5.0,
    logit_distance_weight=0.01,
    label_smoothing=0.0,
    lambda_rec=0.25,
    lambda_samosa=0.5,
    hybrid_window=(150.0, 250.0),
    rec_lr=0.2,
    rec_lr_horizon=350 / 300,
    rec_lr_cycles=3,
)
#: SVHN: 30 + 500 per batch, 150-epoch cycles over a 200-epoch horizon, lambda_SAMOSA 0.1, hybrids in [50, 100).
MT_SVHN = dataclasses.replace(
    MT_CIFAR10, dataset="svhn", num_labeled=100, hflip=False, batch_size=30, unlabeled_batch_size=500, epochs=450,
    lr_horizon=200 / 150, rec_lr_horizon=200 / 150, lambda_samosa=0.1, hybrid_window=(50.0, 100.0),
)  # fmt: skip
#: MNIST-M-style data (case study): 30 + 500, 300-epoch cycles, horizon 350 [REC], lambda_SAMOSA 0.1, no flip.
MT_MNISTM = dataclasses.replace(
    MT_CIFAR10, dataset="mnistm", num_labeled=100, hflip=False, batch_size=30, unlabeled_batch_size=500,
    lambda_samosa=0.1,
)  # fmt: skip
#: CIFAR-100 [REC]: the CIFAR-10 column with 100 classes.
MT_CIFAR100 = dataclasses.replace(MT_CIFAR10, dataset="cifar100", num_labeled=2500)

#: MixMatch with SAMOSA, CIFAR-10 ([T] A.1.1): AdamW 0.002 constant, decoupled weight decay 0.02, EMA 0.999,
#: lambda_u 37.5 ramped over 16,384 steps, batch 256 + 256, 900 epochs, one lambda per batch (YU1ut's code), the
#: extra BatchNorms on the resampling convolutions; E_r and D: SGD cosine from 0.2 over a 950-epoch horizon;
#: hybrids instead of MixUp on 20% of the batches in epochs [100, 800).
MIXMATCH_CIFAR10 = dataclasses.replace(
    MT_CIFAR10,
    variant="mixmatch",
    dual_head=False,
    num_labeled=1000,
    batch_size=256,
    unlabeled_batch_size=None,
    unlabeled_ratio=1,
    optimizer="adam",
    lr=0.002,
    weight_decay=0.02,
    weight_decay_mode="decoupled",
    lr_schedule="constant",
    lr_cycles=1,
    ema_decay=0.999,
    ema_warmup=False,
    ema_buffers="copy",
    lambda_u=37.5,
    rampup="linear",
    rampup_epochs=None,
    rampup_steps=16384,
    k_aug=2,
    temperature=0.5,
    mixup_alpha=0.75,
    mixup_per_sample=False,
    trunk_shortcut_bn=True,
    extra_bn_resample=True,
    hybrid_window=(100.0, 800.0),
    hybrid_prob=0.2,
    rec_lr_horizon=950 / 900,
    rec_lr_cycles=1,
)

#: FixMatch with SAMOSA [REC, §2.6c]: the SciMix-FixMatch classifier settings (SGD 0.015 Nesterov, weight decay
#: 5e-4, cosine over a 1050-epoch horizon, 1000 epochs, 32 + 224, lambda_u 1, tau 0.95, RandAugment + Cutout, EMA
#: 0.999), hybrids on 20% of the batches during the whole run.
FIXMATCH_CIFAR10 = dataclasses.replace(
    MT_CIFAR10,
    variant="fixmatch",
    dual_head=False,
    num_labeled=100,
    batch_size=32,
    unlabeled_batch_size=224,
    optimizer="sgd",
    lr=0.015,
    lr_horizon=1050 / 1000,
    lr_cycles=1,
    epochs=1000,
    ema_decay=0.999,
    ema_warmup=False,
    ema_buffers="copy",
    lambda_u=1.0,
    rampup_epochs=None,
    rampup_steps=0,
    threshold=0.95,
    unlabeled_includes_labeled=True,
    hybrid_window=(0.0, 1e9),
    hybrid_prob=0.2,
    rec_lr_horizon=1050 / 1000,
    rec_lr_cycles=1,
)

#: Our reduced setting on the built-in digits: WRN-16-1 trunks, 100 labels, 16 + 48 per step, 3 cycles of 4 epochs
#: (336 steps), hybrids in epochs [1, 3) of cycles 2 and 3, consistency 10 ramped over one epoch (the paper's 300
#: over 5 epochs collapses these short runs to constant predictions: 10.3 % top-1 against 18.1 % with 10, CPU,
#: 2026-12-04). A few minutes on 2 CPU cores.
DIGITS_MT = dataclasses.replace(
    MT_CIFAR10, dataset="digits", model="wrn16-1", num_labeled=100, batch_size=16, unlabeled_batch_size=48,
    hflip=False, crop_padding=2, epochs=12, eval_every=28, report_last=4, lr=0.1, rec_lr=0.1, num_gates=32,
    lambda_u=10.0, rampup_epochs=1.0, hybrid_window=(1.0, 3.0), hybrids_per_labeled=10,
)  # fmt: skip
DIGITS_MIXMATCH = dataclasses.replace(
    MIXMATCH_CIFAR10, dataset="digits", model="wrn16-1", num_labeled=100, batch_size=32, hflip=False,
    crop_padding=2, epochs=12, eval_every=40, report_last=4, rampup_steps=128, num_gates=32, ema_decay=0.99,
    hybrid_window=(1.0, 11.0), rec_lr=0.1,
)  # fmt: skip
DIGITS_FIXMATCH = dataclasses.replace(
    FIXMATCH_CIFAR10, dataset="digits", model="wrn16-1", num_labeled=100, batch_size=16, unlabeled_batch_size=48,
    hflip=False, crop_padding=2, epochs=12, eval_every=28, report_last=4, lr=0.03, num_gates=32, ema_decay=0.99,
    rec_lr=0.1, randaugment_ops=2,
)  # fmt: skip

#: The Table 2 components, as config overrides.
COMPONENTS = {
    "samosa": {},
    "omega": {"use_hybrid_aug": False},  # reconstruction module + Omega_rec, no hybrid augmentation
    "baseline": {"use_reconstruction": False, "use_omega_rec": False, "use_hybrid_aug": False},
}


def _acc(table: str, mean: float, std: float | None = None, **extra: float) -> PaperResult:
    metrics = {"top1": mean} | ({"top1_std": std} if std is not None else {}) | extra
    return PaperResult(table, metrics)


def _build() -> tuple[dict[str, Recipe], dict[str, str]]:
    recipes: dict[str, Recipe] = {}

    def add(name: str, config: SamosaConfig, description: str, *results: PaperResult) -> None:
        recipes[name] = Recipe(name, config.validate(), description, results)

    def variant(config: SamosaConfig, part: str, **changes) -> SamosaConfig:
        return dataclasses.replace(config, **COMPONENTS[part], **changes)

    # Table 1 (= Table 2.1): CIFAR-10 at 250 / 500 / 1000 labels, accuracy %, 3 seeds.
    t1 = "Table 1 (CIFAR-10, accuracy %)"
    table1 = {
        250: {"supervised": (27.8, 0.9), "mt": (61.3, 3.3), "mt-samosa": (68.1, 3.3), "mixmatch": (82.4, 0.4),
              "mixmatch-samosa": (84.1, 2.2)},
        500: {"supervised": (35.4, 1.9), "mt": (76.4, 3.1), "mt-samosa": (82.4, 1.3), "mixmatch": (86.8, 0.2),
              "mixmatch-samosa": (89.4, 0.8)},
        1000: {"supervised": (43.5, 2.4), "mt": (87.6, 0.3), "mt-samosa": (88.7, 0.3), "mixmatch": (90.4, 0.1),
               "mixmatch-samosa": (90.7, 0.3)},
    }  # fmt: skip
    for labels, row in table1.items():
        mt = dataclasses.replace(MT_CIFAR10, num_labeled=labels)
        mm = dataclasses.replace(MIXMATCH_CIFAR10, num_labeled=labels)
        if labels == 250:  # [T] A.1.1: 250 + 250 per batch at 250 labels
            mm = dataclasses.replace(mm, batch_size=250)
        extra_mt: tuple[PaperResult, ...] = ()
        extra_mm: tuple[PaperResult, ...] = ()
        if labels == 500:
            extra_mt = (
                _acc("Table 2 (CIFAR-10 @ 500, L_0 + Omega_rec + hybrids, MT)", 82.4, 1.3),
                _acc("Table 2.3a (SAMOSA generator-classifier w/ MT, with hybrids)", 82.4, 1.3),
            )
            extra_mm = (_acc("Table 2 (CIFAR-10 @ 500, L_0 + Omega_rec + hybrids, MixMatch)", 89.4, 0.8),)
        base = dataclasses.replace(
            variant(mt, "baseline"), variant="supervised", lambda_u=0.0, dual_head=False, ema_buffers="copy"
        )
        add(
            f"cifar10-{labels}-supervised",
            base,
            f"CIFAR-10 @ {labels}: the labeled images alone, MT schedule",
            _acc(t1, *row["supervised"]),
        )
        add(
            f"cifar10-{labels}-mt",
            variant(mt, "baseline"),
            f"CIFAR-10 @ {labels}: Mean Teacher, 3 cycles",
            _acc(t1, *row["mt"]),
            *(
                (
                    _acc("Table 2 (CIFAR-10 @ 500, L_0 only, MT)", 76.4, 3.1),
                    _acc("Table 2.3a (Mean Teacher)", 76.4, 3.1),
                )
                if labels == 500
                else ()
            ),
        )
        add(
            f"cifar10-{labels}-mt-samosa",
            mt,
            f"CIFAR-10 @ {labels}: Mean Teacher + SAMOSA",
            _acc(t1, *row["mt-samosa"]),
            *extra_mt,
        )
        add(
            f"cifar10-{labels}-mixmatch",
            variant(mm, "baseline"),
            f"CIFAR-10 @ {labels}: MixMatch (shortened)",
            _acc(t1, *row["mixmatch"]),
            *((_acc("Table 2 (CIFAR-10 @ 500, L_0 only, MixMatch)", 86.8, 0.2),) if labels == 500 else ()),
        )
        add(f"cifar10-{labels}-mixmatch-samosa", mm, f"CIFAR-10 @ {labels}: MixMatch + SAMOSA",
            _acc(t1, *row["mixmatch-samosa"]), *extra_mm)  # fmt: skip

    # Table 2: the component ablation at 500 labels (reconstruction module + Omega_rec, no hybrids).
    add(
        "cifar10-500-mt-omega",
        variant(dataclasses.replace(MT_CIFAR10, num_labeled=500), "omega"),
        "CIFAR-10 @ 500: MT + reconstruction module and Omega_rec, no hybrids",
        _acc("Table 2 (CIFAR-10 @ 500, L_0 + Omega_rec, MT)", 82.1, 1.5),
        _acc("Table 2.3a (SAMOSA generator-classifier w/ MT, no hybrids)", 82.1, 1.5),
    )
    add("cifar10-500-mixmatch-omega", variant(dataclasses.replace(MIXMATCH_CIFAR10, num_labeled=500), "omega"),
        "CIFAR-10 @ 500: MixMatch + reconstruction module and Omega_rec, no hybrids",
        _acc("Table 2 (CIFAR-10 @ 500, L_0 + Omega_rec, MixMatch)", 88.5, 1.2))  # fmt: skip

    # Table 2.4: after ONE Mean Teacher cycle (300 epochs), against SciMix's table; 250 and 500 labels.
    for labels, (mt_acc, mt_std, sa_acc, sa_std) in {250: (57.7, 4.0, 60.4, 0.3), 500: (69.6, 1.4, 75.7, 3.4)}.items():
        one = dataclasses.replace(MT_CIFAR10, num_labeled=labels, epochs=300, lr_cycles=1, rec_lr_cycles=1)
        # one cycle: no stored hybrids yet; SAMOSA's gain then comes from the reconstruction module and Omega_rec
        add(
            f"cifar10-{labels}-mt-1cycle",
            variant(one, "baseline"),
            f"CIFAR-10 @ {labels}: MT, end of cycle 1",
            _acc("Table 2.4 (one MT cycle)", mt_acc, mt_std),
        )
        # Hybrids are stored only between cycles: in one cycle SAMOSA is L_rec + Omega_rec (the hybrid switch off).
        add(f"cifar10-{labels}-mt-samosa-1cycle", dataclasses.replace(one, use_hybrid_aug=False),
            f"CIFAR-10 @ {labels}: MT + SAMOSA, end of cycle 1",
            _acc("Table 2.4 (one MT cycle, in-class MSDA w/ MT)", sa_acc, sa_std))  # fmt: skip

    # Results stated in the text ([S] §4.1; SVHN also [T] l. 896).
    add(
        "svhn-100-mt",
        variant(MT_SVHN, "baseline"),
        "SVHN @ 100: Mean Teacher, 3 cycles",
        _acc("[S] §4.1 text (SVHN @ 100)", 62.5, 3.7),
    )
    add(
        "svhn-100-mt-samosa",
        MT_SVHN,
        "SVHN @ 100: Mean Teacher + SAMOSA",
        _acc("[S] §4.1 text (SVHN @ 100)", 66.2, 2.2),
    )
    for labels, (b, bs, s, ss) in {1000: (24.9, 0.7, 27.6, 2.3), 2500: (48.1, 0.8, 51.0, 0.5)}.items():
        c100 = dataclasses.replace(MT_CIFAR100, num_labeled=labels)
        add(
            f"cifar100-{labels}-mt",
            variant(c100, "baseline"),
            f"CIFAR-100 @ {labels}: Mean Teacher, 3 cycles",
            _acc(f"[S] §4.1 text (CIFAR-100 @ {labels})", b, bs),
        )
        add(
            f"cifar100-{labels}-mt-samosa",
            c100,
            f"CIFAR-100 @ {labels}: Mean Teacher + SAMOSA",
            _acc(f"[S] §4.1 text (CIFAR-100 @ {labels})", s, ss),
        )
    add(
        "cifar10-100-fixmatch",
        variant(FIXMATCH_CIFAR10, "baseline"),
        "CIFAR-10 @ 100: FixMatch",
        _acc("[S] §4.1 text (FixMatch, CIFAR-10 @ 100)", 91.5, 0.6),
    )
    add("cifar10-100-fixmatch-samosa", FIXMATCH_CIFAR10, "CIFAR-10 @ 100: FixMatch + SAMOSA",
        _acc("[S] §4.1 text (FixMatch, CIFAR-10 @ 100)", 92.1, 0.2))  # fmt: skip

    # Table 3 (= A.13): component separation at the end of training, reduced settings (learning rates and batches
    # halved, one GPU), measured with `samosa separation`.
    def halved(config: SamosaConfig) -> SamosaConfig:
        unlabeled = config.unlabeled_batch_size // 2 if config.unlabeled_batch_size else None
        return dataclasses.replace(config, lr=config.lr / 2, rec_lr=config.rec_lr / 2, batch_size=config.batch_size // 2,
                                   unlabeled_batch_size=unlabeled)  # fmt: skip

    sep = "Table 3 (= A.13, component separation, reduced settings; %)"
    add(
        "cifar10-1000-mt-samosa-separation",
        halved(dataclasses.replace(MT_CIFAR10, num_labeled=1000)),
        "CIFAR-10 @ 1000, reduced: separation study",
        PaperResult(sep, {"s_c": 97.3, "s_c_std": 0.6, "s_r": 100.0, "s_r_std": 0.0, "ratio": 15.5, "ratio_std": 2.6}),
        PaperResult("[S] §4.4 (s_c after cycle 1 / 2)", {"s_c_cycle1": 74.1, "s_c_cycle2": 93.0}),
    )
    add(
        "svhn-250-mt-samosa-separation",
        halved(dataclasses.replace(MT_SVHN, num_labeled=250)),
        "SVHN @ 250, reduced: separation study",
        PaperResult(sep, {"s_c": 100.0, "s_c_std": 0.0, "s_r": 98.2, "s_r_std": 0.3, "ratio": 7.6, "ratio_std": 1.4}),
    )
    add(
        "mnistm-100-mt-samosa",
        halved(MT_MNISTM),
        "MNIST-M-style @ 100, reduced: separation study",
        PaperResult(
            sep,
            {
                "s_c": 99.9,
                "s_c_std": 0.2,
                "s_r_background": 96.8,
                "s_r_background_std": 3.1,
                "ratio": 11.0,
                "ratio_std": 4.0,
            },
        ),
    )
    add("cifar10-1000-mt-samosa-adversarial", dataclasses.replace(MT_CIFAR10, adversarial_zr=True),
        "CIFAR-10 @ 1000: MT + SAMOSA with an adversarially cleaned z_r ([T] A.3.3)",
        _acc("[S] §4.3 (adversarial z_r; linear probe on z_r ~18%)", 88.5, 0.1, probe_zr=18.0))  # fmt: skip

    # Ours: the built-in digits (no paper number).
    for base_name, config in (("mt", DIGITS_MT), ("mixmatch", DIGITS_MIXMATCH), ("fixmatch", DIGITS_FIXMATCH)):
        add(f"digits-100-{base_name}", variant(config, "baseline"), f"digits @ 100 (ours): {base_name}")
        add(f"digits-100-{base_name}-samosa", config, f"digits @ 100 (ours): {base_name} + SAMOSA")
    return recipes, {
        "cifar10": "cifar10-1000-mt-samosa",
        "svhn": "svhn-100-mt-samosa",
        "cifar100": "cifar100-2500-mt-samosa",
        "mnistm": "mnistm-100-mt-samosa",
        "digits": "digits-100-mt-samosa",
    }


RECIPES, DEFAULTS = _build()
BOOK = RecipeBook("samosa", RECIPES, DEFAULTS)
