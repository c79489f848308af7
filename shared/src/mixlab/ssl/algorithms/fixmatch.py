"""FixMatch: weak-view pseudo-labels above a confidence threshold supervise a strong view of the same image.

``strong_view`` is the hook where another method perturbs the strong views (SAMOSA-FixMatch's hybrids).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from mixlab.engine import StepOutput, TrainProgress
from mixlab.ssl.losses import fixmatch_unlabeled_loss
from mixlab.ssl.method import SSLMethod, StepContext, primary


class FixMatch(SSLMethod):
    defaults: ClassVar[dict[str, Any]] = dict(
        optimizer="sgd", lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4, weight_decay_mode="l2",
        lr_schedule="cosine", unlabeled_ratio=7, lambda_u=1.0, rampup_steps=0, threshold=0.95,
        unlabeled_includes_labeled=True, input_scale="normalize",
    )  # fmt: skip

    def strong_view(
        self, strong: torch.Tensor, weak: torch.Tensor, weak_logits: torch.Tensor, progress: TrainProgress
    ) -> torch.Tensor:
        """The strong views the pseudo-labels supervise (default: RandAugment + Cutout, unchanged)."""
        return strong

    def train_step(self, step: int, progress: TrainProgress) -> StepOutput:
        cfg = self.config
        (x,), targets = self.labeled_views(step, 1)
        unlabeled = self.unlabeled_uint8(step)
        B, U = len(targets), len(unlabeled)
        weak, strong = self.inputs.weak(unlabeled), self.inputs.strong(unlabeled)
        if type(self).strong_view is not FixMatch.strong_view:
            # The hook needs the weak predictions before the strong views exist: one extra pass without gradient and
            # without touching the BatchNorm statistics, so the training pass below stays the reference code's.
            with torch.no_grad():
                weak_logits = primary(self.forward_frozen_bn(weak))
            strong = self.strong_view(strong, weak, weak_logits, progress)
        inputs = torch.cat([x, weak, strong])  # one forward of all three parts (the reference code)
        logits = self.forward(inputs)
        main = primary(logits)
        loss_x = F.cross_entropy(main[:B].float(), targets)
        loss_u, mask = fixmatch_unlabeled_loss(main[B : B + U], main[B + U :], cfg.threshold)
        loss = loss_x + cfg.lambda_u * loss_u
        logs = {"loss_x": loss_x.detach(), "loss_u": loss_u.detach(), "mask": mask.mean().detach()}
        ctx = StepContext(step, progress, inputs, logits, B, targets, {"mask": mask})
        return self.finish(ctx, loss, logs, B + 2 * U)
