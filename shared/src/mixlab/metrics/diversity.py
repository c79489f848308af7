"""Ensemble diversity between subnetworks: the ratio-error measure d_re (Aksela 2003; spec §6.7)."""

from __future__ import annotations

import itertools

import torch


def _predictions(pred: torch.Tensor) -> torch.Tensor:
    """Class predictions (N,) from labels (N,) or logits/probabilities (N, K)."""
    pred = pred.detach().to("cpu")
    if pred.ndim == 2:
        return pred.argmax(dim=1)
    if pred.ndim != 1:
        raise ValueError(f"Expected predicted labels (N,) or logits (N, K), got shape {tuple(pred.shape)}.")
    return pred.long()


def ratio_error_diversity(pred_a: torch.Tensor, pred_b: torch.Tensor, targets: torch.Tensor) -> float:
    """d_re = (N10 + N01) / N00 for two classifiers, from labels (N,) or logits (N, K).

    N00 is the share of samples both get wrong, N10 + N01 the share exactly one gets wrong. Higher means the
    two rarely make the same mistakes. As in the official code, N00 = 0 gives 2 * (N10 + N01).
    """
    a, b = _predictions(pred_a), _predictions(pred_b)
    t = targets.detach().to("cpu").long().reshape(-1)
    if not a.shape == b.shape == t.shape or t.numel() == 0:
        raise ValueError("ratio_error_diversity needs two prediction vectors and targets of the same length N >= 1.")
    wrong_a, wrong_b = a != t, b != t
    both = int((wrong_a & wrong_b).sum())
    one = int((wrong_a ^ wrong_b).sum())
    if both == 0:
        return 2.0 * one / t.numel()
    return one / both


def mean_pairwise_diversity(head_logits: torch.Tensor, targets: torch.Tensor) -> float:
    """d_re averaged over all pairs of heads; head_logits (N, M, K), or head labels (N, M), with M >= 2."""
    if head_logits.ndim not in (2, 3) or head_logits.shape[1] < 2:
        raise ValueError(
            f"Pairwise diversity needs at least two heads, (N, M, K) or (N, M); got {tuple(head_logits.shape)}."
        )
    M = head_logits.shape[1]
    pairs = list(itertools.combinations(range(M), 2))
    return sum(ratio_error_diversity(head_logits[:, i], head_logits[:, j], targets) for i, j in pairs) / len(pairs)
