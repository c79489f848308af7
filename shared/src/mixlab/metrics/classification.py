"""Ensemble classification metrics of the thesis tables (spec §6.7): top-k, NLL, ECE, Brier.

All functions take raw logits (N, K) and integer targets (N,); probabilities are softmax(logits).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mixlab.metrics._inputs import logits_and_targets


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracies in percent, keyed ``"top{k}"``; k larger than K counts every sample as correct."""
    z, t = logits_and_targets(logits, targets)
    out: dict[str, float] = {}
    for k in ks:
        kk = min(int(k), z.shape[1])
        hit = (z.topk(kk, dim=1).indices == t[:, None]).any(dim=1)
        out[f"top{k}"] = 100.0 * hit.double().mean().item()
    return out


def nll(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean negative log-likelihood -log softmax(z)_y (log_softmax, so no 1e-12 floor is needed)."""
    z, t = logits_and_targets(logits, targets)
    return F.cross_entropy(z, t).item()


def _bin_edges(n_bins: int) -> torch.Tensor:
    """ECE bin edges ``i / n_bins`` for i = 0..n_bins (Python's correctly rounded division; the last is 1.0)."""
    return torch.tensor([i / n_bins for i in range(n_bins + 1)], dtype=torch.float64)


def expected_calibration_error(confidences: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> float:
    """ECE as a fraction in [0, 1] from per-sample confidences and correctness.

    ``n_bins`` equal-width bins on [0, 1] with membership lower < conf <= upper (official ``get_ece``), so a
    confidence of exactly 1 falls in the last bin and one of exactly 0 in none. The edges are the correctly rounded
    floats ``i / n_bins`` (the last exactly 1.0), so a confidence equal to ``i / n_bins`` belongs to bin i - 1. For
    the official 15 bins these are bit for bit the official ``np.linspace(0, 1, 16)`` edges (``torch.linspace`` puts
    11/15 one ulp higher); for some other bin counts ``np.linspace`` (which computes ``i * (1 / n_bins)``) is one ulp
    off ``i / n_bins`` on a few edges, e.g. 3/10, 6/10, 7/10.
    ECE = sum_b |B_b|/n * |acc(B_b) - conf(B_b)| = sum_b |sum_{B_b} (correct - conf)| / n.
    """
    if n_bins < 1:
        raise ValueError(f"ECE needs at least one bin, got {n_bins}.")
    conf = confidences.detach().to("cpu", torch.float64).reshape(-1)
    hit = correct.detach().to("cpu", torch.float64).reshape(-1)
    if conf.shape != hit.shape or conf.numel() == 0:
        raise ValueError("ECE needs as many correctness flags as confidences, and at least one sample.")
    edges = _bin_edges(n_bins)
    # bucketize(right=False) returns i with edges[i-1] < conf <= edges[i]: bin i-1, upper edge inclusive.
    idx = torch.bucketize(conf, edges, right=False) - 1
    valid = (idx >= 0) & (idx < n_bins)
    gap = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx[valid], (hit - conf)[valid])
    return (gap.abs().sum() / conf.numel()).item()


def reliability_bins(logits: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> dict[str, list[float] | float]:
    """What a reliability diagram draws, with the bins of :func:`expected_calibration_error` (lower < conf <= upper):
    per bin its ``count``, mean ``confidence`` and ``accuracy`` (NaN for an empty bin), the ``edges`` and the ``ece``
    (a fraction) they give."""
    z, t = logits_and_targets(logits, targets)
    conf, pred = torch.softmax(z, dim=1).max(dim=1)
    conf, hit = conf.detach().to("cpu", torch.float64), (pred == t).to("cpu", torch.float64)
    edges = _bin_edges(n_bins)
    idx = torch.bucketize(conf, edges, right=False) - 1
    valid = (idx >= 0) & (idx < n_bins)
    count = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx[valid], torch.ones_like(conf[valid]))
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx[valid], conf[valid])
    hit_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx[valid], hit[valid])
    nan = torch.full_like(count, float("nan"))
    return {
        "edges": edges.tolist(),
        "count": count.tolist(),
        "confidence": torch.where(count > 0, conf_sum / count.clamp_min(1), nan).tolist(),
        "accuracy": torch.where(count > 0, hit_sum / count.clamp_min(1), nan).tolist(),
        "ece": float((hit_sum - conf_sum).abs().sum() / conf.numel()),
    }


def ece(logits: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (fraction in [0, 1]) of the max-softmax confidence, 15 bins by default."""
    z, t = logits_and_targets(logits, targets)
    conf, pred = torch.softmax(z, dim=1).max(dim=1)
    return expected_calibration_error(conf, pred == t, n_bins)


BRIER_REDUCTIONS: tuple[str, ...] = ("sum_over_classes", "mean_over_classes")


#: What the reported ``brier`` is, as `eval` prints it under its table.
BRIER_CONVENTION = (
    "brier: mean over images of the sum over classes of (p_k - onehot_k)^2, in [0, 2] "
    "(the official MixMo code's get_brier divides it by the number of classes)"
)


def brier(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "sum_over_classes") -> float:
    """Multi-class Brier score: the mean over samples of the squared error between softmax and one-hot target.

    ``reduction`` says how the K per-class squared errors of a sample are combined:

    * ``"sum_over_classes"`` (default; the textbook multi-class Brier score of Brier 1950): mean over samples of
      sum_k (p_k - onehot_k)^2, in [0, 2]. This is the ``brier`` that :func:`classification_metrics` reports.
    * ``"mean_over_classes"`` (the official MixMo code's ``get_brier``, ``np.mean((p - onehot) ** 2)`` over the
      (N, K) array): the same divided by K, in [0, 2 / K].

    The thesis reports no Brier score, so neither convention is needed to compare with its tables.
    """
    if reduction not in BRIER_REDUCTIONS:
        raise ValueError(f"Unknown Brier reduction {reduction!r}; choose one of {', '.join(BRIER_REDUCTIONS)}.")
    z, t = logits_and_targets(logits, targets)
    p = torch.softmax(z, dim=1)
    per_sample = ((p - F.one_hot(t, z.shape[1]).to(p.dtype)) ** 2).sum(1)
    if reduction == "mean_over_classes":
        per_sample = per_sample / z.shape[1]
    return per_sample.mean().item()
