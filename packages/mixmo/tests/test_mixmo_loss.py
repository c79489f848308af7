import math

import pytest
import torch
import torch.nn.functional as F
from mixmo.loss import assign_heads, mixmo_loss


def _case(B=6, M=2, K=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, M, K, generator=g)
    labels = torch.randint(K, (B, M), generator=g)
    return logits, labels, F.one_hot(labels, K).float()


@pytest.mark.parametrize("r", [1.0, 3.0, 10.0, math.inf])
def test_balanced_ratio_gives_the_plain_sum_of_head_losses(r):
    logits, labels, targets = _case()
    kappa = torch.full((6, 2), 0.5)
    expected = F.cross_entropy(logits[:, 0], labels[:, 0]) + F.cross_entropy(logits[:, 1], labels[:, 1])
    assert mixmo_loss(logits, targets, kappa, weight_root=r, head_mode="per_member") == pytest.approx(
        float(expected), rel=1e-5
    )


def test_kappa_one_with_r1_only_trains_head_zero_with_weight_two():
    logits, labels, targets = _case()
    kappa = torch.tensor([[1.0, 0.0]]).repeat(6, 1)
    expected = 2 * F.cross_entropy(logits[:, 0], labels[:, 0])
    assert mixmo_loss(logits, targets, kappa, weight_root=1.0, head_mode="per_member") == pytest.approx(
        float(expected), rel=1e-5
    )


def test_reweighting_golden_value_r3():
    # one sample, kappa 0.2: w_3(0.2) = 0.77298, w_3(0.8) = 1.22702 (spec §10 invariant 4)
    logits, labels, targets = _case(B=1)
    kappa = torch.tensor([[0.2, 0.8]])
    ce = [float(F.cross_entropy(logits[:, i], labels[:, i])) for i in range(2)]
    expected = 0.77298 * ce[0] + 1.22702 * ce[1]
    assert float(mixmo_loss(logits, targets, kappa, weight_root=3.0, head_mode="per_member")) == pytest.approx(
        expected, rel=1e-4
    )


def test_predominant_first_assigns_head_zero_to_the_larger_ratio():
    _, _, targets = _case(B=4)
    kappa = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5], [0.1, 0.9]])
    t, k = assign_heads(targets, kappa, "predominant_first")
    assert torch.all(k[:, 0] >= k[:, 1])
    assert torch.equal(t[1, 0], targets[1, 1]) and torch.equal(t[0, 0], targets[0, 0])


def test_random_assign_keeps_pairs_together_and_swaps_about_half():
    torch.manual_seed(0)
    _, labels, targets = _case(B=2000, K=3)
    kappa = torch.rand(2000, 1)
    kappa = torch.cat([kappa, 1 - kappa], 1)
    t, k = assign_heads(targets, kappa, "random_assign")
    swapped = ~torch.isclose(k[:, 0], kappa[:, 0]) | (kappa[:, 0] == kappa[:, 1])
    assert 0.45 < swapped.float().mean() < 0.55
    # each head's target travels with its ratio
    assert torch.equal(t[swapped, 0], targets[swapped, 1])


def test_single_classifier_trains_on_the_interpolated_label():
    logits, labels, targets = _case()
    kappa = torch.tensor([[0.3, 0.7]]).repeat(6, 1)
    soft = 0.3 * targets[:, 0] + 0.7 * targets[:, 1]
    expected = -(soft * logits[:, 0].log_softmax(-1)).sum(-1).mean()
    got = mixmo_loss(logits[:, :1], targets, kappa, weight_root=3.0, head_mode="single_soft")
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
