"""The optimizers of a method, stepped through the engine (manual optimisation in the spirit of Lightning's).

A method with one optimizer never sees this: the engine calls ``backward`` and ``step`` for it after every
``train_step``. So does a method whose optimizers own disjoint parameters fed by one loss (SAMOSA: the classifier's
loss and the reconstruction loss reach disjoint networks): one backward pass of the step's loss, then every
optimizer steps, in the order declared, all sharing the first one's loss scaler. A method with several (SAMOSA's ``{E_c, C}`` and ``{E_r, D}``; SciMix's discriminator and
generator) sets ``manual_optimization = True``, declares them in ``Method.optimizers()`` and, inside its
``train_step``, calls ``self.optim.backward(loss, name)`` and ``self.optim.step(name)`` in the order its paper
prescribes. Either way the engine keeps what a hand-written loop tends to lose:

- AMP: under fp16 every optimizer has its own ``GradScaler`` (a skipped step of one network does not shrink the
  other's scale), or shares another's when one backward pass feeds both (``OptimizerSpec.scaler``); the scalers
  that stepped are updated once at the end of the iteration. bf16 and fp32 need no scaling.
- gradient clipping by global norm per optimizer (``OptimizerSpec.clip_grad_norm``), on unscaled gradients;
- the schedulers, stepped after their optimizer;
- the NaN guard: every loss given to ``backward`` is checked by the engine, without a host-device sync per step;
- DDP: several backward passes into one DDP module before a step go through ``Runtime.no_sync``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mixlab.engine.device import Precision
from mixlab.errors import CheckpointError, ConfigError

Scheduler = torch.optim.lr_scheduler.LRScheduler


def make_optimizer(cls: type[torch.optim.Optimizer], params: Any, **options: Any) -> torch.optim.Optimizer:
    """``cls(params, **options)``, with the fused CUDA kernel when every parameter is a floating CUDA tensor.

    ``params`` is what ``torch.optim`` takes (parameters, or param-group dicts). The fused kernel updates every
    parameter in one launch instead of torch's default multi-tensor path (several per parameter group), and under
    fp16 it reads the loss scaler's scale and inf flag on the device, where the default path checks them on the host
    (a synchronisation per step). Elsewhere (CPU, MPS) the optimizer is built as asked.
    """
    items = list(params)
    groups = [dict(g, params=_as_list(g["params"])) if isinstance(g, dict) else g for g in items]
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    on_cuda = bool(tensors) and all(p.device.type == "cuda" and p.is_floating_point() for p in tensors)
    if on_cuda and "fused" not in options:
        options["fused"] = True
    return cls(groups, **options)


def _as_list(params: Any) -> list[torch.Tensor]:
    return [params] if isinstance(params, torch.Tensor) else list(params)


@dataclass
class OptimizerSpec:
    """One optimizer as a method declares it."""

    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None = None
    clip_grad_norm: float | None = None  # clip the global L2 norm of this optimizer's gradients (None: off)
    scaler: str | None = None  # name of another optimizer whose loss scaler this one shares (one backward, two steps)


class Optimization:
    """Named optimizers, their schedulers and loss scalers; ``backward`` / ``step`` / ``end_iteration``."""

    def __init__(self, specs: dict[str, OptimizerSpec], precision: Precision, *, one_backward: bool = False):
        if not specs:
            raise ConfigError("a method must declare at least one optimizer")
        self.specs = dict(specs)
        self.precision = precision
        self.scaler_of: dict[str, str] = {}
        first = next(iter(self.specs))
        for name, spec in self.specs.items():
            owner = spec.scaler or (first if one_backward else name)
            if owner not in self.specs or (self.specs[owner].scaler not in (None, owner)):
                raise ConfigError(f"optimizer {name!r} shares the scaler of {owner!r}, which does not own one")
            self.scaler_of[name] = owner
        self.scalers = {owner: precision.grad_scaler() for owner in set(self.scaler_of.values())}
        self._stepped: set[str] = set()
        self._losses: list[torch.Tensor] = []

    # -- what a method calls ----------------------------------------------------------------------------------
    def optimizer(self, name: str = "main") -> torch.optim.Optimizer:
        return self._spec(name).optimizer

    def backward(self, loss: torch.Tensor, name: str = "main", *, retain_graph: bool = False) -> None:
        """Backpropagate ``loss`` for optimizer ``name`` (scaled by its loss scaler under fp16)."""
        self._spec(name)
        self._losses.append(loss.detach())
        scaler = self.scalers[self.scaler_of[name]]
        # Backward passes run outside autocast (the forward already chose each op's precision).
        with self._no_autocast():
            scaler.scale(loss).backward(retain_graph=retain_graph)

    def step(self, name: str = "main") -> None:
        """Unscale, clip, step optimizer ``name`` (skipped by the scaler on inf/NaN gradients), zero its
        gradients, then step its scheduler."""
        spec = self._spec(name)
        scaler = self.scalers[self.scaler_of[name]]
        if spec.clip_grad_norm is not None:
            scaler.unscale_(spec.optimizer)
            params = [p for group in spec.optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, spec.clip_grad_norm)
        scaler.step(spec.optimizer)
        self._stepped.add(self.scaler_of[name])
        spec.optimizer.zero_grad(set_to_none=True)
        if spec.scheduler is not None:
            spec.scheduler.step()

    def zero_grad(self, name: str | None = None) -> None:
        for key in [name] if name is not None else list(self.specs):
            self._spec(key).optimizer.zero_grad(set_to_none=True)

    def lr(self, name: str | None = None) -> float:
        """The current learning rate of optimizer ``name`` (default: the first declared), first param group."""
        spec = self._spec(name if name is not None else next(iter(self.specs)))
        return float(spec.optimizer.param_groups[0]["lr"])

    def lrs(self) -> dict[str, float]:
        return {name: self.lr(name) for name in self.specs}

    # -- what the engine calls --------------------------------------------------------------------------------
    def backward_and_step_all(self, loss: torch.Tensor) -> None:
        """The automatic path: one backward pass of ``loss``, then every optimizer's step in declaration order."""
        self.backward(loss, next(iter(self.specs)))
        for name in self.specs:
            self.step(name)

    def end_iteration(self) -> list[torch.Tensor]:
        """Update the scalers that stepped this iteration, clear every gradient (none carries over to the next
        iteration, so a resumed run, which has none, continues exactly), and return the iteration's losses for the
        NaN guard."""
        for owner in self._stepped:
            self.scalers[owner].update()
        self._stepped.clear()
        self.zero_grad()
        losses, self._losses = self._losses, []
        return losses

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {name: spec.optimizer.state_dict() for name, spec in self.specs.items()},
            "schedulers": {
                name: spec.scheduler.state_dict() for name, spec in self.specs.items() if spec.scheduler is not None
            },
            "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("optimizers", {})
        if set(saved) != set(self.specs):
            raise CheckpointError(
                f"the checkpoint holds optimizers {sorted(saved)}, this phase has {sorted(self.specs)}"
            )
        for name, spec in self.specs.items():
            spec.optimizer.load_state_dict(saved[name])
            if spec.scheduler is not None and name in state.get("schedulers", {}):
                spec.scheduler.load_state_dict(state["schedulers"][name])
        for name, scaler in self.scalers.items():
            if name in state.get("scalers", {}):
                scaler.load_state_dict(state["scalers"][name])

    # -- helpers ----------------------------------------------------------------------------------------------
    def _spec(self, name: str) -> OptimizerSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise ConfigError(f"no optimizer named {name!r} (this method has {', '.join(self.specs)})") from None

    def _no_autocast(self) -> contextlib.AbstractContextManager:
        if self.precision.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.precision.device.type, enabled=False)


@contextlib.contextmanager
def no_sync(*modules: nn.Module) -> Iterator[None]:
    """Skip DDP's gradient all-reduce for these (DDP-wrapped) modules inside the block: use it around the forward
    and backward passes that precede the last one before an optimizer step. A no-op without DDP."""
    with contextlib.ExitStack() as stack:
        for module in modules:
            if isinstance(module, nn.parallel.DistributedDataParallel):
                stack.enter_context(module.no_sync())
            elif hasattr(module, "_orig_mod") and isinstance(module._orig_mod, nn.parallel.DistributedDataParallel):
                stack.enter_context(module._orig_mod.no_sync())
        yield
