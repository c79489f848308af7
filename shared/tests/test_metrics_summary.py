"""classification_metrics and ensemble_logits (spec §4.3, §6.7, invariant 17's metric side)."""

from __future__ import annotations

import pytest
import torch
from mixlab.metrics import (
    brier,
    classification_metrics,
    cross_halves_calibrated,
    ece,
    ensemble_logits,
    mean_pairwise_diversity,
    nll,
    topk_accuracy,
)

FAST = {"ts_lrs": (0.5,), "ts_max_iter": 100}


def _heads(n: int = 240, M: int = 2, K: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(K, (n,), generator=g)
    heads = torch.randn(n, M, K, generator=g) * 2
    heads[torch.arange(n), :, targets] += 2.0
    return heads, targets


def test_ensemble_reductions():
    heads, _ = _heads()
    assert torch.allclose(ensemble_logits(heads), heads.mean(1))
    mean_p = torch.softmax(heads, -1).mean(1)
    assert torch.allclose(torch.softmax(ensemble_logits(heads, "mean_probs"), -1), mean_p, atol=1e-6)
    assert torch.allclose(ensemble_logits(heads, "mean_probs").exp(), mean_p, atol=1e-6)
    with pytest.raises(ValueError):
        ensemble_logits(heads, "vote")


def test_classification_metrics_collects_every_number():
    heads, targets = _heads()
    logits = ensemble_logits(heads)
    out = classification_metrics(logits, targets, head_logits=heads, **FAST)
    top = topk_accuracy(logits, targets)
    assert out["top1"] == top["top1"] and out["top5"] == top["top5"]
    assert out["nll"] == nll(logits, targets) and out["ece"] == ece(logits, targets)
    assert out["brier"] == brier(logits, targets)
    calibrated = cross_halves_calibrated(logits, targets, lrs=(0.5,), max_iter=100)
    assert out["nll_c"] == calibrated["nll_c"] and out["ece_c"] == calibrated["ece_c"]
    per_head = [topk_accuracy(heads[:, i], targets, ks=(1,))["top1"] for i in range(2)]
    assert out["head_top1"] == per_head
    assert out["top1_individual"] == pytest.approx(sum(per_head) / 2)
    assert out["diversity"] == mean_pairwise_diversity(heads, targets)
    assert out["top1"] > out["top1_individual"]  # two noisy heads ensemble better than each alone
    implicit = classification_metrics(None, targets, head_logits=heads, calibrate=False)
    assert implicit["top1"] == out["top1"] and "nll_c" not in implicit


def test_identical_heads_have_the_ensemble_accuracy_and_no_diversity():
    heads, targets = _heads(M=1)
    same = heads.expand(-1, 3, -1)
    out = classification_metrics(ensemble_logits(same), targets, head_logits=same, calibrate=False)
    assert out["top1_individual"] == out["top1"] and out["diversity"] == 0.0
    single = classification_metrics(heads[:, 0], targets, head_logits=heads, calibrate=False)
    assert "diversity" not in single and single["head_top1"] == [single["top1"]]
