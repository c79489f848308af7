"""SciMix on the engine's phases and mixlab's semi-supervised algorithms (spec samosa-scimix §3.3-3.6).

Phase ``generator`` (manual optimisation, spec §3.4): one shared forward of the batch through E_c, C, E_r and G
(reconstruction x_hat = G(z_c, z_r) and hybrid x_h = G(z_c, z_r[perm])), then the discriminator's step on the
detached fakes, then the generator's step on

    L_gen = L_S + L_rec + 0.5 L_adv,r + 0.5 L+_class + 0.5 L+_cont - 0.05 L-_class - 0.05 L-_cont + 0.5 L_adv,h

where the hybrid terms judge x_h through a *frozen criterion* (the same E_c, C, E_r with their parameters detached
and their BatchNorm statistics kept), so only the generation path learns from them. L_S is the dual-head Mean
Teacher loss of the generator's classifier, whose EMA teacher is this phase's evaluated model.

Phase ``classifier``: the generator frozen in eval mode, a new classifier trained from scratch by the base algorithm
(`Scimix` is mixed in before `MeanTeacher`, `FixMatch` or `Supervised`), plus, inside the epoch window, the mean over
J batches of hybrids x_h(j) = G(E_c(B), E_r(B[perm_j])) of

    L_contradict = mean_i ||softmax(f(x_h,i)) - sg[alpha softmax(f_bar(x_i)) + (1 - alpha) softmax(f_bar(x_perm(i)))]||^2 / K

with f_bar the Mean Teacher's teacher, or the classifier itself for FixMatch and supervised.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from mixlab.engine import (
    OptimizerSpec,
    Phase,
    Runtime,
    StepOutput,
    TrainProgress,
    budget_steps,
    check_epoch_window,
    cosine_horizon_factor,
    in_epoch_window,
    load_checkpoint,
    make_optimizer,
)
from mixlab.engine.rundir import checkpoint_of
from mixlab.errors import CheckpointError, ConfigError
from mixlab.mixing import pixel_cutmix, pixel_mixup
from mixlab.ssl import FixMatch, MeanTeacher, ModelEMA, SSLMethod, StepContext, Supervised, bn_stats_frozen, primary
from mixlab.ssl.losses import logit_distance, softmax_mse
from mixlab.ssl.ramps import sigmoid_ramp
from mixlab.ssl.streams import InfiniteIndexStream
from mixlab.transfer import to_device
from torch import Tensor, nn

from scimix.config import ScimixConfig
from scimix.modules import ContextEncoder, Discriminator, ScimixNet, StructuralAdapters, StyleGenerator

GENERATOR_PARTS = ("gen_net", "context", "generator", "disc", "adapters")


def distance(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """``l2``: the per-sample Euclidean norm of a - b (the papers' ||.||_2, not squared), averaged over the batch;
    ``mse``: the element-wise mean of the squares."""
    diff = a.float() - b.float()
    if kind == "mse":
        return diff.square().mean()
    return diff.flatten(1).square().sum(1).add(1e-12).sqrt().mean()


def generator_loss(terms: dict[str, Tensor], config: ScimixConfig, cont_weight: float) -> Tensor:
    """L_gen of spec §3.3 from its terms: the negative terms are subtracted (their distances maximised)."""
    c = config
    loss = c.lambda_s * terms["loss_s"] + c.lambda_rec * terms["loss_rec"] + c.lambda_adv_r * terms["loss_adv_r"]
    if c.hyb_losses != "none":
        loss = loss + c.lambda_class_pos * terms["class_pos"] + cont_weight * c.lambda_cont_pos * terms["cont_pos"]
        loss = loss + c.lambda_adv_h * terms["loss_adv_h"]
    if c.hyb_losses == "full":
        loss = loss - c.lambda_class_neg * terms["class_neg"] - cont_weight * c.lambda_cont_neg * terms["cont_neg"]
    return loss


class CodeEncoders(nn.Module):
    """E_c, C and E_r as one module, x -> (style, spatial code, generator-classifier logits), so that the generator
    phase's shared forward is one DDP call. style_code=semantic: z_c and z_r; nonsemantic (Table IV's "structural
    z_c"): a 1x1 convolution of E_c's pre-pool map as the spatial input, E_r's pooled trunk as the style."""

    def __init__(self, net: ScimixNet, context: ContextEncoder, adapters: StructuralAdapters | None):
        super().__init__()
        self.net, self.context, self.adapters = net, context, adapters

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.adapters is None:
            z_c = self.net.encoder(x)
            return z_c, self.context(x), self.net.classifier(z_c)
        pre_pool, z_c = self.net.encoder.features(x)
        style = self.adapters.style_from_context(self.context.trunk_features(x))
        return style, self.adapters.spatial_from_semantic(pre_pool), self.net.classifier(z_c)


class Scimix:
    """The SciMix phases, mixed in before a base algorithm (``class ScimixMeanTeacher(Scimix, MeanTeacher)``)."""

    name = "scimix"
    config: ScimixConfig
    model: ScimixNet

    # -- networks ------------------------------------------------------------------------------------------------
    def create_network(self, num_classes: int) -> nn.Module:
        depth, width = self.config.trunk
        return ScimixNet(depth, width, num_classes, heads=2 if self.config.dual_head else 1)

    def build(self, runtime: Runtime) -> None:
        super().build(runtime)  # data, streams, the new classifier f, its EMA and optimizer (the classifier phase)
        cfg, dev = self.config, runtime.device
        depth, width = cfg.trunk
        channels = self.model.encoder.num_features
        side = int(self.data.labeled.images.shape[-1])
        self.gen_net = ScimixNet(depth, width, self.num_classes, heads=2).to(dev)
        self.context = ContextEncoder(depth, width, cfg.code_channels).to(dev)
        style_dim = channels
        self.generator = StyleGenerator(
            style_dim, cfg.code_channels, tuple(cfg.g_widths), use_noise=cfg.use_noise,
            upsample_mode=cfg.upsample_mode, mapping_layers=cfg.mapping_layers, normalize_codes=cfg.normalize_codes,
        ).to(dev)  # fmt: skip
        self.disc = Discriminator(image_size=side).to(dev)
        parts = {"gen_net": self.gen_net, "context": self.context, "generator": self.generator, "disc": self.disc}
        if cfg.style_code == "nonsemantic":
            self.adapters = StructuralAdapters(channels, cfg.code_channels).to(dev)
            parts["adapters"] = self.adapters
        self.trainable = nn.ModuleDict({"net": self.model, **parts})
        self.encoders = CodeEncoders(self.gen_net, self.context, parts.get("adapters"))
        self.gen_ema = ModelEMA(self.gen_net, cfg.gen_ema_decay, buffers="own")
        rank, world = runtime.dist.rank, runtime.dist.world_size
        self.gen_images, self.gen_targets = self.generator_labeled_set()
        self.gen_labeled = InfiniteIndexStream(len(self.gen_targets), cfg.gen_batch_size, cfg.seed + 10, rank, world)
        pool = int(self.unlabeled_images.shape[0])
        self.gen_unlabeled = InfiniteIndexStream(pool, cfg.gen_unlabeled_batch_size, cfg.seed + 11, rank, world)
        self.gen_steps_per_epoch = max(1, math.ceil(pool / (cfg.gen_unlabeled_batch_size * world)))
        self.gen_total = budget_steps(self.gen_steps_per_epoch, epochs=cfg.gen_epochs)
        # the phase until start_phase says otherwise: what `eval` of a finished run scores
        self.phase_name = "classifier" if cfg.train_classifier else "generator"
        if cfg.generator_run is not None:
            self.load_generator(Path(cfg.generator_run))

    def check_training(self) -> None:
        """Refuse an ``L_contradict`` window that no classifier step reaches: the run would silently be the baseline."""
        super().check_training()
        cfg = self.config
        if cfg.train_classifier and cfg.num_hybrid_batches > 0:
            check_epoch_window(cfg.hybrid_window, steps_per_epoch=self.steps_per_epoch, steps=self.total_steps,
                               option="hybrid_window", span="the classifier phase's")  # fmt: skip

    def generator_labeled_set(self) -> tuple[Tensor, Tensor]:
        """The generator phase's labeled images and labels: the split's labeled set, or with ``generator_labels_all``
        every training image with its label (the papers' "strong hybridizer trained with all samples"; the
        classifier phase keeps the split)."""
        if not self.config.generator_labels_all:
            return self.labeled_images, self.labeled_targets
        targets = self.data.unlabeled_targets.to(self.labeled_targets.device)
        if bool((targets < 0).any()):
            raise ConfigError("generator_labels_all needs the labels of every training image; this dataset has none "
                              "for some of its unlabeled images")  # fmt: skip
        images = torch.cat([self.labeled_images, self.unlabeled_images.to(self.labeled_images.device)])
        return images, torch.cat([self.labeled_targets, targets])

    def load_generator(self, run: Path) -> None:
        """The generator phase's modules from a finished run of the same setting (labels, split)."""
        state = load_checkpoint(checkpoint_of(run), method="scimix")
        saved, cfg = state["config"], self.config
        for key in (
            "dataset",
            "num_labeled",
            "split_seed",
            "labeled_classes",
            "model",
            "code_channels",
            "g_widths",
            "generator_labels_all",
        ):
            was = saved.get(key, False if key == "generator_labels_all" else None)  # absent from older runs
            if was != getattr(cfg, key) and not (isinstance(was, list) and tuple(was) == getattr(cfg, key)):
                raise CheckpointError(
                    f"the generator of {run} was trained with {key}={was!r}, this run has "
                    f"{getattr(cfg, key)!r}: a generator is trained per setting (same labels, same split)"
                )  # fmt: skip
        weights = {k: v for k, v in state["model"].items() if k.split(".")[0] in GENERATOR_PARTS}
        missing = self.trainable.load_state_dict(weights, strict=False).missing_keys
        if any(k.split(".")[0] in GENERATOR_PARTS for k in missing):
            raise CheckpointError(f"{run} holds no complete SciMix generator (missing {missing[0]})")
        if (state.get("extra") or {}).get("gen_ema") is not None:
            self.gen_ema.load_state_dict(state["extra"]["gen_ema"])

    # -- phases and optimizers -----------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        cfg = self.config
        phases = []
        if cfg.train_generator and cfg.generator_run is None:
            phases.append(Phase("generator", self.gen_total, cfg.gen_eval_every, self.gen_steps_per_epoch))
        if cfg.train_classifier:
            phases.append(Phase("classifier", self.total_steps, cfg.eval_every, self.steps_per_epoch))
        return phases

    def start_phase(self, phase: Phase) -> None:
        cfg = self.config
        self.phase_name = phase.name
        self.manual_optimization = phase.name == "generator"
        generator_parts = [self.gen_net, self.context, self.generator, self.disc]
        if cfg.style_code == "nonsemantic":
            generator_parts.append(self.adapters)
        for module in generator_parts:
            module.requires_grad_(phase.name == "generator")
        self.model.requires_grad_(phase.name == "classifier")
        if phase.name == "generator":
            gen_params = [p for m in generator_parts if m is not self.disc for p in m.parameters()]
            self.opt_g = make_optimizer(torch.optim.SGD, gen_params, lr=cfg.gen_lr, momentum=0.9, nesterov=True,
                                        weight_decay=cfg.gen_weight_decay)  # fmt: skip
            if cfg.d_optimizer == "adam":
                self.opt_d: torch.optim.Optimizer = make_optimizer(
                    torch.optim.Adam, self.disc.parameters(), lr=2e-3, betas=(0, 0.99)
                )
            else:
                self.opt_d = make_optimizer(torch.optim.SGD, self.disc.parameters(), lr=cfg.gen_lr, momentum=0.9,
                                            nesterov=True, weight_decay=cfg.gen_weight_decay)  # fmt: skip
        elif cfg.init_from_generator:  # Table III: the new classifier starts from the generator's E_c and C
            self.model.load_state_dict(self.gen_net.state_dict())
            self.ema.module.load_state_dict(self.gen_net.state_dict())

    def _cosine(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        total, horizon = self.gen_total, self.config.gen_lr_horizon
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: cosine_horizon_factor(k, cycle_steps=total, horizon=horizon)
        )

    def optimizers(self) -> dict[str, OptimizerSpec]:
        if self.phase_name == "generator":
            return {"disc": OptimizerSpec(self.opt_d, self._cosine(self.opt_d) if self.config.d_optimizer == "sgd"
                                          else None, self.config.disc_clip_grad_norm),
                    "gen": OptimizerSpec(self.opt_g, self._cosine(self.opt_g), self.config.gen_clip_grad_norm),
                    }  # fmt: skip
        return super().optimizers()

    def wrap(self, wrapper) -> None:
        if self.phase_name == "generator":
            self.encoders_forward = wrapper(self.encoders)  # E_c, C, E_r (and the adapters): one DDP module
            self.generator_forward = wrapper(self.generator)
            self.disc_forward = wrapper(self.disc)
        else:
            self.forward_module = wrapper(self.model)

    def set_mode(self, training: bool) -> None:
        self.trainable.train(training)
        if self.phase_name == "classifier":  # the frozen generator renders deterministic hybrids
            for name in GENERATOR_PARTS:
                if name in self.trainable:
                    self.trainable[name].eval()

    def train_batches(self, epoch: int, start_batch: int):
        spe = self.gen_steps_per_epoch if self.phase_name == "generator" else self.steps_per_epoch
        yield from range(epoch * spe + start_batch, (epoch + 1) * spe)

    def train_step(self, batch: int, progress: TrainProgress) -> StepOutput:
        if self.phase_name == "generator":
            return self.generator_step(batch, progress)
        return super().train_step(batch, progress)

    def after_step(self, progress: TrainProgress) -> None:
        if self.phase_name == "generator":
            from mixlab.ssl import mean_teacher_decay

            self.gen_ema.update(self.gen_net, mean_teacher_decay(progress.step, self.config.gen_ema_decay))
            return
        super().after_step(progress)

    def evaluate(self, progress: TrainProgress, batch_size: int = 500) -> dict[str, Any]:
        if self.phase_name == "generator":  # the generator classifier's teacher (Table III's "generator classifier")
            from mixlab.metrics import classification_metrics

            logits, targets = self.predict(self.gen_ema.module, batch_size)
            metrics = classification_metrics(logits.cpu(), targets.cpu(), calibrate=False)
            metrics["error"] = 100.0 - metrics["top1"]
            return metrics
        return super().evaluate(progress, batch_size)

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "gen_ema": self.gen_ema.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if "gen_ema" in state:
            self.gen_ema.load_state_dict(state["gen_ema"])

    # -- the codes and the generation path -----------------------------------------------------------------------
    @torch.no_grad()
    def hybridize(self, x1: Tensor, x2: Tensor) -> Tensor:
        """G(E_c(x1), E_r(x2)) with the frozen generator (eval mode, no gradient): hybrid i has x1[i]'s semantics
        and x2[i]'s context."""
        style, _, _ = self.encoders(x1)
        _, spatial, _ = self.encoders(x2)
        return self.generator(style, spatial)

    # -- the generator phase -------------------------------------------------------------------------------------
    def _gen_batch(self, step: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        index = to_device(self.gen_labeled.batch(step), self.gen_images.device)
        images, targets = self.gen_images[index], self.gen_targets[index]
        unlabeled = self.unlabeled_images[to_device(self.gen_unlabeled.batch(step), self.unlabeled_images.device)]
        unlabeled = to_device(unlabeled, self.runtime.device)
        weak = self.inputs.weak
        student = torch.cat([weak(images), weak(unlabeled)])
        teacher = torch.cat([weak(images), weak(unlabeled)])
        return student, teacher, targets, index

    def _criterion(self, x_h: Tensor) -> tuple[Tensor, Tensor]:
        """The frozen criterion on the hybrids: (primary logits, E_r code) from the same E_c, C and E_r with their
        parameters frozen (the gradient reaches x_h and the generation path, not them) and, with
        criterion_bn=frozen_stats, their BatchNorm statistics kept."""
        cfg = self.config
        nets = (self.gen_net, self.context) + ((self.adapters,) if cfg.style_code == "nonsemantic" else ())
        with contextlib.ExitStack() as stack:
            if cfg.frozen_criterion:
                stack.enter_context(frozen_parameters(*nets))
            if cfg.criterion_bn == "frozen_stats":
                for net in nets:
                    stack.enter_context(bn_stats_frozen(net))
            _, code, logits = self.encoders(x_h)  # the bare modules: a second pass outside DDP
        return primary(logits), code

    def generator_step(self, step: int, progress: TrainProgress) -> StepOutput:
        cfg = self.config
        x, x_teacher, targets, _ = self._gen_batch(step)
        n, labeled = len(x), len(targets)
        perm = torch.randperm(n, device=x.device)
        style, spatial, logits = self.encoders_forward(x)
        x_hat = self.generator_forward(style, spatial)
        x_h = self.generator_forward(style, spatial[perm])  # semantics of x[i], context of x[perm[i]]
        # -- the discriminator's step on detached fakes (one D step per G step)
        real = self.disc_forward(x)
        fake = self.disc_forward(torch.cat([x_hat, x_h]).detach())
        loss_d = F.softplus(-real).mean() + F.softplus(fake).mean()
        if cfg.r1_gamma > 0:
            x_real = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.disc(x_real).sum(), x_real, create_graph=True)
            loss_d = loss_d + 0.5 * cfg.r1_gamma * grad.square().flatten(1).sum(1).mean()
        self.optim.backward(loss_d, "disc")
        self.optim.step("disc")
        # -- the generator's step; D judges without learning
        self.disc.requires_grad_(False)
        try:
            terms = self._generator_terms(x, x_teacher, targets, perm, logits, spatial, x_hat, x_h, progress)
        finally:
            self.disc.requires_grad_(True)
        cont = 1.0 if progress.fractional_epoch >= cfg.cont_start_epoch else 0.0
        loss_g = generator_loss(terms, cfg, cont)
        self.optim.backward(loss_g, "gen")
        self.optim.step("gen")
        logs = {k: v.detach() for k, v in terms.items()} | {"loss_d": loss_d.detach(), "w_cont": torch.tensor(cont)}
        total = (loss_g + loss_d).detach()
        return StepOutput(total, n + labeled, logs)

    def _generator_terms(self, x, x_teacher, targets, perm, logits, spatial, x_hat, x_h, progress):
        cfg = self.config
        n, labeled = len(x), len(targets)
        with torch.no_grad():
            teacher = self.gen_ema.module
            teacher.train()
            teacher_logits = primary(teacher(self.runtime.to_input(x_teacher)))
        y_pred, y_cons = logits[:, 0], logits[:, 1]
        weight = cfg.gen_consistency * sigmoid_ramp(progress.step, cfg.gen_rampup_epochs * self.gen_steps_per_epoch)
        ce = F.cross_entropy(y_pred[:labeled].float(), targets, reduction="sum") / n
        loss_s = ce + weight * softmax_mse(y_cons, teacher_logits) + cfg.logit_distance_weight * logit_distance(
            y_pred, y_cons)  # fmt: skip
        terms = {
            "loss_s": loss_s,
            "loss_rec": distance(x_hat, x, cfg.dist),
            "loss_adv_r": F.softplus(-self.disc(x_hat)).mean(),
            "loss_adv_h": F.softplus(-self.disc(x_h)).mean(),
        }
        if cfg.hyb_losses != "none":
            p_h, r_h = self._criterion(x_h)
            target_1 = y_pred.detach()
            terms["class_pos"] = distance(target_1, p_h, cfg.dist)
            terms["class_neg"] = distance(target_1[perm], p_h, cfg.dist)
            code = spatial.detach()
            terms["cont_pos"] = distance(code[perm], r_h, cfg.dist)
            terms["cont_neg"] = distance(code, r_h, cfg.dist)
        return terms

    # -- the classifier phase: L_contradict ----------------------------------------------------------------------
    def hybrid_rows(self, ctx: StepContext) -> tuple[Tensor, Tensor, Tensor]:
        """(B, the target network's logits on B, the labels of B's labeled rows): B = the student views of the
        labeled and unlabeled images (spec §3.6)."""
        teacher = ctx.extra.get("teacher")
        targets = teacher if teacher is not None else primary(ctx.logits).detach()
        return ctx.inputs, targets, ctx.targets

    def extra_losses(self, ctx: StepContext) -> dict[str, Tensor]:
        terms = super().extra_losses(ctx)
        cfg = self.config
        if not in_epoch_window(cfg.hybrid_window, ctx.progress.fractional_epoch) or cfg.num_hybrid_batches == 0:
            return terms
        rows, reference, labels = self.hybrid_rows(ctx)
        losses = [self._hybrid_loss(rows, reference, labels) for _ in range(cfg.num_hybrid_batches)]
        terms["loss_contradict"] = cfg.contradict_weight * torch.stack(losses).mean()
        return terms

    def _hybrid_loss(self, rows: Tensor, reference: Tensor, labels: Tensor) -> Tensor:
        cfg = self.config
        perm = torch.randperm(len(rows), device=rows.device)
        alpha = torch.full((len(rows),), cfg.alpha, device=rows.device)
        if cfg.mixer == "scimix":
            hybrids = self.hybridize(rows, rows[perm])
        elif cfg.mixer == "mixup":
            hybrids, alpha = pixel_mixup(rows, perm, cfg.mixer_alpha, prob=1.0)
        else:
            hybrids, alpha = pixel_cutmix(rows, perm, cfg.mixer_alpha, prob=1.0)
        keep = torch.ones(len(rows), dtype=torch.bool, device=rows.device)
        if cfg.filter_hybrids and cfg.mixer == "scimix":  # the generator classifier still sees x1's class
            with torch.no_grad():
                keep = primary(self.gen_net(hybrids)).argmax(1) == primary(self.gen_net(rows)).argmax(1)
        logits = primary(self.forward_frozen_bn(hybrids))
        p = torch.softmax(reference.float(), -1)
        if cfg.hybrid_loss == "contradict":
            target = alpha[:, None] * p + (1 - alpha[:, None]) * p[perm]
        elif cfg.hybrid_loss == "consistency":
            target = p
        else:
            labeled = len(labels)
            hard = p.argmax(1)
            hard[:labeled] = labels  # the true label where the semantic parent is labeled [REC]
            if cfg.hybrid_loss == "labeled":
                keep = keep & (torch.arange(len(rows), device=rows.device) < labeled)
            ce = F.cross_entropy(logits.float(), hard, reduction="none")
            return (ce * keep).sum() / keep.sum().clamp_min(1)
        per_row = (torch.softmax(logits.float(), -1) - target.detach()).square().mean(1)
        return (per_row * keep).sum() / keep.sum().clamp_min(1)


@contextlib.contextmanager
def frozen_parameters(*modules: nn.Module) -> Iterator[None]:
    """Inside the block the modules' parameters require no gradient: a loss computed through them reaches their
    inputs, not them. Their previous flags are restored after."""
    flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class ScimixMeanTeacher(Scimix, MeanTeacher):
    """The classifier phase on the dual-head Mean Teacher; the teacher's predictions are L_contradict's targets."""


class ScimixFixMatch(Scimix, FixMatch):
    """The classifier phase on FixMatch: hybrids of the weak views, the model itself (stop-grad) as the target."""

    def hybrid_rows(self, ctx: StepContext) -> tuple[Tensor, Tensor, Tensor]:
        n = len(ctx.inputs) - (len(ctx.inputs) - ctx.num_labeled) // 2  # labeled + unlabeled weak views
        return ctx.inputs[:n], primary(ctx.logits[:n]).detach(), ctx.targets


class ScimixSupervised(Scimix, Supervised):
    """The classifier phase with the labeled images alone (CUB-200's fully supervised setting)."""


CLASSES: dict[str, type[SSLMethod]] = {
    "mean-teacher": ScimixMeanTeacher,
    "fixmatch": ScimixFixMatch,
    "supervised": ScimixSupervised,
}


def scimix_method(config: ScimixConfig, *, data_root: Path | None = None, download: bool = False) -> SSLMethod:
    """The SciMix class of ``config.variant`` (the classifier phase's base algorithm)."""
    config = config.validate()
    if config.variant not in CLASSES:
        raise ConfigError(f"unknown base {config.variant!r}")
    return CLASSES[config.variant](config, data_root=data_root, download=download)
