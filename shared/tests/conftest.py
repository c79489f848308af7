"""A tiny method for engine tests: logistic regression on a fixed random problem, with random augmentation noise
(so that resume exactness depends on restoring the RNG state) and an optional NaN injection."""

from __future__ import annotations

import torch
from mixlab.engine import Method, Runtime, StepOutput, TrainProgress, warmup_multistep
from torch import nn


class ToyMethod(Method):
    name = "toy"

    def __init__(self, n: int = 96, batch: int = 16, nan_at_step: int | None = None, epochs: int = 3):
        self.n, self.batch, self.nan_at_step, self.epochs = n, batch, nan_at_step, epochs

    def build(self, runtime: Runtime) -> None:
        self.runtime = runtime
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(self.n, 8, generator=g)
        self.y = (self.x[:, 0] + 0.5 * self.x[:, 1] > 0).long()
        self.trainable = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2)).to(
            runtime.device
        )
        self.optimizer = torch.optim.SGD(self.trainable.parameters(), lr=0.1, momentum=0.9)
        start, stop = runtime.shard(self.n)
        self.local = torch.arange(start, stop)
        self.steps_per_epoch = len(self.local) // self.batch
        self.total_steps, self.eval_every = self.epochs * self.steps_per_epoch, self.steps_per_epoch
        self.scheduler = warmup_multistep(
            self.optimizer, steps_per_epoch=self.steps_per_epoch, warmup_epochs=1, milestones=[2], gamma=0.5
        )

    def train_batches(self, epoch, start_batch):
        g = torch.Generator().manual_seed(1000 + epoch)
        order = self.local[torch.randperm(len(self.local), generator=g)]
        for i in range(start_batch, self.steps_per_epoch):
            yield order[i * self.batch : (i + 1) * self.batch]

    def train_step(self, batch, progress: TrainProgress) -> StepOutput:
        x = self.x[batch] + 0.1 * torch.randn(len(batch), 8)  # global-RNG noise
        loss = nn.functional.cross_entropy(self.forward_module(x), self.y[batch])
        if self.nan_at_step is not None and progress.step + 1 == self.nan_at_step:
            loss = loss * float("nan")
        return StepOutput(loss=loss, num_images=len(batch), logs={"noise": x.std()})

    def evaluate(self, progress):
        logits = self.trainable(self.x)
        return {"top1": 100.0 * float((logits.argmax(1) == self.y).float().mean())}

    def config_dict(self):
        return {"n": self.n, "batch": self.batch}


import pytest  # noqa: E402
from mixlab.testing import torch_threads  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def toy_method():
    """The ToyMethod class (engine tests build several instances)."""
    return ToyMethod
