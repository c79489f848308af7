"""What a method supplies to the engine: its modules, its data stream, one training step and an evaluation.

The engine (`mixlab.engine.trainer`) owns everything else: devices, DDP, AMP, the optimizer step, checkpoints,
resume, logging, progress and the NaN guard. A method stays a short, readable description of its paper.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mixlab.engine.device import Precision
from mixlab.engine.distributed import DistInfo, gather_concat, shard_range


@dataclass
class StepOutput:
    """Result of one training step: the loss to minimise, scalars to log, and how many images it consumed."""

    loss: torch.Tensor
    num_images: int
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class TrainProgress:
    """Where training is; methods read it for schedules (e.g. MixMo's end-of-training patch-probability decay)."""

    step: int  # optimizer steps completed so far
    epoch: int  # 0-based index of the current epoch
    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def fraction(self) -> float:
        """Share of training completed, in [0, 1]."""
        return self.step / max(1, self.total_steps)


@dataclass
class Runtime:
    """The execution context the engine hands to a method's `build`."""

    device: torch.device
    dist: DistInfo
    precision: Precision
    channels_last: bool

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """Put a 4-D image batch in the memory format the model was converted to."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def shard(self, n: int) -> tuple[int, int]:
        """This rank's contiguous share of n evaluation items."""
        return shard_range(n, self.dist)

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Every rank's evaluation outputs, concatenated in rank order."""
        return gather_concat(t, self.dist)


class Method(ABC):
    """A trainable method. Subclasses set `name` (the package name, used to tag checkpoints)."""

    name: str = "method"
    best_metric: str = "top1"
    best_mode: str = "max"

    #: set by `build`
    trainable: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    steps_per_epoch: int
    #: set by the engine after `build`: `trainable`, wrapped in DDP and/or torch.compile when asked for.
    forward_module: nn.Module

    @abstractmethod
    def build(self, runtime: Runtime) -> None:
        """Create data, model(s), optimizer and scheduler on `runtime.device`."""

    @abstractmethod
    def train_batches(self, epoch: int, start_batch: int) -> Iterator[Any]:
        """Batches of epoch `epoch` from index `start_batch` on (a resumed run skips the consumed ones)."""

    @abstractmethod
    def train_step(self, batch: Any, progress: TrainProgress) -> StepOutput:
        """Forward pass and loss for one batch (under autocast; the engine does backward and the step)."""

    @abstractmethod
    def evaluate(self, progress: TrainProgress) -> dict[str, Any]:
        """Metrics on the evaluation split; called on every rank, only rank 0's result is logged."""

    def after_step(self, progress: TrainProgress) -> None:
        """Hook after each optimizer step (EMA updates, schedules)."""

    def config_dict(self) -> dict[str, Any]:
        """The fully resolved configuration, saved as config.json and inside every checkpoint."""
        return {}

    def split_dict(self) -> dict[str, Any] | None:
        """The data split (SSL label indices...), saved as split.json so a run can be audited."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Method state beyond the trainable module, optimizer and scheduler (e.g. an EMA model)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of `extra_state`."""
