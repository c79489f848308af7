"""The invariants of spec guidedmix §8 on lambda, mixing, pairing, decoupling and the losses (items 1-11, 13)."""

from __future__ import annotations

import math

import pytest
import torch
from guidedmix.pairs import lupi_mix, pair_features, pair_labeled, pair_unlabeled, random_pairs, sample_lambda
from guidedmix.pseudo import classifier_loss, decouple, focal_consistency, mse, multihot, usup_weight
from mixlab.errors import ConfigError


def test_lambda_range_reproducibility_and_mean():
    draws = sample_lambda(1.0, 0.3, torch.Generator().manual_seed(3), size=10_000)
    assert bool(((draws > 0) & (draws < 0.3)).all())
    again = sample_lambda(1.0, 0.3, torch.Generator().manual_seed(3), size=10_000)
    assert torch.equal(draws, again)
    assert abs(float(draws.mean()) - 0.15) < 0.01  # alpha = 1: Uniform(0, lambda_max)
    single = sample_lambda(0.5, 0.5, torch.Generator().manual_seed(0))
    assert single.dim() == 0 and 0 < float(single) <= 0.5
    folded = sample_lambda(2.0, 0.5, torch.Generator().manual_seed(1), size=5_000)
    assert float(folded.max()) <= 0.5  # min(lambda, 1 - lambda): the unlabeled image always dominates
    with pytest.raises(ConfigError):
        sample_lambda(1.0, 0.7)


def test_lupi_mix_is_the_linear_interpolation():
    a, b = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    assert torch.equal(lupi_mix(a, b, 0.0), b) and torch.equal(lupi_mix(a, b, 1.0), a)
    lam = 0.3
    assert torch.allclose(lupi_mix(a, b, lam) - b, lam * (a - b), atol=1e-6)
    per_row = lupi_mix(a, b, torch.tensor([0.0, 1.0]))
    assert torch.equal(per_row[0], b[0]) and torch.equal(per_row[1], a[1])
    # Normalisation is affine: mixing before it equals mixing after it.
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1), torch.tensor([0.2, 0.3, 0.25]).view(1, 3, 1, 1)
    norm = lambda x: (x - mean) / std  # noqa: E731
    assert torch.allclose(norm(lupi_mix(a, b, lam)), lupi_mix(norm(a), norm(b), lam), atol=1e-5)


def test_similar_pairing_picks_the_nearest():
    e_l = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    e_u = torch.tensor([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0]])
    assert pair_unlabeled(e_l, e_u).tolist() == [1, 0, 0]
    assert pair_labeled(torch.tensor([[0.0], [1.0], [5.0]])).tolist() == [1, 0, 1]
    maps = torch.randn(4, 8, 3, 3)
    flat = pair_features(maps, "map")
    assert torch.allclose(torch.cdist(flat, flat), torch.cdist(maps.flatten(1), maps.flatten(1)))
    assert pair_features(maps, "pooled").shape == (4, 8)


def test_one_to_one_assignment_uses_each_labeled_image_once_per_round():
    e_l = torch.tensor([[0.0], [10.0]])
    e_u = torch.tensor([[1.0], [2.0]])  # argmin would give [0, 0]
    assert pair_unlabeled(e_l, e_u, "argmin").tolist() == [0, 0]
    assert sorted(pair_unlabeled(e_l, e_u, "one_to_one").tolist()) == [0, 1]


def test_random_pairs_in_range_and_a_derangement():
    for seed in range(20):
        pi, sigma = random_pairs(5, 7, torch.Generator().manual_seed(seed))
        assert pi.shape == (7,) and bool(((pi >= 0) & (pi < 5)).all())
        assert sorted(sigma.tolist()) == list(range(5))  # a permutation
        assert all(s != i for i, s in enumerate(sigma.tolist()))


def test_decoupling_values():
    m_mix, m_l = torch.tensor([0.3, 0.7]), torch.tensor([0.8, 0.2])
    hard = decouple(m_mix, m_l, 0.25, "hard")
    assert torch.allclose(hard, torch.tensor([-0.5, 0.5])) and abs(float(hard.sum())) < 1e-6
    soft = decouple(m_mix, m_l, 0.25, "soft")
    assert torch.allclose(soft, torch.tensor([0.1, 0.65])) and math.isclose(float(soft.sum()), 0.75, abs_tol=1e-6)
    assert torch.allclose(decouple(m_mix, m_l, 1.0, "soft"), hard)
    probs_mix, probs_l = torch.randn(2, 5, 4, 4).softmax(1), torch.randn(2, 5, 4, 4).softmax(1)
    lam = 0.2
    assert torch.allclose(decouple(probs_mix, probs_l, lam).sum(1), torch.full((2, 4, 4), 1 - lam), atol=1e-6)
    assert torch.allclose(decouple(probs_mix, probs_l, lam, "hard").sum(1), torch.zeros(2, 4, 4), atol=1e-6)


def test_exact_linear_mixture_decouples_to_the_unlabeled_prediction():
    m_l, m_u, lam = torch.randn(2, 5, 3, 3).softmax(1), torch.randn(2, 5, 3, 3).softmax(1), 0.3
    m_mix = lam * m_l + (1 - lam) * m_u
    assert torch.allclose(decouple(m_mix, m_l, lam), (1 - lam) * m_u, atol=1e-6)
    assert torch.allclose(decouple(m_mix, m_l, lam, normalize=True), m_u, atol=1e-6)
    per_row = torch.tensor([0.1, 0.4])
    mixed_rows = per_row.view(2, 1, 1, 1) * m_l + (1 - per_row.view(2, 1, 1, 1)) * m_u
    assert torch.allclose(decouple(mixed_rows, m_l, per_row, normalize=True), m_u, atol=1e-6)


def test_usup_mse_value_and_reductions():
    m_u = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)
    target = torch.tensor([0.1, 0.65]).view(1, 2, 1, 1)
    assert math.isclose(float(mse(m_u, target, "paper")), 0.1825, rel_tol=1e-5)
    assert math.isclose(float(mse(m_u, target, "mean")), 0.09125, rel_tol=1e-5)
    assert float(mse(target, target)) == 0.0
    # The padding option averages over the valid pixels only.
    pred, tgt = torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1, 2)
    tgt[..., 1] = 1.0
    valid = torch.tensor([[[True, False]]])
    assert float(mse(pred, tgt, "mean", valid)) == 0.0 and float(mse(pred, tgt, "mean")) == 0.5


def test_gradient_routing_of_the_direct_usup_and_dec_terms():
    z_u = torch.randn(2, 3, 4, 4, requires_grad=True)
    z_mix = torch.randn(2, 3, 4, 4, requires_grad=True)
    z_l = torch.randn(2, 3, 4, 4, requires_grad=True)
    pi = torch.tensor([1, 0])
    target = decouple(z_mix.softmax(1), z_l.softmax(1).detach()[pi], 0.3).detach()
    mse(z_u.softmax(1), target).backward()
    assert z_u.grad is not None and z_u.grad.abs().sum() > 0
    assert z_mix.grad is None and z_l.grad is None
    z_mixl = torch.randn(2, 3, 4, 4, requires_grad=True)
    z_l2 = torch.randn(2, 3, 4, 4, requires_grad=True)
    m_l = z_l2.softmax(1).detach()
    mse(decouple(z_mixl.softmax(1), m_l, 0.3), m_l[torch.tensor([1, 0])]).backward()
    assert z_mixl.grad is not None and z_mixl.grad.abs().sum() > 0 and z_l2.grad is None


def test_multihot_and_classifier_loss():
    masks = torch.tensor([[[0, 255], [3, 3]]], dtype=torch.long)
    assert multihot(masks, 5).tolist() == [[1.0, 0.0, 0.0, 1.0, 0.0]]
    logits = torch.tensor([[10.0, -10.0, -10.0, 10.0, -10.0]])
    assert float(classifier_loss(logits, masks)) < 1e-3
    assert float(classifier_loss(-logits, masks)) > 5.0


def test_usup_weight_ramp():
    w, t0, tr = 30.0, 100, 200
    assert usup_weight(t0 - 1, w_max=w, start=t0, rampup=tr) == 0.0
    assert math.isclose(usup_weight(t0, w_max=w, start=t0, rampup=tr), w * math.exp(-5), rel_tol=1e-9)
    assert math.isclose(usup_weight(t0 + tr // 2, w_max=w, start=t0, rampup=tr), w * math.exp(-1.25), rel_tol=1e-9)
    assert usup_weight(t0 + tr, w_max=w, start=t0, rampup=tr) == w
    values = [usup_weight(t, w_max=w, start=t0, rampup=tr) for t in range(0, 500, 7)]
    assert values == sorted(values)


def test_focal_consistency_is_smaller_at_agreement_and_pulls_towards_the_target():
    target = torch.tensor([[4.0, -4.0]])
    near = focal_consistency(target.clone(), target)
    far = focal_consistency(-target, target)
    assert float(far) > float(near) >= 0.0
    x = torch.zeros(1, 2, requires_grad=True)
    focal_consistency(x, target).backward()
    assert x.grad[0, 0] < 0 < x.grad[0, 1]  # descending the gradient moves x towards the target's signs


def test_focal_consistency_gradient_is_finite_where_prediction_meets_target():
    """gamma < 1: |t - p|^gamma has an infinite slope at p == t; equal or saturated logits must not give NaN."""
    z = torch.tensor([30.0, 0.3, -2.0, 40.0], requires_grad=True)
    target = torch.tensor([25.0, 0.3, 1.0, 40.0])  # saturated pair, equal pair, a real gap, equal and saturated
    loss = focal_consistency(z, target, gamma=0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    assert z.grad[1] == 0 and z.grad[2] < 0  # agreement exerts no pull; a gap pulls towards the target
