"""One call for every evaluation number of the MixMo/MixShare tables (spec §4.3, §6.7)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mixlab.metrics.calibration import (
    OFFICIAL_SPLIT_SEED,
    OFFICIAL_TS_LRS,
    OFFICIAL_TS_MAX_ITER,
    cross_halves_calibrated,
)
from mixlab.metrics.classification import brier, ece, nll, topk_accuracy
from mixlab.metrics.diversity import mean_pairwise_diversity

ENSEMBLE_REDUCTIONS: tuple[str, ...] = ("mean_logits", "mean_probs")


def ensemble_logits(head_logits: torch.Tensor, reduce: str = "mean_logits") -> torch.Tensor:
    """Ensemble prediction of M heads, (N, M, K) -> (N, K) logits.

    ``mean_logits`` (official MixMo: average the heads' logits, then softmax) or ``mean_probs`` (deep
    ensembles: average the probabilities; returned as log(mean p), which softmax maps back to mean p, so NLL
    and temperature scaling apply unchanged).
    """
    if head_logits.ndim != 3:
        raise ValueError(f"Expected head logits of shape (N, M, K), got {tuple(head_logits.shape)}.")
    if reduce == "mean_logits":
        return head_logits.mean(dim=1)
    if reduce == "mean_probs":
        M = head_logits.shape[1]
        log_p = torch.log_softmax(head_logits.float(), dim=-1)
        return torch.logsumexp(log_p, dim=1) - torch.log(torch.tensor(float(M), device=log_p.device))
    raise ValueError(f"Unknown ensemble reduction {reduce!r}; choose one of {', '.join(ENSEMBLE_REDUCTIONS)}.")


def classification_metrics(
    logits: torch.Tensor | None,
    targets: torch.Tensor,
    head_logits: torch.Tensor | None = None,
    calibrate: bool = True,
    *,
    ts_lrs: Sequence[float] = OFFICIAL_TS_LRS,
    ts_max_iter: int = OFFICIAL_TS_MAX_ITER,
    split_seed: int = OFFICIAL_SPLIT_SEED,
    ts_solver: str = "exact",
) -> dict[str, float | list[float]]:
    """Every reported metric of an (ensemble) classifier.

    ``logits`` (N, K) is the prediction being scored (for MIMO models the caller's ensemble, by default
    ``ensemble_logits(head_logits)``, used when ``logits`` is None). Returns top1, top5 (percent), nll, ece
    (fraction, 15 bins), brier (summed over classes, in [0, 2]: ``brier(..., reduction="sum_over_classes")``; the
    official MixMo code prints this divided by K, and the thesis reports no Brier); with ``calibrate`` the
    cross-halves nll_c, ece_c, top1_c and the two temperatures (see :func:`cross_halves_calibrated`; ``ts_solver``
    "exact" or the official "lbfgs" loop, whose ``ts_lrs`` and ``ts_max_iter`` are unused by "exact");
    with ``head_logits`` (N, M, K): ``head_top1`` (per head), ``top1_individual`` (their mean) and, for
    M >= 2, ``diversity`` (mean pairwise d_re).
    """
    if logits is None:
        if head_logits is None:
            raise ValueError("classification_metrics needs logits or head_logits.")
        logits = ensemble_logits(head_logits)
    out: dict[str, float | list[float]] = {}
    out.update(topk_accuracy(logits, targets, ks=(1, 5)))
    out["nll"] = nll(logits, targets)
    out["ece"] = ece(logits, targets)
    out["brier"] = brier(logits, targets, reduction="sum_over_classes")
    if calibrate:
        out.update(
            cross_halves_calibrated(logits, targets, split_seed, lrs=ts_lrs, max_iter=ts_max_iter, solver=ts_solver)
        )
    if head_logits is not None:
        if head_logits.ndim != 3 or head_logits.shape[0] != logits.shape[0]:
            raise ValueError(
                f"head_logits must be (N, M, K) with N = {logits.shape[0]}, got {tuple(head_logits.shape)}."
            )
        head_top1 = [topk_accuracy(head_logits[:, i], targets, ks=(1,))["top1"] for i in range(head_logits.shape[1])]
        out["head_top1"] = head_top1
        out["top1_individual"] = sum(head_top1) / len(head_top1)
        if head_logits.shape[1] >= 2:
            out["diversity"] = mean_pairwise_diversity(head_logits, targets)
    return out
