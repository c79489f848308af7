"""Step-based semi-supervised training on the shared engine, with the four base algorithms.

`SSLMethod` owns what every SSL method shares: the split and its two infinite index streams, the input pipeline,
the backbone, the optimizer (Adam or SGD, decoupled or L2 weight decay on kernels only), the EMA model used for
evaluation (and as Mean Teacher's teacher), and the MixMatch protocol's evaluation (error of the EMA model, median
of the last N evaluations). The algorithm is `config.variant`:

- ``supervised``: the labeled images alone;
- ``mean-teacher``: student/teacher consistency (MSE between softmaxes) on the unlabeled images;
- ``mixmatch``: K guesses, sharpening, biased MixUp over labeled and unlabeled rows, interleaved BatchNorm;
- ``fixmatch``: weak-view pseudo-labels above a confidence threshold supervise a strong view.

Packages build on the hooks: ``unlabeled_uint8`` (where unlabeled images come from: RealMix's extended pool),
``mixed_supervised_loss`` / ``mixed_unlabeled_loss`` (RealMix's TSA and OOD mask), and ``train_step`` itself for
new algorithms (SAMOSA/SciMix hybrids).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mixlab.engine import Method, Runtime, StepOutput, TrainProgress
from mixlab.metrics import classification_metrics
from mixlab.mixing import soft_cross_entropy
from mixlab.models import create_model
from mixlab.ssl.bn import bn_stats_frozen
from mixlab.ssl.config import SSLConfig
from mixlab.ssl.data import InputPipeline, SSLData, build_ssl_data
from mixlab.ssl.ema import ModelEMA, mean_teacher_decay
from mixlab.ssl.guess import guess_labels
from mixlab.ssl.interleave import interleave
from mixlab.ssl.losses import fixmatch_unlabeled_loss, probability_mse, softmax_mse
from mixlab.ssl.mixup import biased_mixup
from mixlab.ssl.ramps import linear_ramp, sigmoid_ramp
from mixlab.ssl.streams import InfiniteIndexStream


def is_kernel(name: str, param: nn.Parameter) -> bool:
    """Convolution and linear weights: what the MixMatch code decays (not biases, not BatchNorm)."""
    return param.ndim > 1 and name.endswith("weight")


class SSLMethod(Method):
    name = "ssl"
    best_metric = "top1"

    def __init__(self, config: SSLConfig, *, data_root: Path | None = None, download: bool = False):
        self.config = config.validate()
        self.data_root, self.download = data_root, download
        self.history: list[float] = []  # EMA top-1 at every evaluation (for the median of the last N)

    # -- set-up -----------------------------------------------------------------------------------------------
    def build_data(self) -> SSLData:
        return build_ssl_data(self.config, self.data_root, self.download)

    def build_model(self, num_classes: int) -> nn.Module:
        model = create_model(self.config.model, num_classes=num_classes)
        if self.config.bn_momentum is not None:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.momentum = self.config.bn_momentum
        return model

    def build(self, runtime: Runtime) -> None:
        cfg, dev = self.config, runtime.device
        self.runtime = runtime
        self.data = self.build_data()
        self.num_classes = self.data.num_classes
        self.model = self.build_model(self.num_classes).to(dev)
        if runtime.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.trainable = self.model
        self.ema = ModelEMA(self.model, cfg.ema_decay, buffers=cfg.ema_buffers)
        self.steps_per_epoch = cfg.steps_per_eval
        rank, world = runtime.dist.rank, runtime.dist.world_size
        self.labeled_stream = InfiniteIndexStream(len(self.data.labeled), cfg.batch_size, cfg.seed, rank, world)
        self.unlabeled_stream = InfiniteIndexStream(
            self.unlabeled_pool_size(), cfg.unlabeled_batch, cfg.seed + 1, rank, world
        )
        # Small SSL sets live on the device as uint8; STL-10's 100k unlabeled memory map stays on the host.
        self.labeled_images = self.data.labeled.images.to(dev)
        self.labeled_targets = self.data.labeled.targets.to(dev)
        self.unlabeled_images = self.data.unlabeled_images
        if self.unlabeled_images.numel() * self.unlabeled_images.element_size() < 4 * 2**30 or dev.type == "cpu":
            self.unlabeled_images = self.unlabeled_images.to(dev)
        self.inputs = InputPipeline(cfg, self.data.labeled.mean, self.data.labeled.std, dev)
        self.kernels = [p for n, p in self.model.named_parameters() if is_kernel(n, p)]  # decayed (decoupled or L2)
        self.optimizer, self.scheduler = self.configure_optimizers()

    def unlabeled_pool_size(self) -> int:
        return int(self.data.unlabeled_images.shape[0])

    def configure_optimizers(self):
        cfg = self.config
        others = [p for n, p in self.model.named_parameters() if not is_kernel(n, p)]
        l2 = cfg.weight_decay if cfg.weight_decay_mode == "l2" else 0.0
        groups = [{"params": self.kernels, "weight_decay": l2}, {"params": others, "weight_decay": 0.0}]
        if cfg.optimizer == "adam":
            optimizer: torch.optim.Optimizer = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
        else:
            optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        scheduler = None
        if cfg.lr_schedule == "cosine":  # FixMatch: lr * cos(7 pi k / (16 K))
            total = cfg.total_steps
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda k: math.cos(7 * math.pi * min(k, total) / (16 * total))
            )
        return optimizer, scheduler

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

    # -- data ----------------------------------------------------------------------------------------------
    def train_batches(self, epoch: int, start_batch: int) -> Iterator[int]:
        """The batch of a step is the step number: both streams derive their indices from it."""
        first = epoch * self.steps_per_epoch + start_batch
        yield from range(first, (epoch + 1) * self.steps_per_epoch)

    def labeled_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.labeled_stream.batch(step).to(self.labeled_images.device)
        return self.labeled_images[index], self.labeled_targets[index]

    def unlabeled_uint8(self, step: int) -> torch.Tensor:
        """The unlabeled images of this step (uint8, on the device), before the online augmentation."""
        index = self.unlabeled_stream.batch(step)
        return self.unlabeled_images[index.to(self.unlabeled_images.device)].to(self.runtime.device, non_blocking=True)

    def unlabeled_weight(self, step: int) -> float:
        cfg = self.config
        ramp = linear_ramp if cfg.rampup == "linear" else sigmoid_ramp
        return cfg.lambda_u * ramp(step, cfg.rampup_steps)

    # -- forward helpers ---------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward (DDP / compiled wrapper); BatchNorm statistics are updated."""
        return self.forward_module(self.runtime.to_input(x))

    def forward_frozen_bn(self, x: torch.Tensor) -> torch.Tensor:
        """A training-mode forward whose BatchNorm statistics updates are discarded (guesses, extra passes)."""
        # Under DDP the extra passes go through the bare module: DDP expects one forward per backward; the
        # gradient hooks still fire once per parameter, after autograd has summed every pass's contribution.
        module = self.model if self.runtime.dist.enabled else self.forward_module
        with bn_stats_frozen(self.model):
            return module(self.runtime.to_input(x))

    # -- one step ---------------------------------------------------------------------------------------------
    def train_step(self, batch: int, progress: TrainProgress) -> StepOutput:
        step_fn = {
            "supervised": self.supervised_step,
            "mean-teacher": self.mean_teacher_step,
            "mixmatch": self.mixmatch_step,
            "fixmatch": self.fixmatch_step,
        }[self.config.variant]
        return step_fn(batch, progress)

    def supervised_step(self, step: int, progress: TrainProgress) -> StepOutput:
        images, targets = self.labeled_batch(step)
        logits = self.forward(self.inputs.weak(images))
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.config.label_smoothing)
        return StepOutput(loss, len(images), {"loss_x": loss.detach()})

    def mean_teacher_step(self, step: int, progress: TrainProgress) -> StepOutput:
        cfg = self.config
        images, targets = self.labeled_batch(step)
        unlabeled = self.unlabeled_uint8(step)
        B = len(images)
        student = self.forward(torch.cat([self.inputs.weak(images), self.inputs.weak(unlabeled)]))
        # The teacher sees its own augmentation of the same unlabeled images, with batch statistics (train mode).
        teacher_module = self.ema.module
        teacher_module.train()
        with torch.no_grad(), bn_stats_frozen(teacher_module):
            teacher = teacher_module(self.runtime.to_input(self.inputs.weak(unlabeled)))
        loss_x = F.cross_entropy(student[:B].float(), targets, label_smoothing=cfg.label_smoothing)
        loss_u = softmax_mse(student[B:], teacher)
        weight = self.unlabeled_weight(step)
        loss = loss_x + weight * loss_u
        logs = {"loss_x": loss_x.detach(), "loss_u": loss_u.detach(), "w_u": torch.tensor(weight)}
        return StepOutput(loss, B + len(unlabeled), logs)

    def mixmatch_step(self, step: int, progress: TrainProgress) -> StepOutput:
        cfg = self.config
        images, targets = self.labeled_batch(step)
        unlabeled = self.unlabeled_uint8(step)
        B = len(images)
        x = self.inputs.weak(images)
        views = [self.inputs.weak(unlabeled) for _ in range(cfg.k_aug)]
        # Label guessing with the current model in train mode (batch statistics), no gradient.
        if cfg.guess_updates_bn:
            q = guess_labels(self.forward, views, cfg.temperature)
        else:
            q = guess_labels(self.forward_frozen_bn, views, cfg.temperature)
        rows = torch.cat([x, *views])
        soft = torch.cat([F.one_hot(targets, self.num_classes).float(), *([q] * cfg.k_aug)])
        mixed = biased_mixup(rows, soft, cfg.mixup_alpha, per_sample=cfg.mixup_per_sample)
        logits = self.mixed_forward(mixed.x, B)
        loss_x, logs = self.mixed_supervised_loss(logits[:B], mixed.y[:B], progress)
        loss_u, logs_u = self.mixed_unlabeled_loss(logits[B:], mixed.y[B:], progress)
        weight = self.unlabeled_weight(step)
        loss = loss_x + weight * loss_u
        logs = {**logs, **logs_u, "loss_x": loss_x.detach(), "loss_u": loss_u.detach(), "w_u": torch.tensor(weight)}
        return StepOutput(loss, B + len(unlabeled) * cfg.k_aug, logs)

    def mixed_forward(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        """Logits of the mixed rows: interleaved BatchNorm (official; one BN-updating pass) or one concatenated pass."""
        if self.config.bn_mode == "concat" or x.shape[0] % batch:
            return self.forward(x)
        chunks = interleave(list(x.split(batch)), batch)
        outs = [self.forward(chunks[0])] + [self.forward_frozen_bn(c) for c in chunks[1:]]
        return torch.cat(interleave(outs, batch))

    def mixed_supervised_loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: TrainProgress):
        """MixMatch's L_x: soft-target cross-entropy on the mixed labeled rows."""
        return soft_cross_entropy(logits.float(), targets), {}

    def mixed_unlabeled_loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: TrainProgress):
        """MixMatch's L_u: squared error between the mixed guesses and the softmax, mean over rows and classes."""
        return probability_mse(logits, targets), {}

    def fixmatch_step(self, step: int, progress: TrainProgress) -> StepOutput:
        cfg = self.config
        images, targets = self.labeled_batch(step)
        unlabeled = self.unlabeled_uint8(step)
        B, U = len(images), len(unlabeled)
        logits = self.forward(
            torch.cat([self.inputs.weak(images), self.inputs.weak(unlabeled), self.inputs.strong(unlabeled)])
        )
        loss_x = F.cross_entropy(logits[:B].float(), targets)
        loss_u, mask = fixmatch_unlabeled_loss(logits[B : B + U], logits[B + U :], cfg.threshold)
        loss = loss_x + cfg.lambda_u * loss_u
        logs = {"loss_x": loss_x.detach(), "loss_u": loss_u.detach(), "mask": mask.mean().detach()}
        return StepOutput(loss, B + 2 * U, logs)

    # -- after the optimizer step -------------------------------------------------------------------------------
    @torch.no_grad()
    def after_step(self, progress: TrainProgress) -> None:
        cfg = self.config
        if cfg.weight_decay_mode == "decoupled" and cfg.weight_decay > 0:
            lr = self.optimizer.param_groups[0]["lr"]
            torch._foreach_mul_(self.kernels, 1.0 - cfg.weight_decay * lr)
        decay = mean_teacher_decay(progress.step - 1, cfg.ema_decay) if cfg.ema_warmup else cfg.ema_decay
        self.ema.update(self.model, decay)

    # -- evaluation ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of ``model`` (eval mode) on this rank's shard of the evaluation set, gathered over ranks."""
        rt, data = self.runtime, self.data.evaluation
        model.eval()
        start, stop = rt.shard(len(data))
        outs = []
        for i in range(start, stop, batch_size):
            x = data.images[i : min(i + batch_size, stop)].to(rt.device, non_blocking=True)
            with rt.precision.autocast():
                outs.append(model(rt.to_input(self.inputs.scale(x))).float())
        logits = torch.cat(outs) if outs else torch.zeros(0, self.num_classes, device=rt.device)
        return rt.gather(logits), rt.gather(data.targets[start:stop].to(rt.device))

    def restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """Argmax over the labeled classes only, when the config asks for it (mismatch protocol option)."""
        if not self.config.eval_restrict_classes or self.data.eval_classes is None:
            return logits
        allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        allowed[list(self.data.eval_classes)] = True
        return logits.masked_fill(~allowed, float("-inf"))

    def evaluate(self, progress: TrainProgress) -> dict[str, Any]:
        logits, targets = self.predict(self.ema.module)
        logits = self.restrict(logits).cpu()
        metrics: dict[str, Any] = classification_metrics(logits, targets.cpu(), calibrate=False)
        metrics["error"] = 100.0 - metrics["top1"]
        self.history.append(float(metrics["top1"]))
        last = self.history[-self.config.report_last :]
        metrics["median_top1"] = statistics.median(last)
        metrics["median_error"] = 100.0 - metrics["median_top1"]
        metrics["evaluations_in_median"] = len(last)
        return metrics
