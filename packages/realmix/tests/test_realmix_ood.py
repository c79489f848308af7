"""RealMix OOD mask: per-batch bottom-gamma confidence masking (paper and official rules) and the masked MSE."""

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from realmix.ood import masked_count, ood_mask, ood_masked_mse

GAMMAS = (0.2, 0.3, 0.4, 0.6, 0.85)


def _logits(n: int = 128, k: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("rule,counts", [("paper", (25, 38, 51, 76, 108)), ("official", (26, 39, 52, 77, 109))])
def test_realmix_ood_masked_counts_at_128(rule, counts):
    logits = _logits()
    confidence = torch.softmax(logits, -1).amax(-1)
    assert confidence.unique().numel() == 128  # distinct confidences
    for gamma, expected in zip(GAMMAS, counts):
        mask = ood_mask(logits, gamma, rule)
        assert mask.dtype == torch.float32 and mask.shape == (128,)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert int((mask == 0).sum()) == expected, (rule, gamma)


@pytest.mark.parametrize("rule", ["paper", "official"])
def test_realmix_ood_masks_the_lowest_confidence_rows(rule):
    logits = _logits(seed=1)
    confidence = torch.softmax(logits, -1).amax(-1)
    for gamma in GAMMAS:
        mask = ood_mask(logits, gamma, rule)
        dropped = (mask == 0).nonzero().flatten()
        expected = torch.argsort(confidence)[: dropped.numel()]
        assert set(dropped.tolist()) == set(expected.tolist())
        assert confidence[mask == 1].min() > confidence[mask == 0].max()


def test_realmix_ood_paper_rule_ties_by_index_and_official_ties():
    logits = torch.zeros(10, 4)  # every confidence 0.25
    assert ood_mask(logits, 0.3, "paper").tolist() == [0.0] * 3 + [1.0] * 7
    assert ood_mask(logits, 0.3, "official").tolist() == [0.0] * 10  # strict '>' drops all tied rows


def test_realmix_ood_gamma_zero_keeps_everything_and_is_plain_mse():
    logits = _logits(seed=2)
    targets = torch.softmax(_logits(seed=3), -1)
    for rule in ("paper", "official"):
        assert ood_mask(logits, 0.0, rule).tolist() == [1.0] * 128
        loss, mask = ood_masked_mse(logits, targets, 0.0, rule)
        assert torch.allclose(loss, F.mse_loss(torch.softmax(logits, -1), targets), atol=1e-7)


def test_realmix_ood_masked_mse_equals_mse_over_kept_rows():
    logits = _logits(seed=4).requires_grad_(True)
    targets = torch.softmax(_logits(seed=5), -1)
    loss, mask = ood_masked_mse(logits, targets, 0.6)
    kept = mask.bool()
    assert int(kept.sum()) == 128 - 76
    expected = F.mse_loss(torch.softmax(logits[kept], -1), targets[kept])  # / (kept · C)
    assert torch.allclose(loss, expected, atol=1e-7)
    assert not mask.requires_grad
    loss.backward()
    assert (logits.grad[~kept] == 0).all() and (logits.grad[kept] != 0).any()


def test_realmix_ood_mask_carries_no_gradient():
    logits = _logits(seed=6).requires_grad_(True)
    mask = ood_mask(logits, 0.4)
    assert not mask.requires_grad and mask.grad_fn is None


@pytest.mark.parametrize("gamma", [1.0, 1.2, -0.1, float("nan")])
def test_realmix_ood_rejects_gamma_outside_unit_interval(gamma):
    with pytest.raises(ConfigError):
        ood_mask(_logits(), gamma)


def test_realmix_ood_rejects_bad_rule_and_shape_and_counts_robustly():
    with pytest.raises(ConfigError):
        ood_mask(_logits(), 0.2, "percentile")
    with pytest.raises(ConfigError):
        ood_mask(torch.randn(8), 0.2)
    with pytest.raises(ConfigError):
        ood_masked_mse(_logits(), torch.zeros(128, 3), 0.2)
    assert masked_count(100, 0.29) == 29  # 0.29·100 = 28.999999999999996 in floating point
    assert masked_count(128, 0.85) == 108
    assert int((ood_mask(_logits(100), 0.29) == 0).sum()) == 29
