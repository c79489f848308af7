"""SciMix's configuration (spec samosa-scimix §3.7, every flag of §3.10).

A run has up to two phases. The **generator** phase trains `E_c`, `C`, `E_r`, the StyleGAN2-style generator `G`
and the discriminator `D` with the dual-head Mean Teacher, reconstruction, adversarial and five hybridisation
losses (its settings are the ``gen_*`` fields). The **classifier** phase freezes the generator and trains a new
classifier from scratch with ``variant`` (``mean-teacher``, ``fixmatch`` or ``supervised``; the shared SSL fields)
plus `L_contradict` on ``num_hybrid_batches`` batches of hybrids inside ``hybrid_window``. ``generator_run`` names a
finished generator run instead of training one (``scimix train --generator RUN``); ``train_classifier=false`` trains
the generator only (``scimix train-generator``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mixlab.config import need
from mixlab.models import parse_trunk
from mixlab.ssl import SSLConfig

BASES = ("mean-teacher", "fixmatch", "supervised")
HYBRID_LOSSES = ("contradict", "consistency", "pseudo_label", "labeled")  # Table V
MIXERS = ("scimix", "mixup", "cutmix")  # Table II


@dataclass(frozen=True)
class ScimixConfig(SSLConfig):
    variant: str = "mean-teacher"  # the classifier phase's algorithm
    dual_head: bool = True
    model: str = "wrn28-2"  # the trunk of E_c, E_r and of the new classifier: wrn{depth}-{width}
    # -- which phases ---------------------------------------------------------------------------------------
    train_generator: bool = True  # off for the baselines, which make no SciMix hybrids
    generator_run: str | None = None  # a finished generator run (or its checkpoint) to use instead of training one
    train_classifier: bool = True
    # -- the generator phase ([T] A.1.2.2: the MT column) ---------------------------------------------------
    gen_epochs: float = 300.0
    gen_lr: float = 0.1  # SGD Nesterov 0.9, weight decay 5e-4, cosine over a 350-epoch horizon (SVHN: 0.2)
    gen_lr_horizon: float = 350 / 300
    gen_weight_decay: float = 5e-4
    gen_batch_size: int = 60
    gen_unlabeled_batch_size: int = 196
    gen_ema_decay: float = 0.97
    gen_consistency: float = 300.0  # the dual-head Mean Teacher L_S of the generator classifier
    gen_rampup_epochs: float = 5.0
    gen_eval_every: int = 2000
    gen_clip_grad_norm: float | None = 1.0  # not in the sources; without it SGD at their rates diverges in 3 steps
    disc_clip_grad_norm: float | None = (
        1.0  # not in the sources; without it D's outputs exploded at step ~140 (Fashion)
    )
    d_optimizer: str = "sgd"  # sgd (the sources: "a SGD optimizer" for every module) | adam (Adam 2e-3, (0, 0.99))
    r1_gamma: float = 0.0  # R1 penalty on real images (Swapping Autoencoder: 10), off as in the sources
    lambda_s: float = 1.0
    lambda_rec: float = 1.0
    lambda_adv_r: float = 0.5
    lambda_class_pos: float = 0.5
    lambda_cont_pos: float = 0.5
    lambda_class_neg: float = 0.05
    lambda_cont_neg: float = 0.05
    lambda_adv_h: float = 0.5
    cont_start_epoch: float = 50.0  # the cont terms start here (the residual E_r starts close to the identity)
    dist: str = "l2"  # l2: the per-sample Euclidean norm, not squared (the papers' ||.||_2) | mse
    hyb_losses: str = "full"  # full | basic (no negative terms) | none (no hybrid losses, no L_adv,h): Table IV
    frozen_criterion: bool = True  # the classifier and E_r judging a hybrid get no gradient from it: Table IV
    criterion_bn: str = "frozen_stats"  # frozen_stats (train-mode BN, running statistics kept) | train
    style_code: str = "semantic"  # semantic: z_c is the style, z_r the spatial input | nonsemantic: Table IV swap
    code_channels: int = 8  # z_r: 8 x 8 x 8
    g_widths: tuple[int, ...] = (32, 64, 128, 64, 32)
    use_noise: bool = False
    normalize_codes: bool = False
    mapping_layers: int = 0
    upsample_mode: str = "bilinear"
    # -- the classifier phase ([T] A.1.2.3) -------------------------------------------------------------------
    hybrid_loss: str = "contradict"  # Table V: contradict | consistency | pseudo_label | labeled
    alpha: float = 0.9  # L_contradict's target mixture; not given in the sources [REC]
    num_hybrid_batches: int = 3  # J
    hybrid_window: tuple[float, float] = (50.0, 150.0)  # epochs of the classifier phase (FixMatch: [100, 200))
    contradict_weight: float = 1.0
    filter_hybrids: bool = False  # Alg. A.4 has none; the text copies SAMOSA's filter
    generator_labels_all: bool = False  # the generator phase sees every training label ("strong hybridizer", 60.4%)
    init_from_generator: bool = False  # Table III: the new classifier starts from the generator's E_c and C
    mixer: str = "scimix"  # Table II: scimix | mixup | cutmix hybrids in the same L_contradict pipeline
    mixer_alpha: float = 1.0  # Beta(a, a) of the MixUp / CutMix ratio, which replaces alpha [REC]

    def variants(self) -> tuple[str, ...]:
        return BASES

    def validate(self):
        super().validate()
        self.trunk  # noqa: B018  (checks the model name)
        need(self.dist in ("l2", "mse"), "dist must be l2 or mse")
        need(self.hyb_losses in ("full", "basic", "none"), "hyb_losses must be full, basic or none")
        need(self.criterion_bn in ("frozen_stats", "train"), "criterion_bn must be frozen_stats or train")
        need(self.style_code in ("semantic", "nonsemantic"), "style_code must be semantic or nonsemantic")
        need(self.d_optimizer in ("sgd", "adam"), "d_optimizer must be sgd or adam")
        need(
            all(v is None or v > 0 for v in (self.gen_clip_grad_norm, self.disc_clip_grad_norm)),
            "gen_clip_grad_norm and disc_clip_grad_norm must be positive (or null: no clipping)",
        )
        need(self.hybrid_loss in HYBRID_LOSSES, f"hybrid_loss must be one of {', '.join(HYBRID_LOSSES)}")
        need(self.mixer in MIXERS, f"mixer must be one of {', '.join(MIXERS)}")
        need(0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1], not {self.alpha}")
        need(self.num_hybrid_batches >= 0, "num_hybrid_batches must be >= 0")
        need(self.gen_epochs > 0 and self.gen_lr > 0, "gen_epochs and gen_lr must be positive")
        need(self.gen_batch_size >= 1 and self.gen_unlabeled_batch_size >= 1, "the generator batches must be >= 1")
        need(len(self.g_widths) == 5, "g_widths lists the five generator blocks' widths")
        # lambda+ > lambda- keeps lambda+ ||a - p|| - lambda- ||b - p|| bounded below (spec §3.3)
        need(
            self.hyb_losses != "full"
            or (self.lambda_class_pos > self.lambda_class_neg and self.lambda_cont_pos > self.lambda_cont_neg),
            "the negative hybrid terms must weigh less than the positive ones, or the generator loss is unbounded",
        )
        need(
            self.variant != "mean-teacher" or self.dual_head,
            "the Mean Teacher classifier is the dual-head one (spec §1.4): dual_head must be true",
        )
        has_generator = self.train_generator or self.generator_run is not None
        need(self.train_classifier or (self.train_generator and self.generator_run is None), "nothing to train")
        need(
            has_generator or self.mixer != "scimix" or self.num_hybrid_batches == 0 or not self.train_classifier,
            "SciMix hybrids need a generator: train one (train_generator=true) or give generator_run",
        )
        return self

    @property
    def trunk(self) -> tuple[int, int]:
        """(depth, width) of the trunk named by ``model`` (wrn{depth}-{width})."""
        return parse_trunk(self.model)
