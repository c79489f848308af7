"""Top-k, NLL, ECE (spec §10 invariant 27) and Brier on hand-computed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mixlab.metrics import BRIER_REDUCTIONS, brier, ece, expected_calibration_error, nll, topk_accuracy
from mixlab.metrics.classification import _bin_edges


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


def _reference_ece(conf: list[float], correct: list[float], n_bins: int) -> float:
    """Straightforward ECE with Python-float edges i / n_bins and membership lo < conf <= hi."""
    edges = [i / n_bins for i in range(n_bins + 1)]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        members = [k for k, c in enumerate(conf) if lo < c <= hi]
        if members:
            gap = sum(conf[k] for k in members) / len(members) - sum(correct[k] for k in members) / len(members)
            total += len(members) / len(conf) * abs(gap)
    return total


@pytest.mark.parametrize("n_bins", [15, 10, 7])
def test_ece_confidences_on_and_next_to_every_edge(n_bins):
    # Edge i/n (correct) next to the midpoint of the bin below it (wrong): sharing that bin gives |1 - c - m| / 2,
    # being in the next bin (1 - c + m) / 2, so a one-ulp shift of an edge changes the value. 15 bins: torch.linspace
    # put 11/15 one ulp high; 10 bins: 3/10 as well.
    for i in range(1, n_bins + 1):
        edge = i / n_bins
        mid = (i - 0.5) / n_bins
        for c in (math.nextafter(edge, 0.0), edge, math.nextafter(edge, 2.0)):
            if c > 1.0:
                continue
            conf, correct = [c, mid], [1.0, 0.0]
            expected = _reference_ece(conf, correct, n_bins)
            got = expected_calibration_error(torch.tensor(conf, dtype=torch.float64), torch.tensor(correct), n_bins)
            assert got == pytest.approx(expected, abs=1e-15), (n_bins, i, c)
            if c == edge:  # the edge belongs to the bin below it, together with the midpoint
                assert got == pytest.approx(abs(1.0 - c - mid) / 2, abs=1e-15)
    # Every edge at once (0 is in no bin, 1.0 in the last), half of them correct.
    conf = [i / n_bins for i in range(n_bins + 1)]
    correct = [float(i % 2) for i in range(n_bins + 1)]
    got = expected_calibration_error(torch.tensor(conf, dtype=torch.float64), torch.tensor(correct), n_bins)
    assert got == pytest.approx(_reference_ece(conf, correct, n_bins), abs=1e-15)


def test_ece_bin_edges_are_i_over_n_and_the_official_ones_for_15_bins():
    for n_bins in (1, 7, 10, 15, 20):
        edges = _bin_edges(n_bins).tolist()
        assert edges == [i / n_bins for i in range(n_bins + 1)] and edges[-1] == 1.0
    assert _bin_edges(15).tolist() == np.linspace(0, 1, 16).tolist()  # official get_ece, bit for bit


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
    assert brier(torch.zeros(3, K), torch.tensor([0, 1, 3]), reduction="mean_over_classes") == pytest.approx(
        (1 - 1 / K) / K
    )


def test_brier_conventions_sum_and_official_mean_over_classes():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(50, 7, generator=g) * 2
    targets = torch.randint(7, (50,), generator=g)
    probs = torch.softmax(logits.double(), 1).numpy()
    onehot = np.eye(7)[targets.numpy()]
    official = np.mean((probs - onehot) ** 2)  # official get_brier (per batch, times its size, over the dataset)
    assert BRIER_REDUCTIONS == ("sum_over_classes", "mean_over_classes")
    assert brier(logits, targets, reduction="mean_over_classes") == pytest.approx(official, rel=1e-12)
    assert brier(logits, targets) == brier(logits, targets, reduction="sum_over_classes")
    assert brier(logits, targets) == pytest.approx(7 * official, rel=1e-12)
    with pytest.raises(ValueError):
        brier(logits, targets, reduction="mean")


def test_shape_checks():
    with pytest.raises(ValueError):
        nll(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError):
        ece(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        brier(torch.zeros(2, 2), torch.tensor([0, 2]))


def test_reliability_bins_match_the_ece_and_a_hand_example(tmp_path):
    import math

    from mixlab.metrics import ece, reliability_bins
    from mixlab.visual import save_reliability_diagram
    from PIL import Image

    # Confidences 0.9, 0.9 (one right) and 0.6 (right), two classes: bins of 0.5.
    p = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    logits, targets = p.log(), torch.tensor([0, 1, 1])
    bins = reliability_bins(logits, targets, n_bins=2)
    assert bins["count"] == [0.0, 3.0] and math.isnan(bins["accuracy"][0])
    assert math.isclose(bins["accuracy"][1], 2 / 3) and math.isclose(bins["confidence"][1], 0.8, rel_tol=1e-6)
    assert math.isclose(bins["ece"], abs(2 / 3 - 0.8), rel_tol=1e-6)
    random_logits, random_targets = torch.randn(500, 10) * 3, torch.randint(0, 10, (500,))
    assert math.isclose(reliability_bins(random_logits, random_targets)["ece"], ece(random_logits, random_targets))
    path = save_reliability_diagram(bins, tmp_path / "d" / "r.png", title="toy")
    assert Image.open(path).size[0] > 300 and not list(path.parent.glob(".*"))
