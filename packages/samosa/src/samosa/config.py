"""SAMOSA's configuration: the shared SSL fields (`mixlab.ssl.SSLConfig`) plus the reconstruction branch, the
hybrids and their use by each base algorithm (spec samosa-scimix §2.7, every flag of §2.10).

``variant`` is the base algorithm: ``mean-teacher`` (the dual-head Mean Teacher of §1.4, in ``lr_cycles`` cycles
with stored hybrids), ``mixmatch`` (hybrids instead of MixUp on some batches) or ``fixmatch`` (hybrids perturbing
the strong views). The baselines of the paper's tables are the same configurations with ``use_reconstruction``,
``use_omega_rec`` and ``use_hybrid_aug`` off.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixlab.config import need
from mixlab.models import parse_trunk
from mixlab.ssl import SSLConfig

BASES = ("supervised", "mean-teacher", "mixmatch", "fixmatch")  # supervised: the lower bound of Table 1


@dataclass(frozen=True)
class SamosaConfig(SSLConfig):
    variant: str = "mean-teacher"
    dual_head: bool = True  # Mean Teacher's primary + stability heads (the classifier C has both, Table A.4)
    model: str = "wrn28-2"  # the trunk of E_c and E_r: wrn{depth}-{width} (spec §1.3)
    # -- the three components (Table 2) -------------------------------------------------------------------
    use_reconstruction: bool = True  # E_r and D, trained by L_rec
    use_omega_rec: bool = True  # Omega_rec ties E_c's block 11 to the decoder's first (semantic) layer
    use_hybrid_aug: bool = True  # hybrids as augmentation
    lambda_rec: float = 0.25
    lambda_samosa: float = 0.5  # weight of Omega_rec (CIFAR-10: 0.5, SVHN and MNIST-M: 0.1)
    rec_grad_to_ec: bool = False  # [S] §4.2: training E_c with L_rec gives hybrids equal to the semantic parent
    omega_rec_grad_to_decoder: bool = False  # [REC]: D^(0) is trained by L_rec only
    recon_reduction: str = "mean"  # mean (element-wise, HybridNet's F.mse_loss) | sum_per_sample (the equations)
    # -- the modules --------------------------------------------------------------------------------------
    num_gates: int = 64  # S: the softmax gates of z_r, the maps decoded from z_c
    gate_activation: str = "softmax"  # softmax | sigmoid (the text's argument against AdaIN-like selection)
    deconv_block: str = "plain"  # plain (Table A.3) | residual (HybridNet's two-conv blocks)
    extra_bn_resample: bool = False  # BatchNorm after the stride-2 deconvolutions (the MixMatch runs)
    trunk_shortcut_bn: bool = False  # BatchNorm after the 1x1 shortcut convolutions (the MixMatch runs)
    adversarial_zr: bool = False  # [T] A.3.3: a linear head classifies z_r, E_r learns to fool it
    adversarial_weight: float = 0.1  # [REC]: unspecified in the sources
    # -- hybrids ------------------------------------------------------------------------------------------
    filter_hybrids: bool = True  # keep a hybrid only if C(E_c(x_h)) = y1, else use the semantic parent
    hybridize_bn_mode: str = "eval"  # BatchNorm mode of the modules while hybridizing (eval | train)
    hybrids_per_labeled: int = 10  # Mean Teacher: the stored set D_h has 10 x |D_l| hybrids
    hybrid_window: tuple[float, float] = (150.0, 250.0)  # epochs where hybrids are used (MT: within each cycle)
    hybrid_prob: float = 0.2  # MixMatch / FixMatch: share of the batches that use hybrids
    augment_stored_hybrids: bool = True  # flip/translate stored hybrids like the labeled images
    omega_on: str = "mixed"  # MixMatch: Omega_rec and L_rec on the mixed batch (Alg. A.2) | clean
    # -- the reconstruction branch's optimizer {E_r, D} -------------------------------------------------------
    rec_lr: float = 0.2  # SGD, Nesterov momentum 0.9, weight decay 5e-4 (the classifier's settings under MT)
    rec_weight_decay: float = 5e-4
    rec_lr_horizon: float = 350 / 300  # cosine with horizon: the cosine reaches 0 at horizon x cycle
    rec_lr_cycles: int = 3  # restarts of the schedule (MT: with the classifier's cycles; MixMatch: 1)
    rec_clip_grad_norm: float | None = 1.0

    def variants(self) -> tuple[str, ...]:
        return BASES

    def validate(self):
        super().validate()
        self.trunk  # noqa: B018  (checks the model name)
        need(self.recon_reduction in ("mean", "sum_per_sample"), "recon_reduction must be mean or sum_per_sample")
        need(self.gate_activation in ("softmax", "sigmoid"), "gate_activation must be softmax or sigmoid")
        need(self.deconv_block in ("plain", "residual"), "deconv_block must be plain or residual")
        need(self.hybridize_bn_mode in ("eval", "train"), "hybridize_bn_mode must be eval or train")
        need(self.omega_on in ("mixed", "clean"), "omega_on must be mixed or clean")
        need(self.num_gates >= 1, f"num_gates must be at least 1, not {self.num_gates}")
        need(self.hybrids_per_labeled >= 1, "hybrids_per_labeled must be at least 1")
        need(0.0 <= self.hybrid_prob <= 1.0, f"hybrid_prob must be in [0, 1], not {self.hybrid_prob}")
        need(self.hybrid_window[0] <= self.hybrid_window[1], "hybrid_window must be (start, stop) with start <= stop")
        need(self.lambda_rec >= 0 and self.lambda_samosa >= 0, "lambda_rec and lambda_samosa must be >= 0")
        need(self.rec_lr > 0 and self.rec_lr_horizon > 0 and self.rec_lr_cycles >= 1, "rec_lr, horizon, cycles > 0")
        need(
            self.variant != "mean-teacher" or self.dual_head,
            "SAMOSA's Mean Teacher uses the dual-head classifier (spec §1.4): dual_head must be true",
        )
        need(
            self.variant != "supervised" or not (self.use_reconstruction or self.use_omega_rec or self.use_hybrid_aug),
            "the supervised lower bound trains the classifier alone: turn the SAMOSA components off",
        )
        need(
            not (self.use_omega_rec or self.use_hybrid_aug or self.adversarial_zr) or self.use_reconstruction,
            "Omega_rec, hybrids and the adversarial z_r need the reconstruction branch (use_reconstruction=true)",
        )
        return self

    @property
    def trunk(self) -> tuple[int, int]:
        """(depth, width) of the trunk named by ``model``. Omega_rec ties the last block's input u to D^(0)(z_c):
        both need the last stage's shape, so the trunk needs two blocks per stage (depth 16 or more)."""
        return parse_trunk(self.model, min_depth=16)
