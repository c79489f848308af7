"""AdamW with the thesis's transformer schedule (A.1.5): warm-up over 10% of training, then step decay.

lr = 1e-3 * sqrt(b_eff / B) (square-root scaling from the base batch B = 128), a per-step linear warm-up from
1e-6, then x0.1 after epochs 125 and 140 of 150 (cosine decay failed to converge on CIFAR-100). Biases, norms,
positions, the class token and the source embeddings are not decayed (timm's/DeiT's convention).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mixlab.engine import make_optimizer, warmup_multistep_factor
from torch import nn


def no_decay_names(model: nn.Module) -> set[str]:
    """Full names of the parameters submodules declare through ``no_weight_decay()`` (e.g. ``vit.pos_embed``)."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        declare = getattr(module, "no_weight_decay", None)
        if callable(declare):
            names |= {f"{prefix}.{name}" if prefix else name for name in declare()}
    return names


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weight matrices, and the rest (ndim <= 1 or declared no-decay) at 0."""
    skip = no_decay_names(model)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name in skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, betas (0.9, 0.999), eps 1e-8 (unstated in the thesis: the PyTorch/timm defaults)."""
    return make_optimizer(torch.optim.AdamW, param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-8)


def warmup_step_factor(
    step: int,
    *,
    steps_per_epoch: int,
    warmup_epochs: float,
    milestones: Sequence[int],
    gamma: float,
    start_factor: float,
) -> float:
    """LR multiplier at 0-based step ``step``: ``start_factor`` -> 1 linearly over the warm-up steps, then
    ``gamma ** (#milestones passed)`` (a milestone m applies after m completed epochs)."""
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    if step < warmup_steps:
        return start_factor + (1.0 - start_factor) * step / warmup_steps
    return warmup_multistep_factor(
        step, steps_per_epoch=steps_per_epoch, warmup_epochs=0, milestones=milestones, gamma=gamma
    )


def warmup_step_schedule(
    optimizer: torch.optim.Optimizer,
    *,
    lr: float,
    warmup_lr: float,
    steps_per_epoch: int,
    warmup_epochs: float,
    milestones: Sequence[int],
    gamma: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule as a per-step LambdaLR (exact under resume: it is a function of the step alone)."""
    start = min(1.0, warmup_lr / lr)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: warmup_step_factor(
            s,
            steps_per_epoch=steps_per_epoch,
            warmup_epochs=warmup_epochs,
            milestones=milestones,
            gamma=gamma,
            start_factor=start,
        ),
    )
