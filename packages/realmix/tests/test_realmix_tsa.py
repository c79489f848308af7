"""Training Signal Annealing: schedules (spec §3.7 golden table), keep mask (intended vs official), masked CE."""

import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.mixing import soft_cross_entropy
from realmix.tsa import tsa_cross_entropy, tsa_keep_mask, tsa_threshold

GOLDEN = {  # spec §3.7, C = 10, r = 0, 0.25, 0.5, 0.75, 1
    "linear": (0.100000, 0.325000, 0.550000, 0.775000, 1.000000),
    "log": (0.100000, 0.742146, 0.926124, 0.978834, 0.993936),
    "exp": (0.106064, 0.121166, 0.173876, 0.357854, 1.000000),
}


@pytest.mark.parametrize("schedule", sorted(GOLDEN))
def test_realmix_tsa_golden_thresholds(schedule):
    for r, expected in zip((0.0, 0.25, 0.5, 0.75, 1.0), GOLDEN[schedule]):
        assert round(tsa_threshold(r, 10, schedule), 6) == pytest.approx(expected, abs=1e-12), (schedule, r)


def test_realmix_tsa_monotone_and_num_classes():
    grid = [i / 200 for i in range(201)]
    for schedule in GOLDEN:
        values = [tsa_threshold(r, 10, schedule) for r in grid]
        assert all(b >= a for a, b in zip(values, values[1:])), schedule
        assert values[-1] <= 1.0 + 1e-12
    assert tsa_threshold(0.0, 6, "linear") == pytest.approx(1 / 6)
    assert tsa_threshold(0.0, 6, "log") == pytest.approx(1 / 6)
    assert tsa_threshold(0.0, 6, "exp") == pytest.approx(math.exp(-5) * 5 / 6 + 1 / 6)
    assert tsa_threshold(1.0, 6, "linear") == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args",
    [
        (0.5, 10, "none"),
        (0.5, 10, "cosine"),
        (1.5, 10, "linear"),
        (-0.1, 10, "linear"),
        (float("nan"), 10, "linear"),
        (0.5, 1, "linear"),
        (0.5, 10.0, "linear"),
    ],
)
def test_realmix_tsa_threshold_rejects_bad_arguments(args):
    with pytest.raises(ConfigError):
        tsa_threshold(*args)


def _logits_for(probs: list[list[float]]) -> torch.Tensor:
    return torch.log(torch.tensor(probs))  # softmax(log p) = p


def test_realmix_tsa_keep_mask_one_hot():
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    logits = _logits_for([[0.9, 0.05, 0.05], [0.3, 0.4, 0.3]])
    keep = tsa_keep_mask(logits, targets, 0.5)
    assert keep.dtype == torch.float32
    assert keep.tolist() == [0.0, 1.0]  # p_y = 0.9 >= 0.5 dropped; p_y = 0.3 < 0.5 kept


def test_realmix_tsa_keep_mask_mixed_labels():
    targets = torch.tensor([[0.7, 0.3, 0.0]]).repeat(4, 1)
    logits = _logits_for(
        [
            [0.30, 0.60, 0.10],  # p0 = 0.30 < 0.7·0.5 -> kept
            [0.40, 0.50, 0.10],  # 0.40 >= 0.35 and 0.50 >= 0.15 -> dropped
            [0.50, 0.10, 0.40],  # p1 = 0.10 < 0.3·0.5 -> kept
            [0.36, 0.16, 0.48],
        ]
    )  # both just above their thresholds -> dropped
    assert tsa_keep_mask(logits, targets, 0.5).tolist() == [1.0, 0.0, 1.0, 0.0]
    assert tsa_keep_mask(logits, targets, 1.0).tolist() == [1.0, 1.0, 1.0, 1.0]


def test_realmix_tsa_official_differs_from_intended():
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    logits = torch.tensor(
        [
            [2.0, 1.0, 0.0],  # p0 = 0.665 >= 0.5: intended drops; official keeps (p0 < 2·0.5)
            [-1.0, -2.0, -3.0],
        ]
    )  # p2 = 0.09 < 0.5: intended keeps; negative logits: official drops
    assert tsa_keep_mask(logits, targets, 0.5, impl="intended").tolist() == [0.0, 1.0]
    assert tsa_keep_mask(logits, targets, 0.5, impl="official").tolist() == [1.0, 0.0]
    with pytest.raises(ConfigError):
        tsa_keep_mask(logits, targets, 0.5, impl="uda")


def test_realmix_tsa_cross_entropy_masks_and_normalises_by_kept():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(16, 10, generator=g) * 4).requires_grad_(True)
    labels = torch.randint(0, 10, (16,), generator=g)
    labels[:8] = logits[:8].argmax(-1)  # confident and correct: mostly dropped at eta = 0.3
    targets = F.one_hot(labels, 10).float()
    loss, keep = tsa_cross_entropy(logits, targets, 0.3)
    kept = keep.bool()
    assert 0 < kept.sum() < 16
    assert torch.allclose(loss, F.cross_entropy(logits[kept], labels[kept]), atol=1e-6)
    assert not keep.requires_grad
    loss.backward()
    assert (logits.grad[~kept] == 0).all() and (logits.grad[kept] != 0).any()


def test_realmix_tsa_cross_entropy_all_dropped_and_no_tsa():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss, keep = tsa_cross_entropy(logits, targets, 0.5)
    assert keep.tolist() == [0.0, 0.0] and loss.item() == 0.0
    loss.backward()
    assert (logits.grad == 0).all()
    g = torch.Generator().manual_seed(1)
    soft = torch.softmax(torch.randn(8, 5, generator=g), dim=-1)
    z = torch.randn(8, 5, generator=g)
    plain, ones = tsa_cross_entropy(z, soft, None)
    assert ones.tolist() == [1.0] * 8
    assert torch.allclose(plain, soft_cross_entropy(z, soft), atol=1e-6)


def test_realmix_tsa_cross_entropy_float32_and_shapes():
    z = torch.randn(4, 3).half()
    y = torch.eye(3)[[0, 1, 2, 0]]
    loss, keep = tsa_cross_entropy(z, y, 0.9)
    assert loss.dtype == torch.float32 and keep.dtype == torch.float32 and keep.shape == (4,)
    with pytest.raises(ConfigError):
        tsa_cross_entropy(torch.randn(4, 3), torch.randn(4, 2), 0.5)
    with pytest.raises(ConfigError):
        tsa_cross_entropy(torch.randn(4, 3), y, 1.5)
