"""MixMatch label guessing (RealMix spec §3.3): average the softmaxes of K augmented views, then sharpen."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from mixlab.errors import ConfigError


def sharpen(p: Tensor, temperature: float) -> Tensor:
    """``Sharpen(p, T)_i = p_i^(1/T) / sum_k p_k^(1/T)`` over the last dimension (MixMatch eq. 3).

    ``T = 1`` returns ``p`` itself (no renormalisation, so it is an exact identity). Half-precision input is
    promoted to float32. Rows are first divided by their maximum, which leaves the result unchanged in exact
    arithmetic but keeps ``p^(1/T)`` from underflowing to an all-zero row for small T.
    """
    if not temperature > 0:
        raise ConfigError(f"The sharpening temperature T must be positive (MixMatch uses 0.5), got {temperature}.")
    work = p if p.dtype in (torch.float32, torch.float64) else p.float()
    if temperature == 1.0:
        return work
    scaled = (work / work.amax(dim=-1, keepdim=True)).pow(1.0 / temperature)
    return scaled / scaled.sum(dim=-1, keepdim=True)


def guess_labels(forward: Callable[[Tensor], Tensor], views: Sequence[Tensor], temperature: float) -> Tensor:
    """``Sharpen(mean_k softmax(forward(view_k)), T)``, shape (B, K), float32, without gradient.

    One forward per view, as the official code does (so BN sees batches of B, not K*B). The caller decides the
    model and its mode and wraps the call in :func:`mixlab.ssl.bn_stats_frozen` when the guessing forwards must
    not move the BN running statistics.
    """
    if len(views) == 0:
        raise ConfigError("Label guessing needs at least one augmented view of the unlabeled batch.")
    with torch.no_grad():
        total: Tensor | None = None
        for view in views:
            probs = torch.softmax(forward(view).float(), dim=-1)
            total = probs if total is None else total.add_(probs)
        assert total is not None
        mean = total.div_(len(views))
        return sharpen(mean, temperature).detach()
