"""Top-k, NLL, ECE (spec §10 invariant 27) and Brier on hand-computed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mixlab.metrics import brier, ece, expected_calibration_error, nll, topk_accuracy


def _logits_with_confidence(conf: float, n: int, K: int = 2) -> torch.Tensor:
    """Logits whose softmax puts probability conf on class 0 and the rest evenly on the others."""
    rest = (1 - conf) / (K - 1)
    return torch.log(torch.tensor([[conf] + [rest] * (K - 1)], dtype=torch.float64)).expand(n, K)


def test_topk_accuracy_golden():
    logits = torch.tensor(
        [
            [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            [1.0, 9.0, 2.0, 3.0, 4.0, 5.0],
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ]
    )
    targets = torch.tensor([0, 0, 5, 3])
    acc = topk_accuracy(logits, targets, ks=(1, 2, 5))
    assert acc == {"top1": 25.0, "top2": 50.0, "top5": 75.0}
    assert topk_accuracy(logits[:, :3], torch.tensor([0, 0, 1, 2]), ks=(1, 5))["top5"] == 100.0  # k > K


def test_nll_is_stable_and_matches_the_definition():
    logits = torch.tensor([[1000.0, 0.0], [0.0, 0.0], [2.0, 1.0]])
    targets = torch.tensor([1, 0, 0])
    expected = (1000.0 + math.log(2) + math.log(1 + math.exp(-1))) / 3
    assert nll(logits, targets) == pytest.approx(expected, rel=1e-9)
    assert math.isfinite(nll(torch.tensor([[80.0, -80.0]], dtype=torch.float16), torch.tensor([1])))


def test_ece_golden_cases():
    # Confidence 0.8 and 80% correct, all in one bin: perfectly calibrated.
    logits = _logits_with_confidence(0.8, 10)
    targets = torch.tensor([0] * 8 + [1] * 2)
    assert ece(logits, targets) == pytest.approx(0.0, abs=1e-9)
    # Confident (conf = 1) and always wrong: the worst case, and conf = 1 belongs to the last bin.
    assert ece(torch.tensor([[100.0, 0.0]]).expand(5, 2), torch.ones(5, dtype=torch.long)) == pytest.approx(1.0)
    assert expected_calibration_error(torch.ones(4), torch.zeros(4)) == 1.0
    assert expected_calibration_error(torch.ones(4), torch.ones(4)) == 0.0
    # Two bins' worth: conf 0.9 all correct (gap 0.1) and conf 0.6 half correct (gap 0.1), equal weights.
    conf = torch.tensor([0.9, 0.9, 0.6, 0.6])
    assert expected_calibration_error(conf, torch.tensor([1, 1, 1, 0])) == pytest.approx(0.1)


def test_ece_bins_are_upper_inclusive():
    # With 4 bins, conf = 0.5 belongs to (0.25, 0.5] together with 0.3, not to (0.5, 0.75].
    conf = torch.tensor([0.5, 0.3], dtype=torch.float64)
    correct = torch.tensor([1.0, 0.0])
    upper_inclusive = abs(0.5 - 0.4)  # one bin: accuracy 0.5, mean confidence 0.4
    assert expected_calibration_error(conf, correct, n_bins=4) == pytest.approx(upper_inclusive)


def test_ece_matches_the_official_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 10, generator=g) * 2
    targets = torch.randint(10, (500,), generator=g)
    probs = torch.softmax(logits.double(), 1).numpy()
    conf, accurate = probs.max(1), probs.argmax(1) == targets.numpy()
    edges = np.linspace(0, 1, 16)
    official = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.mean() > 0:
            official += abs(conf[in_bin].mean() - accurate[in_bin].mean()) * in_bin.mean()
    assert ece(logits, targets) == pytest.approx(official, abs=1e-12)


def test_brier_golden():
    assert brier(torch.tensor([[50.0, -50.0, -50.0]]), torch.tensor([0])) == pytest.approx(0.0, abs=1e-12)
    K = 4
    assert brier(torch.zeros(3, K), torch.tensor([0, 1, 3])) == pytest.approx(1 - 1 / K)  # uniform prediction
    assert brier(torch.tensor([[50.0, -50.0]]), torch.tensor([1])) == pytest.approx(2.0)  # confident and wrong


def test_shape_checks():
    with pytest.raises(ValueError):
        nll(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError):
        ece(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        brier(torch.zeros(2, 2), torch.tensor([0, 2]))
