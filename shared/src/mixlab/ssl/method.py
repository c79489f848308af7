"""What every semi-supervised algorithm shares, on the shared engine: `SSLMethod`.

The split and its two infinite index streams, the input pipeline, the backbone (with Mean Teacher's two heads when
asked for), the optimizer (Adam or SGD, decoupled or L2 weight decay on kernels only, constant / FixMatch cosine /
cosine-with-horizon schedules, optional clipping), the EMA model used for evaluation (and as Mean Teacher's
teacher), and the MixMatch protocol's evaluation (the EMA model's error, median of the last N evaluations).

The algorithms (`mixlab.ssl.algorithms`: `Supervised`, `MeanTeacher`, `MixMatch`, `FixMatch`) subclass it with a
short ``train_step`` each. Their hook points are where another method changes what flows through them:

- ``labeled_views(step, n)``: the labeled pool (SAMOSA-MT adds its stored hybrids for a window of epochs);
- ``unlabeled_uint8(step)``: the unlabeled pool (RealMix's extended set);
- ``forward(x)``: the student pass (a method that needs more than logits from it keeps what it needs);
- ``extra_losses(ctx)``: weighted terms added to the algorithm's loss (SciMix's L_contradict, SAMOSA's L_rec, Omega);
- per algorithm: ``MixMatch.mix`` (the mixing operation), ``MixMatch.mixed_supervised_loss`` /
  ``mixed_unlabeled_loss`` (RealMix's TSA and OOD mask), ``FixMatch.strong_view`` (SAMOSA-FixMatch's hybrids).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from mixlab.engine import Method, Runtime, StepOutput, TrainProgress, budget_steps, cosine_horizon_factor
from mixlab.engine.distributed import broadcast_buffers
from mixlab.engine.optimization import make_optimizer
from mixlab.errors import ConfigError
from mixlab.metrics import classification_metrics
from mixlab.models import create_model, set_bn_momentum
from mixlab.models.registry import load_weights
from mixlab.ssl.bn import bn_stats_frozen
from mixlab.ssl.config import SSLConfig
from mixlab.ssl.data import InputPipeline, SSLData, build_ssl_data
from mixlab.ssl.ema import ModelEMA, mean_teacher_decay
from mixlab.ssl.heads import DualHead
from mixlab.ssl.ramps import linear_ramp, sigmoid_ramp
from mixlab.ssl.streams import InfiniteIndexStream
from mixlab.transfer import to_device


def is_kernel(name: str, param: nn.Parameter) -> bool:
    """Convolution and linear weights: what the MixMatch code decays (not biases, not BatchNorm)."""
    return param.ndim > 1 and name.endswith("weight")


def primary(logits: torch.Tensor) -> torch.Tensor:
    """The classifier's prediction: the logits, or the primary head of a two-headed network's (B, 2, K)."""
    return logits[:, 0] if logits.dim() == 3 else logits


@dataclass
class StepContext:
    """What flowed through one step of an algorithm, handed to ``extra_losses``."""

    step: int
    progress: TrainProgress
    inputs: torch.Tensor  # the student's input batch (for MixMatch: the mixed rows)
    logits: torch.Tensor  # the student's output on it
    num_labeled: int  # the first rows are the labeled ones
    targets: torch.Tensor  # hard labels of the labeled rows, or the soft targets of every row (MixMatch)
    extra: dict[str, Any] = field(default_factory=dict)  # algorithm-specific (views, pseudo-labels, masks...)


class SSLMethod(Method):
    """Data, network, optimizer, EMA and evaluation of a semi-supervised method; subclasses give ``train_step``."""

    name = "ssl"
    best_metric = "top1"
    #: the algorithm's own hyperparameters (what `with_variant` puts in when a recipe switches to it)
    defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def variant_fields(cls, config: SSLConfig) -> dict[str, Any]:
        """Fields that scale with the recipe's budget when `with_variant` switches it to this algorithm."""
        return {}

    def __init__(self, config: SSLConfig, *, data_root: Path | None = None, download: bool = False):
        self.config = config.validate()
        self.data_root, self.download = data_root, download
        self.history: list[float] = []  # EMA top-1 at every evaluation (for the median of the last N)

    # -- set-up -----------------------------------------------------------------------------------------------
    def build_data(self) -> SSLData:
        return build_ssl_data(self.config, self.data_root, self.download)

    def create_network(self, num_classes: int) -> nn.Module:
        """The classifier, before the shared adjustments of `build_model` (a method with its own network, SAMOSA's
        `C(E_c(.))`, overrides this). Default: ``config.model`` from the registry, with two heads if ``dual_head``."""
        model = create_model(self.config.model, num_classes=num_classes)
        if self.config.init_checkpoint:
            # Transfer learning: every weight but the classifier head, which stays freshly initialised.
            load_weights(model, self.config.init_checkpoint, exclude=("head.",))
        return DualHead(model) if self.config.dual_head else model

    def build_model(self, num_classes: int) -> nn.Module:
        cfg = self.config
        return set_bn_momentum(self.create_network(num_classes), cfg.bn_momentum)

    def build(self, runtime: Runtime) -> None:
        cfg, dev = self.config, runtime.device
        self.runtime = runtime
        self.data = self.build_data()
        self.num_classes = self.data.num_classes
        per_step, available = cfg.unlabeled_batch * runtime.dist.world_size, int(self.data.unlabeled_images.shape[0])
        if per_step > available:
            raise ConfigError(
                f"the batch is larger than the data. It takes {per_step} unlabeled images per step (batch size "
                f"{cfg.unlabeled_batch} per process x {runtime.dist.world_size} processes), "
                f"but the unlabeled set has {available}; lower --batch-size"
            )
        self.model = self.build_model(self.num_classes).to(dev)
        if runtime.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.trainable = self.model
        self.ema = ModelEMA(self.model, cfg.ema_decay, buffers=cfg.ema_buffers)
        rank, world = runtime.dist.rank, runtime.dist.world_size
        self.labeled_stream = InfiniteIndexStream(len(self.data.labeled), cfg.batch_size, cfg.seed, rank, world)
        pool = self.unlabeled_pool_size()
        self.unlabeled_stream = InfiniteIndexStream(pool, cfg.unlabeled_batch, cfg.seed + 1, rank, world)
        # An epoch is one pass over the unlabeled set (the SSL papers' "epochs over the unlabeled samples").
        self.steps_per_epoch = max(1, math.ceil(pool / (cfg.unlabeled_batch * world)))
        self.total_steps = budget_steps(self.steps_per_epoch, epochs=cfg.epochs, steps=cfg.steps)
        self.eval_every = cfg.eval_every
        if self.total_steps % cfg.lr_cycles:
            raise ConfigError(f"the {self.total_steps} steps do not split into lr_cycles={cfg.lr_cycles} equal cycles")
        # Small SSL sets live on the device as uint8; STL-10's 100k unlabeled memory map stays on the host.
        self.labeled_images = self.data.labeled.images.to(dev)
        self.labeled_targets = self.data.labeled.targets.to(dev)
        self.unlabeled_images = self.data.unlabeled_images
        if self.unlabeled_images.numel() * self.unlabeled_images.element_size() < 4 * 2**30 or dev.type == "cpu":
            self.unlabeled_images = self.unlabeled_images.to(dev)
        self.inputs = InputPipeline(cfg, self.data.labeled.mean, self.data.labeled.std, dev)
        decayed = is_kernel if cfg.weight_decay_on == "kernels" else (lambda name, param: True)
        self.kernels = [p for n, p in self.model.named_parameters() if decayed(n, p)]  # decayed (decoupled or L2)
        self.optimizer, self.scheduler = self.configure_optimizers()
        self.clip_grad_norm = cfg.clip_grad_norm

    def unlabeled_pool_size(self) -> int:
        return int(self.data.unlabeled_images.shape[0])

    def configure_optimizers(self):
        cfg = self.config
        kernels = {id(p) for p in self.kernels}
        others = [p for p in self.model.parameters() if id(p) not in kernels]
        l2 = cfg.weight_decay if cfg.weight_decay_mode == "l2" else 0.0
        groups = [{"params": self.kernels, "weight_decay": l2}, {"params": others, "weight_decay": 0.0}]
        if cfg.optimizer == "adam":
            optimizer: torch.optim.Optimizer = make_optimizer(
                torch.optim.Adam, groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8
            )
        else:
            optimizer = make_optimizer(torch.optim.SGD, groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        return optimizer, self.lr_scheduler(optimizer)

    def lr_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
        cfg, total = self.config, self.total_steps
        if cfg.lr_schedule == "cosine":  # FixMatch: lr * cos(7 pi k / (16 K))
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda k: math.cos(7 * math.pi * min(k, total) / (16 * total))
            )
        if cfg.lr_schedule == "cosine_horizon":  # SAMOSA / SciMix: 0.5 (1 + cos(pi e / H)), restarted per cycle
            cycle = total // cfg.lr_cycles
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda k: cosine_horizon_factor(k, cycle_steps=cycle, horizon=cfg.lr_horizon)
            )
        return None

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def split_dict(self) -> dict[str, Any]:
        return self.data.split_dict()

    def extra_state(self) -> dict[str, Any]:
        return {"ema": self.ema.state_dict(), "history": list(self.history)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "ema" in state:
            self.ema.load_state_dict(state["ema"])
        self.history = [float(v) for v in state.get("history", [])]

    # -- data stream ---------------------------------------------------------------------------------------------
    def train_batches(self, epoch: int, start_batch: int) -> Iterator[int]:
        """The batch of a step is the step number: both streams derive their indices from it."""
        first = epoch * self.steps_per_epoch + start_batch
        yield from range(first, (epoch + 1) * self.steps_per_epoch)

    # -- hook points -------------------------------------------------------------------------------------------
    def labeled_views(self, step: int, n: int = 1) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``n`` independently augmented (weak) views of this step's labeled batch, and its labels."""
        index = to_device(self.labeled_stream.batch(step), self.labeled_images.device)
        images, targets = self.labeled_images[index], self.labeled_targets[index]
        return [self.inputs.weak(images) for _ in range(n)], targets

    def unlabeled_uint8(self, step: int) -> torch.Tensor:
        """The unlabeled images of this step (uint8, on the device), before the online augmentation."""
        index = self.unlabeled_stream.batch(step)
        return to_device(self.unlabeled_images[to_device(index, self.unlabeled_images.device)], self.runtime.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The student's training forward (DDP / compiled wrapper); BatchNorm statistics are updated."""
        return self.forward_module(self.runtime.to_input(x))

    def extra_losses(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Weighted loss terms another method adds to the algorithm's loss (none by default)."""
        return {}

    # -- helpers the algorithms share ----------------------------------------------------------------------------
    def forward_frozen_bn(self, x: torch.Tensor) -> torch.Tensor:
        """A training-mode forward whose BatchNorm statistics updates are discarded (guesses, extra passes)."""
        # Under DDP the extra passes go through the bare module: DDP expects one forward per backward; the
        # gradient hooks still fire once per parameter, after autograd has summed every pass's contribution.
        module = self.model if self.runtime.dist.enabled else self.forward_module
        with bn_stats_frozen(self.model):
            return module(self.runtime.to_input(x))

    def unlabeled_weight(self, step: int) -> float:
        cfg = self.config
        ramp = linear_ramp if cfg.rampup == "linear" else sigmoid_ramp
        length = cfg.rampup_steps if cfg.rampup_epochs is None else cfg.rampup_epochs * self.steps_per_epoch
        return cfg.lambda_u * ramp(step, length)

    def finish(self, ctx: StepContext, loss: torch.Tensor, logs: dict[str, torch.Tensor], images: int) -> StepOutput:
        """The algorithm's loss plus the extra terms, with every term logged."""
        extra = self.extra_losses(ctx)
        for key, term in extra.items():
            loss = loss + term
            logs[key] = term.detach()
        return StepOutput(loss, images, logs)

    # -- after the optimizer step -------------------------------------------------------------------------------
    @torch.no_grad()
    def after_step(self, progress: TrainProgress) -> None:
        cfg = self.config
        if cfg.weight_decay_mode == "decoupled" and cfg.weight_decay > 0:
            lr = self.optimizer.param_groups[0]["lr"]
            torch._foreach_mul_(self.kernels, 1.0 - cfg.weight_decay * lr)
        # Mean Teacher's code updates with global_step already incremented: 0.5 at the first update.
        decay = mean_teacher_decay(progress.step, cfg.ema_decay) if cfg.ema_warmup else cfg.ema_decay
        self.ema.update(self.model, decay)

    # -- evaluation ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of ``model`` (eval mode; the primary head) on this rank's shard of the evaluation set, gathered."""
        rt, data = self.runtime, self.data.evaluation
        model.eval()
        start, stop = rt.shard(len(data))
        outs = []
        for i in range(start, stop, batch_size):
            x = data.images[i : min(i + batch_size, stop)].to(rt.device, non_blocking=True)
            with rt.precision.autocast():
                outs.append(primary(model(rt.to_input(self.inputs.scale(x)))).float())
        logits = torch.cat(outs) if outs else torch.zeros(0, self.num_classes, device=rt.device)
        return rt.gather(logits), rt.gather(data.targets[start:stop].to(rt.device))

    def restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """Argmax over the labeled classes only, when the config asks for it (mismatch protocol option)."""
        if not self.config.eval_restrict_classes or self.data.eval_classes is None:
            return logits
        allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        allowed[list(self.data.eval_classes)] = True
        return logits.masked_fill(~allowed, float("-inf"))

    def evaluate(self, progress: TrainProgress, batch_size: int = 500) -> dict[str, Any]:
        broadcast_buffers(self.ema.module, self.runtime.dist)  # every rank scores rank 0's (the saved) EMA model
        logits, targets = self.predict(self.ema.module, batch_size)
        logits = self.restrict(logits).cpu()
        metrics: dict[str, Any] = classification_metrics(logits, targets.cpu(), calibrate=False)
        metrics["error"] = 100.0 - metrics["top1"]
        self.history.append(float(metrics["top1"]))
        last = self.history[-self.config.report_last :]
        metrics["median_top1"] = statistics.median(last)
        metrics["median_error"] = 100.0 - metrics["median_top1"]
        metrics["evaluations_in_median"] = len(last)
        return metrics
