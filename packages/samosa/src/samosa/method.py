"""SAMOSA on mixlab's semi-supervised algorithms, through their hook points (spec samosa-scimix §2.3-2.6).

`Samosa` is a mixin over a base algorithm (`mixlab.ssl.MeanTeacher`, `MixMatch`, `FixMatch`). It swaps the
classifier for `C(E_c(.))`, adds the reconstruction branch (`E_r`, `D`) with its own optimizer, and adds the two
loss terms to the base loss (``extra_losses``), on the features of the classifier's own training pass (``forward``
records them):

    L = L_0,X + lambda_rec L_rec + lambda_SAMOSA Omega_rec

L_rec reaches only E_r and D (z_c enters detached), Omega_rec only E_c (the decoder side detached), L_0 only E_c
and C, so one backward pass serves both optimizers, each clipped to norm 1 (the engine's automatic path steps
``main`` {E_c, C}, then ``rec`` {E_r, D}). Where the hybrids enter depends on the base:

- `SamosaMeanTeacher`: after each cycle but the last, every labeled image is hybridized with 10 random unlabeled
  images; the stored set joins the labeled pool inside the epoch window of the next cycles (``labeled_views``).
- `SamosaMixMatch`: inside the window, on ``hybrid_prob`` of the batches, hybrids of each row with a shuffled
  partner replace MixUp (``mix``); L_rec and Omega_rec are computed on the mixed batch (Alg. A.2).
- `SamosaFixMatch`: on ``hybrid_prob`` of the batches, the strong views are replaced by hybrids of the weak view's
  content with a shuffled strong view's appearance, labelled by the weak view's pseudo-label (``strong_view``).

With the three components off, each class is its base algorithm with the same schedules: the paper's baselines.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from mixlab.engine import (
    OptimizerSpec,
    Runtime,
    StepOutput,
    TrainProgress,
    check_epoch_window,
    cosine_horizon_factor,
    in_epoch_window,
    make_optimizer,
)
from mixlab.errors import ConfigError
from mixlab.mixing import soft_cross_entropy
from mixlab.ssl import FixMatch, MeanTeacher, MixMatch, SSLMethod, StepContext, Supervised, interleave
from mixlab.ssl.mixup import MixUpResult
from mixlab.ssl.streams import InfiniteIndexStream
from torch import Tensor, nn

from samosa.config import SamosaConfig
from samosa.hybrids import Hybrids, hybridize
from samosa.losses import omega_rec, reconstruction_loss, reverse_gradient
from samosa.modules import GatedDecoder, GateEncoder, SamosaNet


@dataclass
class StudentFeatures:
    """The classifier's training pass, as the SAMOSA losses need it: its inputs and E_c's z_c and u on them."""

    x: Tensor
    z_c: Tensor
    u: Tensor


class Samosa:
    """The SAMOSA additions, mixed in before a base algorithm (``class SamosaMixMatch(Samosa, MixMatch)``)."""

    name = "samosa"
    config: SamosaConfig
    model: SamosaNet

    # -- networks and optimizers --------------------------------------------------------------------------------
    def create_network(self, num_classes: int) -> nn.Module:
        cfg = self.config
        depth, width = cfg.trunk
        heads = 2 if cfg.dual_head else 1
        return SamosaNet(depth, width, num_classes, heads=heads, shortcut_bn=cfg.trunk_shortcut_bn)

    def build(self, runtime: Runtime) -> None:
        super().build(runtime)  # data, streams, the classifier C(E_c(.)), its EMA and optimizer ("main")
        cfg = self.config
        self.features: StudentFeatures | None = None
        self.rec_optimizer = None
        if not cfg.use_reconstruction:
            return
        depth, width = cfg.trunk
        side = int(self.data.labeled.images.shape[-1])
        channels = self.model.encoder.num_features
        self.gates = GateEncoder(depth, width, cfg.num_gates, image_size=side, shortcut_bn=cfg.trunk_shortcut_bn,
                                 activation=cfg.gate_activation)  # fmt: skip
        self.decoder = GatedDecoder(
            channels, cfg.num_gates, residual=cfg.deconv_block == "residual", extra_bn_resample=cfg.extra_bn_resample
        )
        branch = {"gates": self.gates, "decoder": self.decoder}
        if cfg.adversarial_zr:
            self.adversary = nn.Linear(cfg.num_gates, self.num_classes)
            branch["adversary"] = self.adversary
        for module in branch.values():
            module.to(runtime.device)
            if runtime.channels_last:
                module.to(memory_format=torch.channels_last)
        self.trainable = nn.ModuleDict({"net": self.model, **branch})
        params = [p for module in branch.values() for p in module.parameters()]
        self.rec_optimizer = make_optimizer(
            torch.optim.SGD, params, lr=cfg.rec_lr, momentum=0.9, nesterov=True, weight_decay=cfg.rec_weight_decay
        )
        cycle = max(1, self.total_steps // cfg.rec_lr_cycles)
        self.rec_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.rec_optimizer, lambda k: cosine_horizon_factor(k, cycle_steps=cycle, horizon=cfg.rec_lr_horizon)
        )

    def optimizers(self) -> dict[str, OptimizerSpec]:
        specs = super().optimizers()
        if self.rec_optimizer is not None:
            specs["rec"] = OptimizerSpec(self.rec_optimizer, self.rec_scheduler, self.config.rec_clip_grad_norm)
        return specs

    def wrap(self, wrapper) -> None:
        self.forward_module = wrapper(self.model)
        if self.rec_optimizer is not None:
            self.gates_forward = wrapper(self.gates)
            self.decoder_forward = wrapper(self.decoder)
            if self.config.adversarial_zr:
                self.adversary_forward = wrapper(self.adversary)

    # -- the classifier's pass and the SAMOSA losses ---------------------------------------------------------------
    @contextlib.contextmanager
    def recording(self) -> Iterator[list[tuple[Tensor, Tensor]]]:
        """Every classifier pass inside the block leaves its (z_c, u) in the list it yields."""
        trace: list[tuple[Tensor, Tensor]] = []
        self.model.trace = trace
        try:
            yield trace
        finally:
            self.model.trace = None

    def forward(self, x: Tensor) -> Tensor:
        if self.model.trace is not None:  # inside a recording (MixMatch's interleaved passes)
            return super().forward(x)
        with self.recording() as trace:
            logits = super().forward(x)
        ((z_c, u),) = trace
        self.features = StudentFeatures(x, z_c, u)
        return logits

    def samosa_rows(self, ctx: StepContext) -> StudentFeatures:
        """The rows B the SAMOSA losses see (all of the student batch; see the base classes)."""
        assert self.features is not None
        return self.features

    def extra_losses(self, ctx: StepContext) -> dict[str, Tensor]:
        cfg = self.config
        terms = super().extra_losses(ctx)
        if not cfg.use_reconstruction:
            return terms
        rows = self.samosa_rows(ctx)
        z_c = rows.z_c if cfg.rec_grad_to_ec else rows.z_c.detach()
        z_r = self.gates_forward(rows.x)
        terms["loss_rec"] = cfg.lambda_rec * reconstruction_loss(self.decoder_forward(z_c, z_r), rows.x,
                                                                 cfg.recon_reduction)  # fmt: skip
        if cfg.use_omega_rec:
            if cfg.omega_rec_grad_to_decoder:
                first = self.decoder.first(rows.z_c.detach())
            else:
                with torch.no_grad():
                    first = self.decoder.first(rows.z_c.detach())
            terms["loss_omega"] = cfg.lambda_samosa * omega_rec(rows.u, first, cfg.recon_reduction)
        if cfg.adversarial_zr:
            labeled = slice(0, ctx.num_labeled)
            logits = self.adversary_forward(reverse_gradient(z_r[labeled]))
            targets = ctx.targets[labeled]
            loss = F.cross_entropy(logits.float(), targets) if targets.dim() == 1 else soft_cross_entropy(
                logits.float(), targets)  # fmt: skip
            terms["loss_adv_zr"] = cfg.adversarial_weight * loss
        self.features = None
        return terms

    # -- hybrids ------------------------------------------------------------------------------------------------
    def hybridize(self, x1: Tensor, y1: Tensor, x2: Tensor, *, filter: bool | None = None) -> Hybrids:
        cfg = self.config
        return hybridize(
            self.model, self.gates, self.decoder, x1, y1, x2,
            filter=cfg.filter_hybrids if filter is None else filter, bn_mode=cfg.hybridize_bn_mode,
        )  # fmt: skip

    def in_window(self, epoch: float) -> bool:
        return self.config.use_hybrid_aug and in_epoch_window(self.config.hybrid_window, epoch)

    def window_steps(self) -> tuple[int, str]:
        """How many consecutive steps the epochs of ``hybrid_window`` are counted over, and what they are: the whole run
        (MixMatch, FixMatch); Mean Teacher counts them from each cycle's start."""
        return self.total_steps, "the run's"

    def check_training(self) -> None:
        """Refuse a ``hybrid_window`` that no training step reaches: such a run would silently be the
        reconstruction-only ablation (L_rec + Omega_rec, no hybrid), not SAMOSA."""
        super().check_training()
        if self.config.use_hybrid_aug:
            steps, span = self.window_steps()
            check_epoch_window(self.config.hybrid_window, steps_per_epoch=self.steps_per_epoch, steps=steps,
                               option="hybrid_window", span=span)  # fmt: skip

    def coin(self) -> bool:
        """One draw per batch, on the CPU generator: no device synchronisation in the step."""
        return float(torch.rand(())) < self.config.hybrid_prob

    hybrids_drawn = False  # whether this step's batch holds hybrids (set by the base's hook that makes them)

    def finish(self, ctx: StepContext, loss: Tensor, logs: dict[str, Tensor], images: int) -> StepOutput:
        """Logs ``hybrid_step``, 1 when the step used hybrids (MT: drew its labeled batch from the pool with the
        stored hybrids), else 0: its mean over a logging interval is the share of such steps."""
        out = super().finish(ctx, loss, logs, images)
        if self.config.use_hybrid_aug:
            out.logs["hybrid_step"] = torch.tensor(float(self.hybrids_drawn))
        self.hybrids_drawn = False
        return out


class SamosaSupervised(Samosa, Supervised):
    """The purely supervised lower bound of Table 1, with SAMOSA's classifier and the MT schedule."""


class SamosaMeanTeacher(Samosa, MeanTeacher):
    """Dual-head Mean Teacher in ``lr_cycles`` cycles with LR restarts; hybrids stored between cycles (§2.6a)."""

    stored: Hybrids | None = None

    def build(self, runtime: Runtime) -> None:
        super().build(runtime)
        cfg = self.config
        self.cycle_steps = self.total_steps // cfg.lr_cycles
        self.num_labeled = len(self.data.labeled)
        size = self.num_labeled * (1 + cfg.hybrids_per_labeled)
        rank, world = runtime.dist.rank, runtime.dist.world_size
        self.pool_stream = InfiniteIndexStream(size, cfg.batch_size, cfg.seed + 2, rank, world)

    def window_steps(self) -> tuple[int, str]:
        cycle = self.total_steps // self.config.lr_cycles
        return cycle, "each cycle's"

    def check_training(self) -> None:
        if self.config.use_hybrid_aug and self.config.lr_cycles < 2:
            raise ConfigError(
                "Mean Teacher + SAMOSA stores hybrids after each cycle but the last and uses them in the next: "
                "lr_cycles=1 never uses one; train 2 or more cycles or set use_hybrid_aug=false"
            )
        super().check_training()

    def hybrids_in_use(self, step: int) -> bool:
        """Cycles 2 and later, inside the window of epochs counted from the cycle's start (§2.6a)."""
        if self.stored is None or step // self.cycle_steps == 0:
            return False
        return self.in_window((step % self.cycle_steps) / self.steps_per_epoch)

    def labeled_views(self, step: int, n: int = 1) -> tuple[list[Tensor], Tensor]:
        if not self.hybrids_in_use(step):
            return super().labeled_views(step, n)
        self.hybrids_drawn = True
        assert self.stored is not None
        index = self.pool_stream.batch(step).to(self.labeled_images.device)
        is_hybrid = index >= self.num_labeled
        labeled, hybrid = index[~is_hybrid], index[is_hybrid] - self.num_labeled
        targets = torch.empty_like(index)
        targets[~is_hybrid] = self.labeled_targets[labeled]
        targets[is_hybrid] = self.stored.y[hybrid]
        views = []
        for _ in range(n):
            view = torch.empty(len(index), *self.labeled_images.shape[1:], device=index.device)
            view[~is_hybrid] = self.inputs.weak(self.labeled_images[labeled])
            stored = self.stored.x[hybrid].float()
            # The same flip / translation as the labeled images, on the stored standardised tensors.
            view[is_hybrid] = self.inputs.weak_uint8(stored) if self.config.augment_stored_hybrids else stored
            views.append(view)
        return views, targets

    @torch.no_grad()
    def store_hybrids(self) -> Hybrids:
        """D_h: every labeled image hybridized with ``hybrids_per_labeled`` random unlabeled images (both parents
        weakly augmented), by the student's modules; rebuilt from scratch after each cycle."""
        cfg = self.config
        xs, ys, kept = [], [], []
        for _ in range(cfg.hybrids_per_labeled):
            order = torch.randperm(self.num_labeled, device=self.labeled_images.device)
            for chunk in order.split(cfg.batch_size):
                partners = torch.randint(len(self.unlabeled_images), (len(chunk),), device=self.unlabeled_images.device)
                x1 = self.inputs.weak(self.labeled_images[chunk])
                x2 = self.inputs.weak(self.unlabeled_images[partners].to(self.runtime.device))
                batch = self.hybridize(x1, self.labeled_targets[chunk], x2)
                xs.append(batch.x.half())  # stored in half precision: the same values feed every later run
                ys.append(batch.y)
                kept.append(batch.kept)
        stored = Hybrids(torch.cat(xs), torch.cat(ys), torch.cat(kept))
        if self.runtime.dist.enabled:  # one pool for every rank: rank 0's (the one its checkpoint saves)
            for tensor in (stored.x, stored.y, stored.kept):
                torch.distributed.broadcast(tensor, src=0)
        return stored

    def after_step(self, progress: TrainProgress) -> None:
        super().after_step(progress)
        cfg = self.config
        step = progress.step
        if cfg.use_hybrid_aug and step % self.cycle_steps == 0 and step < self.total_steps:
            self.stored = self.store_hybrids()

    def extra_state(self) -> dict[str, Any]:
        state = super().extra_state()
        if self.stored is not None:
            state["hybrids"] = {"x": self.stored.x, "y": self.stored.y, "kept": self.stored.kept}
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        saved = state.get("hybrids")
        if saved is not None:
            device = self.labeled_images.device
            self.stored = Hybrids(saved["x"].to(device), saved["y"].to(device), saved["kept"].to(device))


class SamosaMixMatch(Samosa, MixMatch):
    """MixMatch whose MixUp is replaced by in-class hybrids on ``hybrid_prob`` of the batches in the window."""

    def mix(self, rows: Tensor, targets: Tensor, progress: TrainProgress) -> MixUpResult:
        if self.config.use_reconstruction and self.in_window(progress.fractional_epoch) and self.coin():
            self.hybrids_drawn = True
            perm = torch.randperm(len(rows), device=rows.device)
            hybrids = self.hybridize(rows, targets, rows[perm])  # semantic parent W_i, appearance from W~_i
            return MixUpResult(hybrids.x, targets, torch.ones(len(rows), device=rows.device), perm)
        return super().mix(rows, targets, progress)

    def mixed_forward(self, x: Tensor, batch: int) -> Tensor:
        """MixMatch's interleaved passes, recording z_c and u of every row in the mixed batch's order."""
        with self.recording() as trace:
            logits = super().mixed_forward(x, batch)
        if len(trace) == 1:
            z_c, u = trace[0]
        else:
            z_c = torch.cat(interleave([t[0] for t in trace], batch))
            u = torch.cat(interleave([t[1] for t in trace], batch))
        self.features = StudentFeatures(x, z_c, u)
        return logits

    def samosa_rows(self, ctx: StepContext) -> StudentFeatures:
        if self.config.omega_on == "mixed":
            return super().samosa_rows(ctx)
        clean = ctx.extra["rows"]  # the unmixed labeled and guessed rows, through E_c without touching BN statistics
        with self.recording() as trace:
            self.forward_frozen_bn(clean)
        ((z_c, u),) = trace
        return StudentFeatures(clean, z_c, u)


class SamosaFixMatch(Samosa, FixMatch):
    """FixMatch whose strong views are hybridized on ``hybrid_prob`` of the batches (spec §2.6c, corrected)."""

    def strong_view(self, strong: Tensor, weak: Tensor, weak_logits: Tensor, progress: TrainProgress) -> Tensor:
        if not (self.config.use_reconstruction and self.in_window(progress.fractional_epoch) and self.coin()):
            return strong
        self.hybrids_drawn = True
        perm = torch.randperm(len(strong), device=strong.device)
        # hybrid i: the content of weak view i, the appearance of a shuffled strong view; it keeps view i's label
        return self.hybridize(weak, weak_logits.argmax(1), strong[perm]).x

    def samosa_rows(self, ctx: StepContext) -> StudentFeatures:
        """The labeled and unlabeled weak views ([REC]: strong augmentation disturbs the generator)."""
        rows = super().samosa_rows(ctx)
        n = len(rows.x) - (len(rows.x) - ctx.num_labeled) // 2
        return StudentFeatures(rows.x[:n], rows.z_c[:n], rows.u[:n])


CLASSES: dict[str, type[SSLMethod]] = {
    "supervised": SamosaSupervised,
    "mean-teacher": SamosaMeanTeacher,
    "mixmatch": SamosaMixMatch,
    "fixmatch": SamosaFixMatch,
}


def samosa_method(config: SamosaConfig, *, data_root: Path | None = None, download: bool = False) -> SSLMethod:
    """The SAMOSA class for ``config.variant`` (the base algorithm)."""
    return CLASSES[config.validate().variant](config, data_root=data_root, download=download)
