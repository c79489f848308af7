"""Learning-rate schedules, expressed per optimizer step so that warm-up and resume are exact."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mixlab.errors import ConfigError


def warmup_multistep_factor(
    step: int, *, steps_per_epoch: int, warmup_epochs: float, milestones: Sequence[int], gamma: float
) -> float:
    """LR multiplier at 0-based optimizer step `step`.

    Linear warm-up `(s+1)/S` over the first `S = warmup_epochs * steps_per_epoch` steps (MixMo's official
    per-step warm-up), then `gamma ** (#milestones passed)`, a milestone `m` applying from epoch index `m` on,
    i.e. after `m` completed epochs (the official 1-indexed milestones 101/201/226).
    """
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    epoch = step // steps_per_epoch
    return gamma ** sum(1 for m in milestones if epoch >= m)


def warmup_multistep(
    optimizer: torch.optim.Optimizer,
    *,
    steps_per_epoch: int,
    warmup_epochs: float,
    milestones: Sequence[int],
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: warmup_multistep_factor(
            s, steps_per_epoch=steps_per_epoch, warmup_epochs=warmup_epochs, milestones=milestones, gamma=gamma
        ),
    )


def cosine_horizon_factor(step: int, *, cycle_steps: int, horizon: float) -> float:
    """LR multiplier of the "cosine with horizon" schedule (SAMOSA / SciMix, spec samosa-scimix §1.7), per step.

    ``0.5 (1 + cos(pi e / H))`` with ``e`` the position inside the current cycle and ``H = horizon x cycle`` the
    point where the cosine would reach 0 (``horizon > 1``: 300 epochs with "fully decreasing over 350" is 350/300,
    ending at 0.0495 x base). The schedule restarts every ``cycle_steps`` (SAMOSA-MT's 3 cycles with LR restarts).
    """
    if cycle_steps < 1 or horizon <= 0:
        raise ValueError(f"cycle_steps must be >= 1 and horizon > 0, got {cycle_steps}, {horizon}")
    position = step % cycle_steps
    return 0.5 * (1.0 + math.cos(math.pi * position / (horizon * cycle_steps)))


def cosine_horizon(
    optimizer: torch.optim.Optimizer, *, cycle_steps: int, horizon: float
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_horizon_factor(s, cycle_steps=cycle_steps, horizon=horizon)
    )


def poly_factor(step: int, *, total: int, power: float, warmup: int = 0) -> float:
    """LR multiplier at 0-based step ``step``: linear warm-up ``(s+1)/W`` over ``warmup`` steps, times the poly decay
    ``(1 - s/total)^power`` (GuidedMix-Net and most segmentation codes; 0 at ``total``)."""
    decay = max(0.0, 1.0 - step / total) ** power
    return decay * ((step + 1) / warmup if step < warmup else 1.0)


def in_epoch_window(window: Sequence[float], epoch: float) -> bool:
    """Whether ``epoch`` (a step's ``step / steps_per_epoch``) lies in the window ``[start, stop)``."""
    start, stop = window
    return start <= epoch < stop


def check_epoch_window(
    window: Sequence[float], *, steps_per_epoch: int, steps: int, option: str, span: str = "the run's"
) -> None:
    """Refuse an epoch window ``[start, stop)`` that none of ``steps`` consecutive steps reaches (step k is at epoch
    ``k / steps_per_epoch``, in the window when `in_epoch_window` says so): a shortened run with a paper's window
    would silently train without what the window switches on. ``option`` names the setting and ``span`` what the
    steps are, in the one-line error."""
    start, stop = (float(v) for v in window)
    # the first step at or after start, by the membership rule itself (start * steps_per_epoch may round either way)
    first = max(0, math.ceil(start * steps_per_epoch) - 1)
    if first / steps_per_epoch < start:
        first += 1
    if first >= steps or not in_epoch_window(window, first / steps_per_epoch):
        length = steps / steps_per_epoch
        raise ConfigError(
            f"{option}=[{start:g}, {stop:g}) epochs is never reached: {span} {steps} steps span {length:.3g} epochs "
            f"of {steps_per_epoch} steps; give a window inside [0, {length:.3g})"
        )
