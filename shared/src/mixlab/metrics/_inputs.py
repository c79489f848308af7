"""Input checks shared by the metrics: they are computed in float64, on the CPU unless told otherwise.

Evaluation outputs are small ((N, K) logits once per evaluation), float64 keeps NLL/ECE/TS comparable across
devices and AMP settings, and MPS has no float64.
"""

from __future__ import annotations

import torch


def as_logits(logits: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"Expected logits of shape (N, K) with N, K >= 1, got {tuple(logits.shape)}.")
    return logits.detach().to(device, torch.float64)


def as_targets(
    targets: torch.Tensor, n: int, num_classes: int | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    targets = targets.detach().to(device).long().reshape(-1)
    if targets.shape[0] != n:
        raise ValueError(f"Expected {n} targets, got {targets.shape[0]}.")
    if num_classes is not None and n and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(f"Targets must lie in [0, {num_classes}), got [{int(targets.min())}, {int(targets.max())}].")
    return targets


def logits_and_targets(
    logits: torch.Tensor, targets: torch.Tensor, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    z = as_logits(logits, device)
    return z, as_targets(targets, z.shape[0], z.shape[1], device)
