"""MixMatch: K guesses, sharpening, biased MixUp over labeled and unlabeled rows, interleaved BatchNorm.

Hook points: ``mix`` (the mixing operation: SAMOSA-MixMatch replaces MixUp by its hybrids on some batches),
``mixed_supervised_loss`` / ``mixed_unlabeled_loss`` (RealMix's TSA and OOD mask).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from mixlab.engine import StepOutput, TrainProgress
from mixlab.mixing import soft_cross_entropy
from mixlab.ssl.guess import guess_labels
from mixlab.ssl.interleave import interleave
from mixlab.ssl.losses import probability_mse
from mixlab.ssl.method import SSLMethod, StepContext, primary
from mixlab.ssl.mixup import MixUpResult, biased_mixup


class MixMatch(SSLMethod):
    defaults: ClassVar[dict[str, Any]] = {}  # SSLConfig's defaults are MixMatch's CIFAR-10 settings

    def mix(self, rows: torch.Tensor, targets: torch.Tensor, progress: TrainProgress) -> MixUpResult:
        """The mixing operation over the labeled + guessed rows (default: biased MixUp, lambda' = max(l, 1-l))."""
        cfg = self.config
        return biased_mixup(rows, targets, cfg.mixup_alpha, per_sample=cfg.mixup_per_sample)

    def train_step(self, step: int, progress: TrainProgress) -> StepOutput:
        cfg = self.config
        (x,), targets = self.labeled_views(step, 1)
        unlabeled = self.unlabeled_uint8(step)
        B = len(targets)
        views = [self.inputs.weak(unlabeled) for _ in range(cfg.k_aug)]
        # Label guessing with the current model in train mode (batch statistics), no gradient.
        guess_forward = self.forward if cfg.guess_updates_bn else self.forward_frozen_bn
        q = guess_labels(lambda v: primary(guess_forward(v)), views, cfg.temperature)
        rows = torch.cat([x, *views])
        soft = torch.cat([F.one_hot(targets, self.num_classes).float(), *([q] * cfg.k_aug)])
        mixed = self.mix(rows, soft, progress)
        logits = self.mixed_forward(mixed.x, B)
        main = primary(logits)
        loss_x, logs = self.mixed_supervised_loss(main[:B], mixed.y[:B], progress)
        loss_u, logs_u = self.mixed_unlabeled_loss(main[B:], mixed.y[B:], progress)
        weight = self.unlabeled_weight(step)
        loss = loss_x + weight * loss_u
        logs = {**logs, **logs_u, "loss_x": loss_x.detach(), "loss_u": loss_u.detach(), "w_u": torch.tensor(weight)}
        ctx = StepContext(step, progress, mixed.x, logits, B, mixed.y, {"guess": q, "rows": rows})
        return self.finish(ctx, loss, logs, B + len(unlabeled) * cfg.k_aug)

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
