"""Mean Teacher: a student trained for consistency with its weight-averaged teacher on differently augmented views.

Two faithful forms, one class:

- single head (the MixMatch comparison code, RealMix's baseline): cross-entropy on the labeled rows, and the
  squared distance between the student's and the teacher's softmaxes on the unlabeled rows, weighted by
  ``lambda_u`` ramped over the first 40% of training;
- ``dual_head`` (the Mean Teacher / HybridNet code used by SAMOSA and SciMix, spec samosa-scimix §1.4): the
  classifier has a primary and a stability head; with N labeled + unlabeled rows,
  ``L = sum_labeled CE(y_pred) / N + lambda_cons w(t) mean_rows ||s(y_cons) - s(sg[teacher_pred])||^2 / K
  + lambda_logit mean_rows ||y_pred - y_cons||^2 / K``, consistency on every row.

The teacher is the EMA model (``ema_warmup``: decay ``min(1 - 1/(t+1), ema_decay)``), run in train mode on its own
view with batch statistics that are not kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from mixlab.engine import StepOutput, TrainProgress
from mixlab.ssl.bn import bn_stats_frozen
from mixlab.ssl.config import SSLConfig
from mixlab.ssl.losses import logit_distance, softmax_mse
from mixlab.ssl.method import SSLMethod, StepContext, primary


class MeanTeacher(SSLMethod):
    defaults: ClassVar[dict[str, Any]] = dict(lambda_u=50.0, rampup="linear", label_smoothing=0.001, weight_decay=0.2)

    @classmethod
    def variant_fields(cls, config: SSLConfig) -> dict[str, Any]:
        if config.steps is None:
            return {}  # an epoch budget keeps the recipe's ramp
        return {"rampup_steps": int(0.4 * config.steps)}  # warmup_pos 0.4 of the MixMatch comparison code

    @torch.no_grad()
    def teacher_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's primary logits on its view, in train mode (batch statistics). Its running statistics are
        its own passes' with ``ema_buffers="own"`` (the Mean Teacher code); otherwise these passes leave them alone
        and the EMA copies or averages the student's."""
        teacher = self.ema.module
        teacher.train()
        if self.config.ema_buffers == "own":
            return primary(teacher(self.runtime.to_input(x)))
        with bn_stats_frozen(teacher):
            return primary(teacher(self.runtime.to_input(x)))

    def train_step(self, step: int, progress: TrainProgress) -> StepOutput:
        dual = self.config.dual_head  # the teacher sees its own view of the labeled rows too
        views, targets = self.labeled_views(step, 2 if dual else 1)
        unlabeled = self.unlabeled_uint8(step)
        x_student = views[0]
        u_student, u_teacher = self.inputs.weak(unlabeled), self.inputs.weak(unlabeled)
        B, N = len(targets), len(targets) + len(unlabeled)
        inputs = torch.cat([x_student, u_student])
        logits = self.forward(inputs)
        weight = self.unlabeled_weight(step)
        if dual:
            teacher = self.teacher_forward(torch.cat([views[1], u_teacher]))
            loss, logs = self.dual_head_loss(logits, teacher, targets, N, weight)
        else:
            teacher = self.teacher_forward(u_teacher)
            loss_x = F.cross_entropy(logits[:B].float(), targets, label_smoothing=self.config.label_smoothing)
            loss_u = softmax_mse(logits[B:], teacher)
            loss = loss_x + weight * loss_u
            logs = {"loss_x": loss_x.detach(), "loss_u": loss_u.detach()}
        logs["w_u"] = torch.tensor(weight)
        ctx = StepContext(step, progress, inputs, logits, B, targets, {"teacher": teacher})
        return self.finish(ctx, loss, logs, N)

    def dual_head_loss(
        self, logits: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, rows: int, weight: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.config
        y_pred, y_cons = logits[:, 0], logits[:, 1]
        B = len(targets)
        ce = F.cross_entropy(y_pred[:B].float(), targets, label_smoothing=cfg.label_smoothing, reduction="sum")
        loss_x = ce / rows  # summed over the labeled rows, divided by every row (the Mean Teacher code)
        loss_u = softmax_mse(y_cons, teacher)
        loss_logit = logit_distance(y_pred, y_cons)
        loss = loss_x + weight * loss_u + cfg.logit_distance_weight * loss_logit
        return loss, {"loss_x": loss_x.detach(), "loss_u": loss_u.detach(), "loss_logit": loss_logit.detach()}
