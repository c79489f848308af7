"""SciMix's paper settings as recipes, each carrying the numbers the papers report (spec samosa-scimix §3.7, §3.9).

A SciMix recipe trains the generator (300 epochs, the dual-head Mean Teacher column of §3.7), then the classifier
with ``variant`` and L_contradict, in one run; ``scimix train --generator RUN`` reuses a finished generator of the
same setting instead. The baselines (``-mt``, ``-fixmatch``) are the same classifier settings without hybrids.
``digits-*`` recipes are our reduced settings on the built-in data (no paper number).
"""

from __future__ import annotations

import dataclasses

from mixlab.recipes import PaperResult, Recipe, RecipeBook

from scimix.config import ScimixConfig

#: Generator and Mean Teacher classifier, CIFAR-10 ([T] A.1.2.2-3): SGD Nesterov 0.9, weight decay 5e-4, cosine from
#: 0.1 over a 350-epoch horizon, 300 epochs, 60 + 196 per batch, dual-head Mean Teacher (consistency 300 over 5 epochs,
#: logit distance 0.01, EMA 0.97 after a linear start); L_contradict in epochs [50, 150), J = 3, alpha 0.9 [REC].
MT_CIFAR10 = ScimixConfig(
    variant="mean-teacher", dataset="cifar10", model="wrn28-2", num_labeled=250, split_seed=0, dual_head=True,
    input_scale="normalize", crop_padding=4, hflip=True, batch_size=60, unlabeled_batch_size=196, steps=None,
    epochs=300, eval_every=2000, report_last=1, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
    weight_decay=5e-4, weight_decay_mode="l2", weight_decay_on="all", lr_schedule="cosine_horizon",
    lr_horizon=350 / 300, lr_cycles=1, ema_decay=0.97, ema_warmup=True, ema_buffers="own", lambda_u=300.0,
    rampup="sigmoid", rampup_epochs=5.0, logit_distance_weight=0.01, label_smoothing=0.0, gen_lr=0.1,
    hybrid_window=(50.0, 150.0),
)  # fmt: skip
#: SVHN: base learning rates 0.2 (generator and classifier), no flip.
MT_SVHN = dataclasses.replace(MT_CIFAR10, dataset="svhn", num_labeled=60, hflip=False, lr=0.2, gen_lr=0.2)
#: FixMatch classifier ([T] A.1.2.3): SGD 0.015 (SVHN 0.03), 1000 epochs over a 1050-epoch horizon, 32 + 224
#: (mu = 7), lambda_u 1, tau 0.95 [REC], RandAugment + Cutout, EMA 0.999; L_contradict in epochs [100, 200).
FIXMATCH_CIFAR10 = dataclasses.replace(
    MT_CIFAR10, variant="fixmatch", dual_head=False, num_labeled=100, batch_size=32, unlabeled_batch_size=224,
    lr=0.015, epochs=1000, lr_horizon=1050 / 1000, ema_decay=0.999, ema_warmup=False, ema_buffers="copy",
    lambda_u=1.0, rampup_epochs=None, rampup_steps=0, threshold=0.95, unlabeled_includes_labeled=True,
    hybrid_window=(100.0, 200.0),
)  # fmt: skip
FIXMATCH_SVHN = dataclasses.replace(FIXMATCH_CIFAR10, dataset="svhn", num_labeled=60, hflip=False, lr=0.03, gen_lr=0.2)

#: Ours on the built-in digits: WRN-16-1 trunks, a quarter-width generator, 100 labels, 16 + 48 per step, 4
#: generator epochs then 4 classifier epochs, hybrids in classifier epochs [1, 3).
DIGITS_MT = dataclasses.replace(
    MT_CIFAR10, dataset="digits", model="wrn16-1", num_labeled=100, hflip=False, crop_padding=2, batch_size=16,
    unlabeled_batch_size=48, epochs=4, eval_every=28, report_last=4, lambda_u=10.0, rampup_epochs=1.0,
    gen_epochs=4, gen_batch_size=16, gen_unlabeled_batch_size=48, gen_eval_every=56, gen_consistency=10.0,
    gen_rampup_epochs=1.0, g_widths=(16, 32, 64, 32, 16), cont_start_epoch=1.0, hybrid_window=(1.0, 3.0),
)  # fmt: skip
DIGITS_FIXMATCH = dataclasses.replace(
    DIGITS_MT, variant="fixmatch", dual_head=False, lr=0.03, ema_decay=0.99, ema_warmup=False, ema_buffers="copy",
    lambda_u=1.0, rampup_epochs=None, rampup_steps=0, unlabeled_includes_labeled=True,
)  # fmt: skip

BASELINE = {"train_generator": False, "num_hybrid_batches": 0}

#: CUB-200-2010, fully supervised (Table VI; no hyperparameters in the sources, [REC] §3.7): every one of the 3,000
#: training images labeled (15 per species), the generator with the CIFAR column's settings and L_S = CE (no
#: consistency term: nothing is unlabeled), the classifier supervised with L_contradict; WRN-28-2 trunks, the
#: discriminator grown to a 2x2 (64 px) or 3x3 (96 px) map.
CUB_64 = dataclasses.replace(
    MT_CIFAR10, dataset="cub200", image_size=64, num_labeled=3000, balance="proportional",
    unlabeled_includes_labeled=True, variant="supervised", dual_head=False, ema_buffers="copy", ema_warmup=False,
    lambda_u=0.0, rampup_epochs=None, rampup_steps=0, gen_consistency=0.0, crop_padding=8,
)  # fmt: skip
CUB_96 = dataclasses.replace(CUB_64, image_size=96, crop_padding=12)


def _acc(table: str, mean: float, std: float | None = None, **extra: float) -> PaperResult:
    return PaperResult(table, {"top1": mean} | ({"top1_std": std} if std is not None else {}) | extra)


def _build() -> tuple[dict[str, Recipe], dict[str, str]]:
    recipes: dict[str, Recipe] = {}

    def add(name: str, config: ScimixConfig, description: str, *results: PaperResult) -> None:
        recipes[name] = Recipe(name, config.validate(), description, results)

    # Table I (= Table 2.2): accuracy %, 3 seeds. (a) Mean Teacher; (b) FixMatch.
    t1 = "Table I (accuracy %)"
    table1 = {("cifar10", 100): ((40.5, 6.4), (46.4, 1.2)), ("cifar10", 250): ((63.1, 0.9), (68.0, 1.0)),
              ("cifar10", 500): ((72.0, 3.0), (77.2, 0.5)), ("svhn", 60): ((48.7, 23.0), (83.4, 0.5)),
              ("svhn", 100): ((82.3, 5.5), (87.3, 2.8))}  # fmt: skip
    for (dataset, labels), (mt, sci) in table1.items():
        base = dataclasses.replace(MT_CIFAR10 if dataset == "cifar10" else MT_SVHN, num_labeled=labels)
        extra_mt, extra_sci = (), ()
        if (dataset, labels) in (("cifar10", 250), ("cifar10", 500)):  # Table 2.4: one MT cycle, against SAMOSA
            extra_mt = (_acc("Table 2.4 (one MT cycle)", *mt),)
            extra_sci = (_acc("Table 2.4 (in-class MSDA w/ MT)", *sci),)
        if (dataset, labels) == ("cifar10", 250):
            extra_mt += (_acc("Table II (Mean Teacher)", *mt),)
            extra_sci += (_acc("Table II (SciMix w/ MT)", *sci),)
        if (dataset, labels) == ("svhn", 60):
            extra_mt += (_acc("Table II / III / V (Mean Teacher)", *mt),)
            extra_sci += (_acc("Table II / III (SciMix w/ MT)", *sci),
                          _acc("Table IV (full setup)", 83.4, 0.5, s_c=76.7, s_r=98.8),
                          _acc("Table V (L_contradict)", 83.4, 0.4))  # fmt: skip
        add(
            f"{dataset}-{labels}-mt",
            dataclasses.replace(base, **BASELINE),
            f"{dataset} @ {labels}: Mean Teacher",
            _acc(t1, *mt),
            *extra_mt,
        )
        add(f"{dataset}-{labels}-scimix-mt", base, f"{dataset} @ {labels}: SciMix w/ Mean Teacher",
            _acc(t1, *sci), *extra_sci)  # fmt: skip
    for dataset, labels, base, (fix, sci) in (("cifar10", 100, FIXMATCH_CIFAR10, ((88.6, 0.7), (90.7, 0.2))),
                                              ("svhn", 60, FIXMATCH_SVHN, ((96.4, 0.3), (96.5, 0.9)))):  # fmt: skip
        add(
            f"{dataset}-{labels}-fixmatch",
            dataclasses.replace(base, **BASELINE),
            f"{dataset} @ {labels}: FixMatch",
            _acc(t1, *fix),
        )
        add(f"{dataset}-{labels}-scimix-fixmatch", base, f"{dataset} @ {labels}: SciMix w/ FixMatch", _acc(t1, *sci))

    # Text result ([X] §III-A): the generator trained with every CIFAR-10 label ("a strong hybridizer"), then SciMix
    # w/ MT at 100 labels.
    add("cifar10-100-scimix-mt-labels-all", dataclasses.replace(MT_CIFAR10, num_labeled=100, generator_labels_all=True),
        "CIFAR-10 @ 100: SciMix w/ MT, the generator trained on all labels", _acc("text [X] §III-A", 60.4, 1.7))  # fmt: skip

    # Table II (= 2.6): other mixers in the same L_contradict pipeline (alpha replaced by the mixing ratio).
    for dataset, base, mixup, cutmix in (("cifar10", dataclasses.replace(MT_CIFAR10, num_labeled=250), (64.8, 3.5),
                                          (55.0, 7.5)), ("svhn", MT_SVHN, (61.8, 1.0), (17.3, 3.7))):  # fmt: skip
        labels = base.num_labeled
        for mixer, paper in (("mixup", mixup), ("cutmix", cutmix)):
            add(
                f"{dataset}-{labels}-mt-{mixer}",
                dataclasses.replace(base, mixer=mixer, train_generator=False),
                f"{dataset} @ {labels}: MT + {mixer} in L_contradict",
                _acc(f"Table II (MT + {mixer})", *paper),
            )

    # Table III (= 2.3b), SVHN @ 60: the generator's own classifier, and the new classifier initialised from it.
    add(
        "svhn-60-generator",
        dataclasses.replace(MT_SVHN, train_classifier=False),
        "SVHN @ 60: the generator phase alone (its classifier E_c o C is evaluated)",
        _acc("Table III (generator classifier E_c o C)", 72.0, 2.7),
    )
    add(
        "svhn-60-scimix-mt-geninit",
        dataclasses.replace(MT_SVHN, init_from_generator=True),
        "SVHN @ 60: SciMix w/ MT, classifier initialised from the generator's",
        _acc("Table III (w/ Gen. Init.)", 72.6, 2.3),
    )

    # Table IV (= A.14): generator variants, SVHN @ 60 (the phase-2 MT classifier's accuracy; s_c, s_r of §3.8).
    for suffix, change, (acc, std, s_c, s_r), what in (
        ("structural", {"style_code": "nonsemantic"}, (39.5, 9.3, 16.0, 56.0), "roles swapped: z_r as the style"),
        ("nohyb", {"hyb_losses": "none"}, (48.5, 14.2, 11.7, 99.8), "no hybrid losses"),
        ("basichyb", {"hyb_losses": "basic"}, (66.3, 1.0, 66.2, 99.4), "no negative hybrid terms"),
        ("nonfrozen", {"frozen_criterion": False}, (81.8, 3.0, 75.1, 73.8), "non-frozen criterion"),
    ):
        add(
            f"svhn-60-scimix-mt-{suffix}",
            dataclasses.replace(MT_SVHN, **change),
            f"SVHN @ 60: SciMix w/ MT, {what}",
            _acc(f"Table IV ({what})", acc, std, s_c=s_c, s_r=s_r),
        )

    # Table V (= A.15): how the hybrids are used, SVHN @ 60.
    for loss, (acc, std) in (("labeled", (29.9, 17.6)), ("pseudo_label", (62.8, 5.4)), ("consistency", (77.8, 4.8))):
        add(
            f"svhn-60-scimix-mt-{loss.replace('_', '')}",
            dataclasses.replace(MT_SVHN, hybrid_loss=loss),
            f"SVHN @ 60: hybrids through L_{loss}",
            _acc(f"Table V (L_{loss})", acc, std),
        )

    # Table 2.5: transfer rates of the SVHN 250-label generator (scimix transfer).
    add(
        "svhn-250-generator",
        dataclasses.replace(MT_SVHN, num_labeled=250, train_classifier=False),
        "SVHN @ 250: the generator of the transfer-rate study (scimix transfer)",
        PaperResult("Table 2.5 (SciMix transfer rates, %)", {"s_c": 95.2, "s_r": 98.2}),
    )

    # Table VI (= 2.7): CUB-200, fully supervised, accuracy %, 3 seeds.
    for side, base, sup, sci in ((64, CUB_64, (58.9, 1.0), (60.2, 0.6)), (96, CUB_96, (65.2, 0.8), (65.6, 0.9))):
        add(f"cub200-{side}-supervised", dataclasses.replace(base, **BASELINE),
            f"CUB-200 at {side} px, fully supervised", _acc("Table VI (Supervised)", *sup))  # fmt: skip
        add(f"cub200-{side}-scimix-supervised", base, f"CUB-200 at {side} px: SciMix w/ Supervised",
            _acc("Table VI (SciMix w/ Supervised)", *sci))  # fmt: skip

    # Ours: the built-in digits (no paper number).
    add("digits-100-mt", dataclasses.replace(DIGITS_MT, **BASELINE), "digits @ 100 (ours): Mean Teacher")
    add("digits-100-scimix-mt", DIGITS_MT, "digits @ 100 (ours): SciMix w/ Mean Teacher")
    add("digits-100-fixmatch", dataclasses.replace(DIGITS_FIXMATCH, **BASELINE), "digits @ 100 (ours): FixMatch")
    add("digits-100-scimix-fixmatch", DIGITS_FIXMATCH, "digits @ 100 (ours): SciMix w/ FixMatch")
    add("digits-oracle", dataclasses.replace(DIGITS_MT, variant="supervised", dual_head=False, ema_buffers="copy",
                                             num_labeled=1390, lambda_u=0.0, unlabeled_includes_labeled=True, **BASELINE),
        "digits (ours): the fully supervised oracle of `scimix transfer`")  # fmt: skip
    return recipes, {
        "cifar10": "cifar10-250-scimix-mt",
        "svhn": "svhn-60-scimix-mt",
        "cub200": "cub200-64-scimix-supervised",
        "digits": "digits-100-scimix-mt",
    }


RECIPES, DEFAULTS = _build()
BOOK = RecipeBook("scimix", RECIPES, DEFAULTS)
