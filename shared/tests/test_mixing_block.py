"""Spec §10 invariants 7-11 and 13: the mixing block, role swap, soft cut, mix identities, p_e schedule."""

from __future__ import annotations

import pytest
import torch
from mixlab.errors import ConfigError
from mixlab.mixing import BINARY_KINDS, binary_prob_schedule, mix, sample_mixing, sample_ratios
from torch import nn


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _is_rectangle(mask: torch.Tensor) -> bool:
    rows, cols = mask.amax(1) > 0, mask.amax(0) > 0
    run = [f.nonzero().flatten() for f in (rows, cols)]
    contiguous = all(r.numel() == 0 or int(r[-1] - r[0] + 1) == r.numel() for r in run)
    return contiguous and torch.equal(mask > 0, rows[:, None] & cols[None, :])


@pytest.mark.parametrize("M", [2, 3])
@pytest.mark.parametrize("block", BINARY_KINDS + ("linear",))
def test_masks_are_a_partition_of_unity_and_kappa_is_their_mean(block, M):
    for prob, level in ((1.0, "batch"), (0.0, "batch"), (0.5, "sample")):
        plan = sample_mixing(
            32, M, 8, 8, alpha=2.0, binary_prob=prob, block=block, binary_choice_level=level, generator=_gen(1)
        )
        assert plan.masks.shape[:3] == (32, M, 1) and plan.kappa.shape == (32, M)
        assert torch.allclose(plan.masks.sum(1), torch.ones(1), atol=1e-6)
        assert bool((plan.masks >= 0).all())
        means = plan.masks.expand(32, M, 1, 8, 8).mean(dim=(2, 3, 4))
        assert torch.allclose(means, plan.kappa, atol=1e-6)
        assert torch.allclose(plan.kappa.sum(1), torch.ones(32), atol=1e-6)
        if M == 2 and (block == "linear" or prob == 0.0):
            assert torch.equal(plan.masks.sum(1), torch.ones(32, 1, 1, 1))


def test_m2_cut_masks_are_complementary_rectangles_and_role_swap_flips_them():
    swaps = 0
    for seed in range(40):
        g = _gen(seed)
        original = sample_ratios(16, 2, 2.0, generator=_gen(seed))
        plan = sample_mixing(16, 2, 32, 32, alpha=2.0, binary_prob=1.0, generator=g)
        assert plan.binary and bool(plan.binary_samples.all())
        m0, m1 = plan.masks[:, 0, 0], plan.masks[:, 1, 0]
        assert torch.equal(m0 + m1, torch.ones_like(m0))
        assert torch.equal(plan.kappa[:, 0], m0.mean(dim=(1, 2)))  # mean(mask) == kappa exactly
        owner = plan.box_owner
        assert bool((owner == owner[0]).all())  # the swap is drawn once per batch by default
        box = m1 if owner[0] == 1 else m0
        assert all(_is_rectangle(b) for b in box)
        area = box.mean(dim=(1, 2))
        assert bool((area <= original[:, 0] + 1e-6).all())  # the box was drawn for kappa_0
        if owner[0] == 1:
            swaps += 1
            assert torch.allclose(plan.kappa[:, 0], 1 - area)  # kappa <- 1 - kappa
    assert 10 <= swaps <= 30


def test_role_swap_rate_is_one_half_per_batch_and_per_sample():
    batch_level = [
        int(sample_mixing(4, 2, 8, 8, alpha=2.0, binary_prob=1.0, generator=_gen(s)).box_owner[0]) for s in range(400)
    ]
    assert abs(sum(batch_level) / 400 - 0.5) < 0.1
    plan = sample_mixing(2000, 2, 8, 8, alpha=2.0, binary_prob=1.0, role_swap_level="sample", generator=_gen(0))
    assert abs(plan.box_owner.float().mean().item() - 0.5) < 0.05


def test_binary_choice_per_batch_and_per_sample():
    binary = [sample_mixing(8, 2, 8, 8, alpha=2.0, binary_prob=0.3, generator=_gen(s)).binary for s in range(300)]
    assert abs(sum(binary) / 300 - 0.3) < 0.08
    plan = sample_mixing(1000, 2, 8, 8, alpha=2.0, binary_prob=0.3, binary_choice_level="sample", generator=_gen(1))
    chosen = plan.binary_samples
    assert abs(chosen.float().mean().item() - 0.3) < 0.05 and not plan.binary
    linear = plan.masks[~chosen]
    assert torch.equal(linear, plan.kappa[~chosen][:, :, None, None, None].expand_as(linear))
    assert bool(((plan.masks[chosen] == 0) | (plan.masks[chosen] == 1)).all())
    assert bool((plan.box_owner[~chosen] == -1).all())
    never = sample_mixing(8, 2, 8, 8, alpha=2.0, binary_prob=0.0, generator=_gen(2))
    assert not never.binary and never.masks.shape == (8, 2, 1, 1, 1)
    linear_block = sample_mixing(8, 2, 8, 8, alpha=2.0, binary_prob=1.0, block="linear", generator=_gen(2))
    assert not linear_block.binary and torch.equal(linear_block.masks[:, :, 0, 0, 0], linear_block.kappa)


@pytest.mark.parametrize("level", ["batch", "sample"])
def test_soft_cut_for_three_inputs_follows_eq_a4(level):
    B, M = 64, 3
    original = sample_ratios(B, M, 2.0, generator=_gen(7))
    plan = sample_mixing(B, M, 16, 16, alpha=2.0, binary_prob=1.0, role_swap_level=level, generator=_gen(7))
    owners = plan.box_owner
    if level == "batch":
        assert bool((owners == owners[0]).all())
    else:
        assert len(set(owners.tolist())) == M
    rows = torch.arange(B)
    box = plan.masks[rows, owners, 0]
    assert all(_is_rectangle(b) for b in box)
    k_orig = original[rows, owners]
    assert bool((box.mean(dim=(1, 2)) <= k_orig + 1e-6).all())
    for i in range(M):
        other = owners != i
        expected = (1 - box[other]) * (original[other, i] / (1 - k_orig[other]))[:, None, None]
        assert torch.allclose(plan.masks[other, i, 0], expected, atol=1e-5)
        realised = (1 - box[other].mean(dim=(1, 2))) * original[other, i] / (1 - k_orig[other])
        assert torch.allclose(plan.kappa[other, i], realised, atol=1e-5)
    assert torch.allclose(plan.kappa[rows, owners], box.mean(dim=(1, 2)))


def test_owner_is_uniform_over_inputs_for_m4():
    plan = sample_mixing(4000, 4, 8, 8, alpha=2.0, binary_prob=1.0, role_swap_level="sample", generator=_gen(3))
    counts = torch.bincount(plan.box_owner, minlength=4).float() / 4000
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.03)


def test_mix_identities():
    g = _gen(4)
    enc = torch.randn(6, 2, 3, 8, 8, generator=g)
    same = enc[:, :1].expand(6, 2, 3, 8, 8)
    cut = sample_mixing(6, 2, 8, 8, alpha=2.0, binary_prob=1.0, generator=g)
    assert torch.equal(mix(same, cut.masks), 2 * same[:, 0])  # any binary mask
    half = sample_mixing(6, 2, 8, 8, alpha=0.0, binary_prob=0.0)
    assert torch.equal(half.masks, torch.full((6, 2, 1, 1, 1), 0.5))
    assert torch.equal(mix(same, half.masks), 2 * same[:, 0])
    assert torch.allclose(mix(enc, half.masks), enc[:, 0] + enc[:, 1])  # MIMO: the plain sum
    assert torch.equal(mix(enc, None), enc.sum(1))  # test-time block
    out = mix(enc, cut.masks)
    m = cut.masks[:, 0].expand(6, 3, 8, 8).bool()
    assert torch.equal(out[m], 2 * enc[:, 0][m]) and torch.equal(out[~m], 2 * enc[:, 1][~m])
    assert torch.allclose(mix(enc, cut.masks, scale_by_M=False), out / 2)
    single = torch.randn(5, 1, 3, 4, 4, generator=g)
    assert torch.equal(mix(single, torch.ones(5, 1, 1, 1, 1)), single[:, 0])
    three = torch.randn(4, 3, 2, 8, 8, generator=g)
    soft = sample_mixing(4, 3, 8, 8, alpha=2.0, binary_prob=1.0, generator=g)
    expected = 3 * sum(soft.masks[:, i] * three[:, i] for i in range(3))
    assert torch.allclose(mix(three, soft.masks), expected, atol=1e-6)
    with pytest.raises(ConfigError):
        mix(enc, torch.ones(6, 2, 1, 4, 4))


def test_mimo_sum_equals_one_six_channel_convolution():
    g = _gen(5)
    c0, c1 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Conv2d(3, 4, 3, padding=1, bias=False)
    x0, x1 = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    joint = nn.Conv2d(6, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        joint.weight.copy_(torch.cat([c0.weight, c1.weight], dim=1))
        summed = mix(torch.stack([c0(x0), c1(x1)], dim=1), None)
        assert torch.allclose(summed, joint(torch.cat([x0, x1], dim=1)), atol=1e-5)


def test_binary_prob_schedule_golden_values_and_monotonicity():
    assert binary_prob_schedule(0.5, 1, 300) == 0.5
    assert binary_prob_schedule(0.5, 275, 300) == 0.5
    assert binary_prob_schedule(0.5, 276, 300) == 0.48
    assert binary_prob_schedule(0.5, 288, 300) == 0.24
    assert binary_prob_schedule(0.5, 300, 300) == 0.0
    values = [binary_prob_schedule(0.5, e, 300) for e in range(1, 301)]
    assert all(b <= a for a, b in zip(values, values[1:]))
    assert binary_prob_schedule(0.6, 11, 12) == 0.6 and binary_prob_schedule(0.6, 12, 12) == 0.0
    assert binary_prob_schedule(1.0, 10, 10, decay_start=1.0) == 1.0
    with pytest.raises(ConfigError):
        binary_prob_schedule(1.5, 1, 10)


def test_plans_are_reproducible_and_bad_options_are_refused():
    a = sample_mixing(8, 2, 8, 8, alpha=2.0, binary_prob=0.5, binary_choice_level="sample", generator=_gen(9))
    b = sample_mixing(8, 2, 8, 8, alpha=2.0, binary_prob=0.5, binary_choice_level="sample", generator=_gen(9))
    assert torch.equal(a.masks, b.masks) and torch.equal(a.kappa, b.kappa)
    small = sample_mixing(
        64, 2, 16, 16, alpha=2.0, binary_prob=1.0, block="patchup2d", block_size=3, generator=_gen(10)
    )
    large = sample_mixing(64, 2, 16, 16, alpha=2.0, binary_prob=1.0, block="patchup2d", generator=_gen(10))
    assert small.binary and not torch.equal(small.masks, large.masks)  # the option reaches the mask
    single = sample_mixing(4, 1, 8, 8, alpha=2.0, binary_prob=1.0)
    assert torch.equal(single.kappa, torch.ones(4, 1)) and not single.binary
    for bad in (
        {"block": "stars"},
        {"binary_prob": 1.5},
        {"role_swap_level": "epoch"},
        {"binary_choice_level": "pixel"},
        {"box": "outside"},
    ):
        kwargs = {"alpha": 2.0, "binary_prob": 1.0, **bad}
        with pytest.raises(ConfigError):
            sample_mixing(4, 2, 8, 8, **kwargs)
