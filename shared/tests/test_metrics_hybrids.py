"""SAMOSA / SciMix hybrid-quality metrics (spec §2.8, §3.8; invariants §2.12-11 and §3.12-11)."""

from __future__ import annotations

import math

import pytest
import torch
from mixlab.metrics import (
    background_separation,
    hybrid_pairs,
    inherits_nonsemantic_class,
    linear_probe_accuracy,
    nonsemantic_separation,
    pixel_preservation_rate,
    samosa_separation,
    scimix_transfer,
    semantic_separation,
)


def _identity_encoder(x: torch.Tensor) -> torch.Tensor:
    """The synthetic E_r of invariant §2.12-11: the code of an image is the image."""
    return x


@pytest.fixture
def parents():
    g = torch.Generator().manual_seed(0)
    x1 = torch.rand(6, 3, 4, 4, generator=g)
    x2 = torch.rand(6, 3, 4, 4, generator=g)
    return x1, x2


# ----------------------------------------------------------------------------------------------- s_c


def test_semantic_separation_matches_hand_computed_accuracy():
    labels_1 = torch.tensor([0, 1, 2, 3, 4])
    pred = torch.tensor([0, 1, 0, 3, 1])  # right on hybrids 0, 1, 3: 3 / 5
    assert semantic_separation(pred, labels_1) == pytest.approx(0.6)
    logits = torch.nn.functional.one_hot(pred, 5).float() * 3.0 - 1.0
    assert semantic_separation(logits, labels_1) == pytest.approx(0.6)  # logits are reduced by argmax
    assert semantic_separation(labels_1, labels_1) == 1.0


def test_inherits_nonsemantic_class():
    labels_1 = torch.tensor([0, 1, 2, 3])
    labels_2 = torch.tensor([1, 1, 0, 2])  # pair 1 has parents of the same class
    pred = torch.tensor([1, 1, 2, 2])  # = labels_2 on hybrids 0, 1, 3
    assert inherits_nonsemantic_class(pred, labels_2) == pytest.approx(0.75)
    # Only pairs with different parent classes (0, 2, 3): hybrids 0 and 3 took the non-semantic class.
    assert inherits_nonsemantic_class(pred, labels_2, labels_1) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        inherits_nonsemantic_class(pred, labels_1, labels_1)  # every pair has same-class parents


def test_inherits_nonsemantic_class_is_chance_for_a_semantic_classifier():
    g = torch.Generator().manual_seed(1)
    labels_1 = torch.randint(10, (5000,), generator=g)
    labels_2 = torch.randint(10, (5000,), generator=g)
    # A classifier that always follows the semantic parent inherits x_2's class only by chance (~10%, [S] §4.3).
    assert inherits_nonsemantic_class(labels_1, labels_2) == pytest.approx(0.1, abs=0.02)
    assert inherits_nonsemantic_class(labels_1, labels_2, labels_1) == 0.0


# ----------------------------------------------------------------------------------------------- SAMOSA s_r


def test_nonsemantic_separation_identity_encoder(parents):
    """§2.12-11: s_r(x_h = x_2 codes) = 1 and s_r(x_h = x_1 codes) = 0 with E_r = identity."""
    x1, x2 = parents
    z1, z2 = _identity_encoder(x1), _identity_encoder(x2)
    good = nonsemantic_separation(_identity_encoder(x2), z1, z2)
    assert good["s_r"] == 1.0
    assert good["mean_d_r"] == 0.0 and math.isinf(good["ratio"])
    bad = nonsemantic_separation(_identity_encoder(x1), z1, z2)
    assert bad["s_r"] == 0.0
    assert bad["mean_d_l"] == 0.0 and bad["ratio"] == 0.0
    # Maps (SciMix z_r, 8x8x8) and vectors (SAMOSA gates, 64) alike: flattening per sample.
    flat = nonsemantic_separation(x2.flatten(1), x1.flatten(1), x2.flatten(1))
    assert flat == good


def test_nonsemantic_separation_ratio_hand_computed():
    z1 = torch.zeros(3, 2)
    z2 = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z_h = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    # d_l = ||z_h - z_1||^2 = [4, 1, 0]; d_r = ||z_h - z_2||^2 = [1, 1, 2]; d_l >= d_r on hybrids 0 and 1.
    out = nonsemantic_separation(z_h, z1, z2)
    assert out["s_r"] == pytest.approx(2 / 3)  # the tie d_l = d_r = 1 counts as a success ([S] §4.4: d_l >= d_r)
    assert out["mean_d_l"] == pytest.approx(5 / 3)
    assert out["mean_d_r"] == pytest.approx(4 / 3)
    assert out["ratio"] == pytest.approx(5 / 4)  # Table 3's d_c / d_r
    assert math.isnan(nonsemantic_separation(z1, z1, z1)["ratio"])


def test_samosa_separation_combines_s_c_and_distances(parents):
    x1, x2 = parents
    labels = torch.arange(6)
    out = samosa_separation(labels, labels, x2, x1, x2)
    assert out["s_c"] == 1.0 and out["s_r"] == 1.0
    assert set(out) == {"s_c", "s_r", "ratio", "mean_d_l", "mean_d_r"}
    with pytest.raises(ValueError):
        samosa_separation(labels[:5], labels[:5], x2, x1, x2)


def test_background_separation_hand_made():
    # 1 sample, 1 channel, 2x2: the digit sits on the top-left pixel (mask 0), the rest is background (mask 1).
    mask_1 = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    b1 = torch.tensor([[[[5.0, 1.0], [1.0, 1.0]]]])
    b2 = torch.tensor([[[[7.0, 3.0], [3.0, 3.0]]]])
    digit = torch.tensor([[[[9.0, 0.0], [0.0, 0.0]]]])
    takes_b2 = digit + mask_1.unsqueeze(1) * b2  # x_1's digit on x_2's background
    takes_b1 = digit + mask_1.unsqueeze(1) * b1  # a reconstruction of x_1
    good = background_separation(takes_b2, mask_1, b1, b2)
    assert good["s_r"] == 1.0
    assert good["mean_d_l"] == pytest.approx(3 * 4.0) and good["mean_d_r"] == 0.0  # masked: the digit pixel is out
    bad = background_separation(takes_b1, mask_1.unsqueeze(1), b1, b2)  # (N, 1, H, W) mask too
    assert bad["s_r"] == 0.0
    assert bad["mean_d_l"] == 0.0 and bad["mean_d_r"] == pytest.approx(12.0) and bad["ratio"] == 0.0
    # Two samples, one of each, RGB with a (N, C, H, W) mask: half succeed.
    both = background_separation(
        torch.cat([takes_b2, takes_b1]).expand(2, 3, 2, 2),
        mask_1.expand(2, 3, 2, 2),
        b1.expand(2, 3, 2, 2),
        b2.expand(2, 3, 2, 2),
    )
    assert both["s_r"] == 0.5 and both["ratio"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        background_separation(takes_b2, torch.ones(1, 3, 3), b1, b2)


# ----------------------------------------------------------------------------------------------- SciMix s_r


def test_pixel_preservation_rate_extremes_and_mixup(parents):
    """§3.12-11: s_r = 1 when x_h := x_r and 0 when x_h := x_c; MixUp with the dominant label gives 0 (Table 2.5)."""
    x_c, x_r = parents
    assert pixel_preservation_rate(x_r, x_c, x_r) == 1.0
    assert pixel_preservation_rate(x_c, x_c, x_r) == 0.0
    mixup = 0.7 * x_c + 0.3 * x_r  # the semantic parent dominates
    assert pixel_preservation_rate(mixup, x_c, x_r) == 0.0
    assert pixel_preservation_rate(0.3 * x_c + 0.7 * x_r, x_c, x_r) == 1.0
    assert pixel_preservation_rate(x_c, x_c, x_c) == 0.0  # a tie is a failure (strict >)


def test_pixel_preservation_rate_standardises_channelwise():
    x_c = torch.zeros(1, 2, 1, 1)
    x_r = torch.tensor([[[[1.0]], [[3.0]]]])
    x_h = torch.tensor([[[[1.0]], [[0.0]]]])  # x_c's channel 1, x_r's channel 0
    # Raw: ||x_h - x_c||^2 = 1 < ||x_h - x_r||^2 = 9: closer to the semantic parent.
    assert pixel_preservation_rate(x_h, x_c, x_r) == 0.0
    # Standardised with std (1, 10): 1 > 0.09, so the same hybrid is now closer to x_r; the mean cancels out.
    assert pixel_preservation_rate(x_h, x_c, x_r, mean=[0.0, 0.0], std=[1.0, 10.0]) == 1.0
    assert pixel_preservation_rate(x_h, x_c, x_r, mean=torch.tensor([0.3, -2.0]), std=torch.tensor([1.0, 10.0])) == 1.0
    assert pixel_preservation_rate(x_h, x_c, x_r, mean=[0.0, 0.0], std=[10.0, 1.0]) == 0.0  # 0.01 < 9
    with pytest.raises(ValueError):
        pixel_preservation_rate(x_h, x_c, x_r, mean=[0.0], std=[1.0])  # one value per channel
    with pytest.raises(ValueError):
        pixel_preservation_rate(x_h, x_c, x_r, mean=[0.0, 0.0])  # both or neither
    with pytest.raises(ValueError):
        pixel_preservation_rate(x_h, x_c, x_r, mean=[0.0, 0.0], std=[1.0, 0.0])


def test_scimix_transfer(parents):
    x_c, x_r = parents
    labels_c = torch.tensor([0, 1, 2, 0, 1, 2])
    oracle = torch.tensor([0, 1, 1, 0, 1, 0])  # 4 / 6 right
    out = scimix_transfer(oracle, labels_c, x_r, x_c, x_r)
    assert out == {"s_c": pytest.approx(4 / 6), "s_r": 1.0}
    with pytest.raises(ValueError):
        scimix_transfer(oracle[:5], labels_c[:5], x_r, x_c, x_r)


# ----------------------------------------------------------------------------------------------- pairing


def test_hybrid_pairs():
    i1, i2 = hybrid_pairs(4, 50, seed=3)
    assert i1.tolist() == [i for i in range(4) for _ in range(10)]  # |D_H| = 10 |D_l|
    assert i2.shape == (40,) and int(i2.min()) >= 0 and int(i2.max()) < 50
    again = hybrid_pairs(4, 50, seed=3)
    assert torch.equal(i2, again[1])
    j1, j2 = hybrid_pairs(5, 5, 20, same_pool=True, seed=0)
    assert bool((j1 != j2).all())  # never paired with itself
    assert set(j2.tolist()) == set(range(5))
    with pytest.raises(ValueError):
        hybrid_pairs(3, 1, same_pool=True)


# ----------------------------------------------------------------------------------------------- linear probe


def test_linear_probe_separable_features_reach_full_accuracy():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    y_tr, y_te = torch.randint(3, (120,), generator=g), torch.randint(3, (60,), generator=g)
    x_tr = centres[y_tr] + 0.3 * torch.randn(120, 3, generator=g)
    x_te = centres[y_te] + 0.3 * torch.randn(60, 3, generator=g)
    assert linear_probe_accuracy(x_tr, y_tr, x_te, y_te, epochs=100, lr=0.05, seed=0) == 1.0
    # Mini-batches, maps instead of vectors, no standardisation: still separable, and deterministic.
    maps_tr, maps_te = x_tr.reshape(120, 3, 1, 1), x_te.reshape(60, 3, 1, 1)
    kwargs = dict(epochs=20, lr=0.05, batch_size=32, standardize=False, seed=1)
    acc = linear_probe_accuracy(maps_tr, y_tr, maps_te, y_te, **kwargs)
    assert acc == 1.0
    assert linear_probe_accuracy(maps_tr, y_tr, maps_te, y_te, **kwargs) == acc


def test_linear_probe_random_labels_stay_at_chance():
    g = torch.Generator().manual_seed(2)
    x_tr, x_te = torch.randn(400, 16, generator=g), torch.randn(2000, 16, generator=g)
    y_tr, y_te = torch.randint(4, (400,), generator=g), torch.randint(4, (2000,), generator=g)
    state = torch.get_rng_state()
    first = linear_probe_accuracy(x_tr, y_tr, x_te, y_te, epochs=100, lr=0.05, weight_decay=1e-4, seed=7)
    assert first == pytest.approx(0.25, abs=0.05)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert linear_probe_accuracy(x_tr, y_tr, x_te, y_te, epochs=100, lr=0.05, weight_decay=1e-4, seed=7) == first


def test_linear_probe_works_under_inference_mode():
    with torch.inference_mode():
        x = torch.tensor([[-1.0], [-2.0], [1.0], [2.0]])
        y = torch.tensor([0, 0, 1, 1])
    assert linear_probe_accuracy(x, y, x, y, epochs=50, lr=0.1) == 1.0


# ----------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call",
    [
        lambda: semantic_separation(torch.tensor([0, 1, 2]), torch.tensor([0, 1])),
        lambda: semantic_separation(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)),
        lambda: semantic_separation(torch.zeros(2, 3, 4), torch.tensor([0, 1])),
        lambda: semantic_separation(torch.tensor([0, 1]), torch.zeros(2, 3)),
        lambda: inherits_nonsemantic_class(torch.tensor([0, 1]), torch.tensor([0, 1, 1])),
        lambda: nonsemantic_separation(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(3, 4)),
        lambda: nonsemantic_separation(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, 5)),
        lambda: nonsemantic_separation(torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0, 4)),
        lambda: background_separation(torch.zeros(2, 1, 2, 2), torch.ones(3, 2, 2), *[torch.zeros(2, 1, 2, 2)] * 2),
        lambda: background_separation(torch.zeros(2, 1, 2, 2), torch.ones(2, 2, 2), *[torch.zeros(3, 1, 2, 2)] * 2),
        lambda: pixel_preservation_rate(torch.zeros(2, 3, 2, 2), torch.zeros(2, 3, 2, 2), torch.zeros(1, 3, 2, 2)),
        lambda: linear_probe_accuracy(torch.zeros(4, 2), torch.zeros(3), torch.zeros(2, 2), torch.zeros(2)),
        lambda: linear_probe_accuracy(torch.zeros(4, 2), torch.zeros(4), torch.zeros(2, 3), torch.zeros(2)),
        lambda: linear_probe_accuracy(
            torch.zeros(4, 2), torch.tensor([0, 1, 2, 3]), torch.zeros(1, 2), torch.zeros(1), num_classes=3
        ),
        lambda: linear_probe_accuracy(torch.zeros(4, 2), torch.zeros(4), torch.zeros(2, 2), torch.zeros(2), epochs=0),
    ],
)
def test_mismatched_or_invalid_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
