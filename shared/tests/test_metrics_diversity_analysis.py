"""d_re, share rate and active filters (spec §10 invariants 28, 29, 35)."""

from __future__ import annotations

import pytest
import torch
from mixlab.errors import MixlabError
from mixlab.metrics import (
    active_filter_fraction,
    encoder_influence,
    head_influence,
    mean_pairwise_diversity,
    ratio_error_diversity,
    share_rate,
)


def test_ratio_error_diversity_golden():
    targets = torch.zeros(10, dtype=torch.long)
    a = torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])  # wrong on samples 0 and 1
    b = torch.tensor([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])  # wrong on samples 0 and 2
    # N00 = 0.1 (sample 0), N10 + N01 = 0.2 (samples 1 and 2): d_re = 2.
    assert ratio_error_diversity(a, b, targets) == 2.0
    logits_a = torch.nn.functional.one_hot(a, 3).float()
    assert ratio_error_diversity(logits_a, b, targets) == 2.0  # logits are reduced by argmax
    assert ratio_error_diversity(a, a, targets) == 0.0  # identical heads
    c = torch.tensor([0, 0, 0, 1, 0, 0, 0, 0, 0, 0])  # never wrong together with a
    assert ratio_error_diversity(a, c, targets) == pytest.approx(2 * 0.3)  # N00 = 0: 2 (N10 + N01)


def test_mean_pairwise_diversity_averages_all_pairs():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(4, (200,), generator=g)
    heads = torch.randn(200, 3, 4, generator=g)
    pairs = [ratio_error_diversity(heads[:, i], heads[:, j], targets) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert mean_pairwise_diversity(heads, targets) == pytest.approx(sum(pairs) / 3)
    with pytest.raises(ValueError):
        mean_pairwise_diversity(heads[:, :1], targets)


def test_share_rate_extremes_and_variants():
    h = torch.tensor([3.0, 1.0, 0.5, 2.0])
    assert share_rate(h, h.clone()) == 1.0
    assert share_rate(torch.tensor([1.0, 2.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 4.0, 1.0])) == 0.0
    assert share_rate(h, 3 * h) == pytest.approx(1.0)  # normalised: scale does not matter
    assert share_rate(h, 3 * h, variant="unnormalized") == pytest.approx(1 / 3)
    a, b = torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1.0, 3.0, 0.0])
    assert share_rate(a, b, variant="mean_ratio") == pytest.approx((1 + 1 / 3) / 2)  # zero channel skipped
    # Normalised weighted Jaccard by hand: a -> (.5, .5, 0), b -> (.25, .75, 0).
    assert share_rate(a, b) == pytest.approx((0.25 + 0.5) / (0.5 + 0.75))
    with pytest.raises(MixlabError):
        share_rate(torch.zeros(3), a)
    with pytest.raises(ValueError):
        share_rate(a, b, variant="cosine")


def test_share_rate_of_identical_and_disjoint_heads():
    g = torch.Generator().manual_seed(1)
    head = torch.randn(10, 8, generator=g)
    assert share_rate(head_influence(head), head_influence(head.clone())) == 1.0
    left, right = head.clone(), head.clone()
    left[:, 4:] = 0
    right[:, :4] = 0
    assert share_rate(head_influence(left), head_influence(right)) == 0.0
    conv = torch.randn(16, 3, 3, 3, generator=g)
    assert torch.allclose(encoder_influence(conv), conv.abs().sum(dim=(1, 2, 3)))


def _layer(norms: list[float]) -> torch.Tensor:
    """A conv weight (len(norms), 2, 3, 3) whose filters have the given L1 norms (and mixed signs)."""
    w = torch.ones(len(norms), 2, 3, 3) / 18
    w[:, 1] *= -1
    return w * torch.tensor(norms)[:, None, None, None]


def test_active_filter_fraction_golden_and_pooled():
    assert active_filter_fraction([_layer([1.0, 0.5, 0.3])], t_a=0.4) == pytest.approx(2 / 3)
    assert active_filter_fraction([_layer([1.0, 0.5, 0.3])], t_a=0.2) == 1.0
    # Pooled over layers: (2 + 2) / 5, not the mean of 2/3 and 1.
    assert active_filter_fraction([_layer([1.0, 0.5, 0.3]), _layer([4.0, 4.0])], t_a=0.4) == pytest.approx(0.8)
    # The threshold is relative to each layer's own largest filter.
    assert active_filter_fraction([_layer([100.0, 1.0]), _layer([1.0, 0.9])], t_a=0.4) == pytest.approx(0.75)
    assert active_filter_fraction([torch.zeros(4, 2, 3, 3)]) == 0.0
