"""Spec §10 invariants 30-35 and the unmixing pieces."""

import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.engine import TrainProgress
from mixlab.errors import ConfigError
from mixlab.mimo import build_network
from mixlab.mixing import sample_mixing
from mixlab.models.mimo import stem_conv
from mixshare.analysis import pairwise_share
from mixshare.config import MixShareConfig
from mixshare.method import unmix_settings
from mixshare.unmix import UnmixPool, downsample_masks, fadeout_rho, unmix_pool


def _feature_map(B=3, D=8, h=4, w=4):
    return torch.rand(B, D, h, w, generator=torch.Generator().manual_seed(0)) + 0.1


def _cut_masks(B=3, H=16, W=16, seed=0):
    plan = sample_mixing(B, 2, H, W, alpha=2.0, binary_prob=1.0, generator=torch.Generator().manual_seed(seed))
    assert plan.binary
    return plan.masks  # (B, 2, 1, H, W), complementary


def test_complementary_masks_sum_to_plain_gap_and_all_ones_is_plain_gap():  # invariant 30
    feat = _feature_map()
    heads = downsample_masks(_cut_masks(), (4, 4))
    f = unmix_pool(feat, heads)
    gap = feat.mean(dim=(2, 3))
    torch.testing.assert_close(f[:, 0] + f[:, 1], gap)
    assert not torch.allclose(f[:, 0], gap)  # the mask really restricts head 0
    ones = unmix_pool(feat, torch.ones(3, 2, 1, 4, 4))
    torch.testing.assert_close(ones, gap[:, None].expand(3, 2, 8))
    normalized = unmix_pool(feat, torch.ones(3, 2, 1, 4, 4), normalize=True)
    torch.testing.assert_close(normalized, gap[:, None].expand(3, 2, 8))


def test_masked_gap_values_by_hand():
    feat = torch.arange(2 * 2 * 2, dtype=torch.float).view(1, 2, 2, 2)  # channel 0: 0..3, channel 1: 4..7
    m = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).view(1, 1, 1, 2, 2)
    heads = torch.cat([m, 1 - m], dim=1)
    f = unmix_pool(feat, heads)
    torch.testing.assert_close(f[0, 0], torch.tensor([0.0, 4.0]) / 4)  # unnormalised: sum / (h w)
    torch.testing.assert_close(f[0, 1], torch.tensor([6.0, 18.0]) / 4)
    fn = unmix_pool(feat, heads, normalize=True)
    torch.testing.assert_close(fn[0, 0], torch.tensor([0.0, 4.0]))  # divided by the mask's area instead
    torch.testing.assert_close(fn[0, 1], torch.tensor([2.0, 6.0]))


def test_fadeout_limits_and_relaxed_mask():  # invariant 31
    feat = _feature_map()
    heads = downsample_masks(_cut_masks(), (4, 4))
    gap = feat.mean(dim=(2, 3))
    full = unmix_pool(feat, heads, rho=1.0)
    torch.testing.assert_close(full[:, 0], gap)
    torch.testing.assert_close(full[:, 1], gap)
    torch.testing.assert_close(unmix_pool(feat, heads, rho=0.0), unmix_pool(feat, heads))
    rho = 0.3
    relaxed = heads + rho * (1 - heads)
    assert float(relaxed.min()) >= 0 and float(relaxed.max()) <= 1
    expected = (relaxed[:, :, 0, None] * feat[:, None]).mean(dim=(-2, -1))
    torch.testing.assert_close(unmix_pool(feat, heads, rho=rho), expected)
    with pytest.raises(ConfigError):
        unmix_pool(feat, heads, rho=1.5)


def test_fadeout_schedule_values():
    # per epoch (default): rho = min(1, completed epochs / 100)
    assert [fadeout_rho(e, 0, 10, 100) for e in (0, 1, 50, 99, 100, 150)] == [0.0, 0.01, 0.5, 0.99, 1.0, 1.0]
    # per step: fractional epochs; step 1005 of 10 steps/epoch is epoch 100.5 -> 1
    assert fadeout_rho(25, 255, 10, 100, "step") == pytest.approx(0.255)
    assert fadeout_rho(0, 5, 10, 100, "step") == pytest.approx(0.005)
    assert fadeout_rho(100, 1005, 10, 100, "step") == 1.0
    # the method reads it from the training progress
    cfg = MixShareConfig(unmix="fadeout", fadeout_epochs=4)
    assert unmix_settings(cfg, TrainProgress(step=25, epoch=2, epochs=10, steps_per_epoch=10)) == (1.0, 0.5)
    assert unmix_settings(cfg, TrainProgress(step=40, epoch=4, epochs=10, steps_per_epoch=10)) is None
    step_cfg = MixShareConfig(unmix="fadeout", fadeout_epochs=4, fadeout_granularity="step")
    assert unmix_settings(step_cfg, TrainProgress(step=25, epoch=2, epochs=10, steps_per_epoch=10)) == (1.0, 0.625)
    assert unmix_settings(MixShareConfig(unmix="full"), TrainProgress(0, 0, 1, 1)) == (1.0, 0.0)
    assert unmix_settings(MixShareConfig(unmix="partial", unmix_fraction=0.4), TrainProgress(0, 0, 1, 1)) == (0.4, 0.0)
    assert unmix_settings(MixShareConfig(unmix="none"), TrainProgress(0, 0, 1, 1)) is None


@pytest.mark.parametrize("D, fraction", [(8, 0.25), (10, 0.25), (7, 0.5)])
def test_partial_unmixing_touches_exactly_the_first_channels(D, fraction):  # invariant 32
    feat = _feature_map(D=D)
    heads = downsample_masks(_cut_masks(), (4, 4))
    gap = feat.mean(dim=(2, 3))
    full = unmix_pool(feat, heads)
    part = unmix_pool(feat, heads, fraction=fraction)
    k = math.floor(fraction * D)
    for i in range(2):
        torch.testing.assert_close(part[:, i, :k], full[:, i, :k])
        torch.testing.assert_close(part[:, i, k:], gap[:, k:])
        assert (part[:, i, :k] != gap[:, :k]).all()
    torch.testing.assert_close(unmix_pool(feat, heads, fraction=0.0), gap[:, None].expand(3, 2, D))
    torch.testing.assert_close(unmix_pool(feat, heads, fraction=1.0), full)


def test_area_downsampling_keeps_the_mean_and_the_partition():  # invariant 33
    masks = _cut_masks(B=8, H=32, W=32, seed=3)
    down = downsample_masks(masks, (8, 8), "area")
    torch.testing.assert_close(down.mean(dim=(2, 3, 4)), masks.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(down.sum(1), torch.ones(8, 1, 8, 8))
    torch.testing.assert_close(down, F.avg_pool2d(masks.flatten(0, 1), 4).view(8, 2, 1, 8, 8))
    for mode in ("nearest", "area_threshold"):
        binary = downsample_masks(masks, (8, 8), mode)
        assert set(binary.unique().tolist()) <= {0.0, 1.0}
    assert downsample_masks(torch.full((2, 2, 1, 1, 1), 0.5), (4, 4)).shape == (2, 2, 1, 4, 4)


def test_unmix_through_the_network_forward():
    """The pool_fn hook: all-ones masks give the network's plain output; real masks change head logits only."""
    torch.manual_seed(0)
    model = build_network(MixShareConfig(model="smallcnn-1"), 10).eval()
    x = torch.randn(4, 2, 3, 32, 32)
    masks = _cut_masks(B=4, H=32, W=32)
    plain = model(x, masks)
    ones = UnmixPool(torch.ones(4, 2, 1, 32, 32), fraction=1.0, rho=0.0, normalize=False, downsample="area")
    torch.testing.assert_close(model(x, masks, pool_fn=ones), plain)
    unmixed = model(x, masks, pool_fn=UnmixPool(masks, fraction=1.0, rho=0.0, normalize=False, downsample="area"))
    assert unmixed.shape == plain.shape and not torch.allclose(unmixed, plain)
    feature_map = model.features(torch.zeros(1, 16, 32, 32))
    assert feature_map.shape[-2:] == (8, 8)  # 32x32 mixing space -> 8x8 final map, as WRN on CIFAR


def test_aligned_encoders_at_init():  # invariant 34
    torch.manual_seed(0)
    model = build_network(MixShareConfig(model="smallcnn-1", encoder_init="identical"), 10)
    w0, w1 = (stem_conv(model.member_encoder(i)).weight for i in range(2))
    assert torch.equal(w0, w1) and w0.data_ptr() != w1.data_ptr()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.member_encoder(0)(x), model.member_encoder(1)(x))
    colinear = build_network(MixShareConfig(model="smallcnn-1", encoder_init="colinear"), 10)
    c0, c1 = (stem_conv(colinear.member_encoder(i)).weight.detach().flatten(1) for i in range(2))
    torch.testing.assert_close(F.cosine_similarity(c0, c1, dim=1), torch.ones(c0.shape[0]))
    assert not torch.allclose(c0, c1)
    ratio = c1.norm(dim=1) / c0.norm(dim=1)
    assert float(ratio.min()) >= 0.5 and float(ratio.max()) <= 1.5
    independent = build_network(MixShareConfig(model="smallcnn-1", encoder_init="independent"), 10)
    i0, i1 = (stem_conv(independent.member_encoder(i)).weight for i in range(2))
    assert not torch.allclose(i0, i1)


def test_share_rate_of_identical_and_disjoint_heads():  # invariant 35
    h = torch.tensor([[1.0, 2.0, 3.0, 0.0], [1.0, 2.0, 3.0, 0.0]])
    assert pairwise_share(h) == pytest.approx(100.0)
    assert pairwise_share(torch.tensor([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 5.0, 1.0]])) == 0.0
    assert pairwise_share(torch.tensor([[1.0, 1.0], [2.0, 2.0]])) == pytest.approx(100.0)  # normalised
    assert pairwise_share(torch.tensor([[1.0, 1.0], [2.0, 2.0]]), "unnormalized") == pytest.approx(50.0)
    torch.manual_seed(0)
    model = build_network(MixShareConfig(model="smallcnn-1"), 10)
    model.heads[1].load_state_dict(model.heads[0].state_dict())
    from mixshare.analysis import analyze, head_share_rate

    assert head_share_rate(model)["share_rate"] == pytest.approx(100.0)
    report = analyze(model)
    assert report["share_rate"] == pytest.approx(100.0) and report["encoder_share_rate"] == pytest.approx(100.0)
    assert set(report["active_filters"]) == {"t0.2", "t0.3", "t0.4", "t0.5"}
