"""Spec §10 invariants 1-4 (w_r), 12 (kappa sampling), 19-20 (loss, soft CE)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.mixing import (
    reweight,
    sample_lambda,
    sample_ratios,
    soft_cross_entropy,
    soft_targets,
    weighted_head_loss,
)


def _pair(k: torch.Tensor) -> torch.Tensor:
    return torch.stack([k, 1 - k], dim=1)


@pytest.mark.parametrize("r", [1.0, 2.0, 3.0, 10.0])
def test_weights_of_a_pair_sum_to_two_and_are_antisymmetric(r):
    k = torch.linspace(0, 1, 101, dtype=torch.float64)
    w = reweight(_pair(k), r)
    assert torch.allclose(w.sum(1), torch.full_like(k, 2.0), atol=1e-6)
    swapped = reweight(_pair(1 - k), r)[:, 0]
    assert torch.allclose(swapped, 2 - w[:, 0], atol=1e-6)  # w_r(1 - kappa) = 2 - w_r(kappa)
    assert bool((w >= 0).all()) and bool((w <= 2).all())


def test_weight_special_values():
    half = torch.tensor([[0.5, 0.5]])
    for r in (1.0, 2.0, 3.0, 7.5, 1e3, math.inf):
        assert torch.allclose(reweight(half, r), torch.ones(1, 2), atol=1e-7)
    k = torch.rand(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(reweight(_pair(k), 1.0)[:, 0], 2 * k, atol=1e-12)  # w_1 = 2 kappa (MSDA weights)
    assert abs(reweight(torch.tensor([[0.3, 0.7]]), 1e6)[0, 0].item() - 1) < 1e-5
    exact = reweight(torch.tensor([[0.0, 1.0], [0.9, 0.1]]), math.inf)
    assert torch.equal(exact, torch.ones(2, 2))


def test_weight_golden_values():
    w = reweight(torch.tensor([[0.2, 0.8]], dtype=torch.float64), 3.0)[0]
    assert w[0].item() == pytest.approx(0.77298, abs=1e-5)
    assert w[1].item() == pytest.approx(1.22702, abs=1e-5)
    # Eq. A.2 written out for M=3.
    k = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64)
    roots = k ** (1 / 2)
    assert torch.allclose(reweight(k, 2.0), 3 * roots / roots.sum(), atol=1e-12)


def test_general_M_weights_sum_to_M_permute_with_kappa_and_grow_with_kappa():
    g = torch.Generator().manual_seed(1)
    for M in (2, 3, 5):
        kappa = sample_ratios(200, M, 2.0, generator=g)
        w = reweight(kappa, 3.0)
        assert torch.allclose(w.sum(1), torch.full((200,), float(M)), atol=1e-5)
        perm = torch.randperm(M, generator=g)
        assert torch.allclose(reweight(kappa[:, perm], 3.0), w[:, perm], atol=1e-6)
    # Monotone: moving mass from the others to input 0 raises its weight.
    base = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    grown = torch.stack(
        [
            torch.cat([base[:1] + d, base[1:] * (1 - (base[0] + d)) / base[1:].sum()])
            for d in torch.linspace(0, 0.7, 15, dtype=torch.float64)
        ]
    )
    w0 = reweight(grown, 3.0)[:, 0]
    assert bool((w0[1:] > w0[:-1]).all())


def test_reweight_clamps_negative_kappa_and_rejects_bad_roots():
    w = reweight(torch.tensor([[-1e-9, 1.0 + 1e-9]]), 3.0)
    assert w[0, 0].item() == 0.0 and w[0, 1].item() == pytest.approx(2.0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError):
            reweight(torch.tensor([[0.5, 0.5]]), bad)


def test_beta_2_2_moments_and_fixed_ratios():
    kappa = sample_ratios(100_000, 2, 2.0, generator=torch.Generator().manual_seed(0))
    k0 = kappa[:, 0].double()
    assert abs(k0.mean().item() - 0.5) < 0.005
    assert abs(k0.var().item() - 0.05) < 0.002  # Beta(2,2): 1/20
    assert torch.equal(kappa[:, 1], 1 - kappa[:, 0])  # exact complement for M=2
    for M in (2, 3, 4):
        fixed = sample_ratios(7, M, 0.0)
        assert torch.equal(fixed, torch.full((7, M), 1.0 / M))
        assert torch.equal(sample_ratios(3, M, -1.0), torch.full((3, M), 1.0 / M))
    assert torch.equal(sample_ratios(4, 1, 2.0), torch.ones(4, 1))


def test_dirichlet_rows_are_on_the_simplex_with_the_right_mean():
    g = torch.Generator().manual_seed(2)
    kappa = sample_ratios(20_000, 4, 2.0, generator=g)
    assert bool((kappa > 0).all())
    assert torch.allclose(kappa.sum(1), torch.ones(20_000), atol=1e-6)
    assert torch.allclose(kappa.mean(0), torch.full((4,), 0.25), atol=0.01)
    # Dir_4(2): Var(kappa_i) = (1/4)(3/4)/(8+1)
    assert kappa[:, 0].var().item() == pytest.approx(0.75 / 4 / 9, rel=0.05)


def test_sampling_is_reproducible_with_a_generator():
    a = sample_ratios(16, 3, 2.0, generator=torch.Generator().manual_seed(5))
    b = sample_ratios(16, 3, 2.0, generator=torch.Generator().manual_seed(5))
    c = sample_ratios(16, 3, 2.0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    lam = sample_lambda(50_000, 1.0, generator=torch.Generator().manual_seed(0))
    assert abs(lam.mean().item() - 0.5) < 0.01 and abs(lam.var().item() - 1 / 12) < 0.003  # U(0, 1)
    with pytest.raises(ConfigError):
        sample_lambda(4, 0.0)


def test_loss_weights_at_half_are_one_and_loss_is_the_plain_sum():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 2, 5, generator=g)
    y = torch.randint(5, (6, 2), generator=g)
    targets = F.one_hot(y, 5).float()
    kappa = torch.full((6, 2), 0.5)
    plain = F.cross_entropy(logits[:, 0], y[:, 0]) + F.cross_entropy(logits[:, 1], y[:, 1])
    for r in (1.0, 2.0, 3.0, 10.0, math.inf):
        w = reweight(kappa, r)
        assert torch.allclose(w, torch.ones(6, 2), atol=1e-7)
        assert torch.allclose(weighted_head_loss(logits, targets, w), plain, atol=1e-6)
    # kappa = 1, r = 1: only head 0 contributes, with weight 2.
    w = reweight(torch.tensor([[1.0, 0.0]]).expand(6, 2), 1.0)
    assert torch.allclose(weighted_head_loss(logits, targets, w), 2 * F.cross_entropy(logits[:, 0], y[:, 0]))


def test_soft_cross_entropy_matches_cross_entropy_and_scales_with_the_target():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(8, 7, generator=g) * 3
    y = torch.randint(7, (8,), generator=g)
    t = soft_targets(y, 7)
    assert torch.equal(t.argmax(1), y) and torch.equal(t.sum(1), torch.ones(8))
    assert torch.allclose(soft_cross_entropy(logits, t), F.cross_entropy(logits, y), atol=1e-6)
    assert torch.allclose(soft_cross_entropy(logits, t, "none"), F.cross_entropy(logits, y, reduction="none"))
    assert torch.allclose(soft_cross_entropy(logits, t, "sum"), F.cross_entropy(logits, y, reduction="sum"))
    assert torch.allclose(soft_cross_entropy(logits, 0.7 * t), 0.7 * F.cross_entropy(logits, y), atol=1e-6)
    # A genuinely soft target: -sum_k t_k log p_k.
    soft = torch.softmax(torch.randn(8, 7, generator=g), 1)
    manual = -(soft * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(soft_cross_entropy(logits, soft), manual, atol=1e-6)
    with pytest.raises(ConfigError):
        soft_targets(torch.tensor([0, 7]), 7)
    with pytest.raises(ConfigError):
        soft_cross_entropy(logits, t, reduction="avg")
