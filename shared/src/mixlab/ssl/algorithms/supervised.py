"""The supervised baseline: the labeled images alone (the MixMatch code's fully supervised recipe)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F

from mixlab.engine import StepOutput, TrainProgress
from mixlab.ssl.method import SSLMethod, StepContext, primary


class Supervised(SSLMethod):
    defaults: ClassVar[dict[str, Any]] = dict(lambda_u=0.0, label_smoothing=0.001)

    def train_step(self, step: int, progress: TrainProgress) -> StepOutput:
        (x,), targets = self.labeled_views(step, 1)
        logits = self.forward(x)
        loss = F.cross_entropy(primary(logits).float(), targets, label_smoothing=self.config.label_smoothing)
        ctx = StepContext(step, progress, x, logits, len(x), targets)
        return self.finish(ctx, loss, {"loss_x": loss.detach()}, len(x))
