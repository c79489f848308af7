"""Feature-sharing diagnostics of MIMO subnetworks (spec §5.1, thesis Fig. 3.4 / Table 3.6 / Table A.16).

Influence of a channel on a subnetwork is an L1 norm of the weights that read or write it: encoder filters
``a_i[c] = ||W_{c_i}[c]||_1`` and head columns ``h_i[c] = ||W_{d_i}[:, c]||_1``. The share rate compares two
such histograms; the active-filter fraction measures how much of the core network is actually used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mixlab.errors import MixlabError

SHARE_VARIANTS: tuple[str, ...] = ("normalized", "unnormalized", "mean_ratio")


def encoder_influence(weight: torch.Tensor) -> torch.Tensor:
    """L1 norm of every output filter of a conv weight (C_out, C_in, k, k) -> (C_out,)."""
    return weight.detach().abs().flatten(1).sum(1)


def head_influence(weight: torch.Tensor) -> torch.Tensor:
    """L1 norm of every input column of a linear head weight (K, D) -> (D,)."""
    if weight.ndim != 2:
        raise ValueError(f"A linear head weight has shape (K, D), got {tuple(weight.shape)}.")
    return weight.detach().abs().sum(0)


def share_rate(h0: torch.Tensor, h1: torch.Tensor, variant: str = "normalized") -> float:
    """Overlap in [0, 1] of two non-negative influence vectors; 1 = identical, 0 = disjoint supports.

    ``normalized`` (spec §5.1 / §9 B6 recommendation): each vector is scaled to sum 1, then the weighted Jaccard
    sum_c min / sum_c max. ``unnormalized``: the same Jaccard on the raw vectors. ``mean_ratio``: the mean over
    channels of min/max, a literal reading of the thesis' "min(h_0, h_1)/max(h_0, h_1)" (channels where both
    are 0 are skipped).
    """
    if variant not in SHARE_VARIANTS:
        raise ValueError(f"Unknown share-rate variant {variant!r}; choose one of {', '.join(SHARE_VARIANTS)}.")
    a = h0.detach().to("cpu", torch.float64).reshape(-1)
    b = h1.detach().to("cpu", torch.float64).reshape(-1)
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError("share_rate needs two influence vectors of the same non-zero length.")
    if bool((a < 0).any()) or bool((b < 0).any()):
        raise ValueError("Influence vectors are norms and must be non-negative.")
    if float(a.sum()) == 0.0 or float(b.sum()) == 0.0:
        raise MixlabError("An influence vector is all zeros (a dead encoder or head): the share rate is undefined.")
    if variant == "normalized":
        a, b = a / a.sum(), b / b.sum()
    low, high = torch.minimum(a, b), torch.maximum(a, b)
    if variant == "mean_ratio":
        used = high > 0
        return (low[used] / high[used]).mean().item()
    return (low.sum() / high.sum()).item()


def active_filter_fraction(conv_weights: Sequence[torch.Tensor], t_a: float = 0.4) -> float:
    """Fraction of active filters pooled over layers (spec §5.1, invariant 29).

    A filter (one output channel, n_in x k x k) is active when its L1 norm is at least ``t_a`` times the
    largest filter norm of its own layer. Counts are pooled over the layers (not an average of per-layer
    fractions), so wide layers weigh more.
    """
    if not conv_weights:
        raise ValueError("active_filter_fraction needs at least one convolution weight.")
    active = total = 0
    for weight in conv_weights:
        norms = encoder_influence(weight)
        if float(norms.max()) > 0.0:  # an all-zero layer has no active filter
            active += int((norms >= t_a * norms.max()).sum())
        total += norms.numel()
    return active / total
