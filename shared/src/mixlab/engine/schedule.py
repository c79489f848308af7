"""Learning-rate schedules, expressed per optimizer step so that warm-up and resume are exact."""

from __future__ import annotations

from collections.abc import Sequence

import torch


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
