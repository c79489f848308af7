"""What a method supplies to the engine: its modules, optimizers, phases, data stream, a training step and an
evaluation.

The engine (`mixlab.engine.trainer`) owns everything else: devices, DDP, AMP, backward passes and optimizer steps
(or the helpers a method calls to make them itself), checkpoints, resume, logging, progress and the NaN guard.
A method stays a short, readable description of its paper.

The simple case needs no more than today's four methods: `build` sets ``trainable``, ``optimizer`` (and
``scheduler``), ``steps_per_epoch``, ``total_steps`` and ``eval_every``; ``train_step`` returns the loss and the
engine makes the backward pass and the step. A method with several optimizers sets ``manual_optimization = True``
and overrides ``optimizers()``; a method trained in several stages overrides ``phases()`` and ``start_phase()``.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mixlab.engine.device import Precision
from mixlab.engine.distributed import DistInfo, gather_concat, shard_range
from mixlab.engine.optimization import Optimization, OptimizerSpec, no_sync
from mixlab.errors import CheckpointError, ConfigError


@dataclass
class StepOutput:
    """Result of one training step: the loss (backpropagated by the engine unless the method optimises manually,
    in which case it is only logged and checked), scalars to log, and how many images the step consumed."""

    loss: torch.Tensor
    num_images: int
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Phase:
    """One stage of a run (SciMix: ``generator`` then ``classifier``), with its own budget, evaluation and best
    metric. Steps are the unit; ``steps_per_epoch`` only says how the method's data stream is cut into epochs."""

    name: str
    steps: int  # optimizer steps of this phase
    eval_every: int  # steps between evaluations (there is always one at the end of the phase)
    steps_per_epoch: int
    best_metric: str = "top1"
    best_mode: str = "max"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"phase {self.name!r}: the number of steps must be at least 1, not {self.steps}")
        if self.eval_every < 1:
            raise ConfigError(f"phase {self.name!r}: eval_every must be at least 1 step, not {self.eval_every}")
        if self.steps_per_epoch < 1:
            raise ConfigError(f"phase {self.name!r}: an epoch must have at least one step")
        if self.best_mode not in ("max", "min"):
            raise ConfigError(f"phase {self.name!r}: best_mode must be max or min")

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / self.steps_per_epoch)


def budget_steps(steps_per_epoch: int, *, epochs: float | None = None, steps: int | None = None) -> int:
    """The one place where an epoch budget becomes steps: ``steps`` when given, else ``epochs x steps_per_epoch``."""
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps must be at least 1, not {steps}")
        return int(steps)
    if epochs is None or epochs <= 0:
        raise ConfigError(f"--epochs must be positive, not {epochs}")
    return max(1, round(epochs * steps_per_epoch))


@dataclass
class TrainProgress:
    """Where training is; methods read it for schedules (e.g. MixMo's end-of-training patch-probability decay)."""

    step: int  # optimizer steps completed so far in this phase
    epoch: int  # 0-based index of the current epoch of the data stream
    epochs: int  # epochs of the phase (the last one may be partial)
    steps_per_epoch: int
    total: int | None = None  # steps of the phase (default: epochs x steps_per_epoch)
    phase: str = "train"

    @property
    def total_steps(self) -> int:
        return self.total if self.total is not None else self.epochs * self.steps_per_epoch

    @property
    def fraction(self) -> float:
        """Share of the phase completed, in [0, 1]."""
        return self.step / max(1, self.total_steps)

    @property
    def fractional_epoch(self) -> float:
        return self.step / self.steps_per_epoch

    @classmethod
    def of(cls, phase: Phase, step: int) -> TrainProgress:
        return cls(step, step // phase.steps_per_epoch, phase.epochs, phase.steps_per_epoch, phase.steps, phase.name)


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

    @staticmethod
    def no_sync(*modules: nn.Module) -> contextlib.AbstractContextManager:
        """DDP's ``no_sync`` for these wrapped modules (a no-op without DDP): around every forward+backward that is
        followed by another backward into the same module before the optimizer step."""
        return no_sync(*modules)


#: What the engine hands to ``Method.wrap``: module -> its training forward (channels_last, SyncBN, DDP, compile).
Wrapper = Callable[[nn.Module], nn.Module]


class Method(ABC):
    """A trainable method. Subclasses set `name` (the package name, used to tag checkpoints)."""

    name: str = "method"
    best_metric: str = "top1"
    best_mode: str = "max"
    #: True: ``train_step`` makes its own backward passes and steps through ``self.optim``.
    manual_optimization: bool = False

    #: set by `build`
    trainable: nn.Module  # every weight the run trains or carries (one nn.ModuleDict for several networks)
    optimizer: torch.optim.Optimizer  # the single-optimizer path
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    clip_grad_norm: float | None = None
    steps_per_epoch: int
    total_steps: int  # the single phase's budget, in steps
    eval_every: int  # steps between evaluations
    #: set by the engine: `trainable` wrapped in DDP and/or torch.compile when asked for (see `wrap`)
    forward_module: nn.Module
    #: set by the engine at each phase start: the optimizers of `optimizers()`, with backward/step helpers
    optim: Optimization

    @abstractmethod
    def build(self, runtime: Runtime) -> None:
        """Create data, model(s), optimizer(s) and scheduler(s) on `runtime.device`."""

    def check_training(self) -> None:
        """Refuse settings with which training would silently differ from what they say, with a one-line
        `ConfigError` (e.g. a window of epochs that no step reaches). The trainer calls it after `build`; a finished
        run rebuilt for evaluation is not checked, so it stays readable."""

    @abstractmethod
    def train_batches(self, epoch: int, start_batch: int) -> Iterator[Any]:
        """Batches of epoch `epoch` from index `start_batch` on (a resumed run skips the consumed ones)."""

    @abstractmethod
    def train_step(self, batch: Any, progress: TrainProgress) -> StepOutput:
        """Forward pass and loss for one batch (under autocast). The engine makes the backward pass and the step,
        unless ``manual_optimization``: then the method calls ``self.optim.backward`` / ``self.optim.step``."""

    @abstractmethod
    def evaluate(self, progress: TrainProgress) -> dict[str, Any]:
        """Metrics on the evaluation split; called on every rank, only rank 0's result is logged."""

    # -- phases and optimizers ----------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """The run's ordered phases (default: one, ``train``, from ``total_steps`` / ``eval_every``)."""
        return [
            Phase("train", self.total_steps, self.eval_every, self.steps_per_epoch, self.best_metric, self.best_mode)
        ]

    def start_phase(self, phase: Phase) -> None:
        """Called before a phase's first step (and when a run resumes inside it): freeze, unfreeze, build the
        phase's optimizers. Runs after `build` and before `optimizers()` and `wrap()`."""

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """The current phase's optimizers by name (default: ``main``, from ``optimizer`` / ``scheduler``). Without
        ``manual_optimization`` the engine backpropagates the step's loss once and steps them all in this order."""
        return {"main": OptimizerSpec(self.optimizer, self.scheduler, self.clip_grad_norm)}

    def wrap(self, wrapper: Wrapper) -> None:
        """Give each separately trained network its training forward. Default: ``forward_module`` for
        ``trainable``. A method stepping several networks wraps each one it calls (a network with no trainable
        parameter in this phase is not wrapped: DDP refuses it)."""
        self.forward_module = wrapper(self.trainable)

    def set_mode(self, training: bool) -> None:
        """Train/eval mode around evaluations (a method with frozen networks keeps them in eval mode)."""
        self.trainable.train(training)

    def after_step(self, progress: TrainProgress) -> None:
        """Hook after each optimizer step (EMA updates, schedules)."""

    def init_from(self, state: dict[str, Any]) -> None:
        """Start from another run's checkpoint (``--init-from RUN_DIR``): default, all of its weights."""
        try:
            self.trainable.load_state_dict(state["model"])
        except (RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"--init-from: the checkpoint's weights do not fit this model ({first})") from None

    # -- what is saved -----------------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """The fully resolved configuration, saved as config.json and inside every checkpoint."""
        return {}

    def split_dict(self) -> dict[str, Any] | None:
        """The data split (SSL label indices...), saved as split.json so a run can be audited."""
        return None

    def run_files(self) -> dict[str, str]:
        """Text files written into a new run directory beside config.json (file name -> content): e.g. the
        segmentation split's ``labeled.txt`` / ``unlabeled.txt``, one image id per line."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Method state beyond the trainable module and the optimizers (e.g. an EMA model)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of `extra_state`."""
