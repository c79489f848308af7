"""Token masks (spec §4.2-4.4; §12 invariants 1-4, 12): whole patches, a partition, exact mixing."""

import pytest
import torch
from mixlab.errors import ConfigError
from mixvit.masks import (
    binarized_cutmix,
    mix_patches,
    snap_to_patches,
    upsample,
    whole_input,
    whole_input_prob,
)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 2.0])
@pytest.mark.parametrize("M", [2, 3])
def test_masks_partition_the_patch_grid_and_lambda_is_the_token_share(alpha, M):
    g = torch.Generator().manual_seed(1)
    mixing = binarized_cutmix(64, M, (32, 32), 4, alpha, box_owner="per_sample", generator=g)
    masks = mixing.masks
    assert masks.shape == (64, M, 8, 8)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(masks.sum(1), torch.ones(64, 8, 8))
    assert torch.allclose(mixing.lam, masks.mean(dim=(2, 3))) and torch.allclose(mixing.lam.sum(1), torch.ones(64))
    # Beta(alpha, alpha) boxes of every size: some samples are strongly mixed, not all lopsided.
    assert bool(((mixing.lam[:, 0] > 0.2) & (mixing.lam[:, 0] < 0.8)).any())


def test_pixel_masks_are_whole_patches():
    g = torch.Generator().manual_seed(3)
    masks = binarized_cutmix(16, 2, (32, 32), 4, 0.5, generator=g).masks
    pixels = upsample(masks, 4)
    assert pixels.shape == (16, 2, 32, 32)
    patches = pixels.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, M, 8, 8, 4, 4): each 4x4 block constant
    assert torch.equal(patches.amax(dim=(-1, -2)), patches.amin(dim=(-1, -2)))


def test_majority_vote_and_one_tie_coin_per_sample():
    box = torch.zeros(2, 1, 8, 8)  # two 4x4 patches side by side on a 2x2 grid of patches of 4x4 pixels
    box[:, :, 0:4, 0:3] = 1  # top-left patch: 12/16 > 50% -> box
    box[:, :, 0:4, 4:5] = 1  # top-right patch: 4/16 < 50% -> other input
    box[:, :, 4:8, 0:2] = 1  # bottom-left: 8/16, a tie
    box[:, :, 4:6, 4:8] = 1  # bottom-right: 8/16, a tie
    coin = torch.tensor([True, False]).view(2, 1, 1)
    tokens = snap_to_patches(box, 4, coin)
    assert tokens[0].tolist() == [[True, False], [True, True]]  # ties follow the coin: all to the box
    assert tokens[1].tolist() == [[True, False], [False, False]]  # all to the other input


@pytest.mark.parametrize("M", [2, 3])
def test_the_box_goes_to_one_owner_per_batch_or_per_sample(M):
    g = torch.Generator().manual_seed(0)
    batch = binarized_cutmix(64, M, (32, 32), 4, 0.5, box_owner="per_batch", generator=g)
    assert len(batch.owner.unique()) == 1
    sample = binarized_cutmix(64, M, (32, 32), 4, 0.5, box_owner="per_sample", generator=g)
    assert len(sample.owner.unique()) == M


def test_mixing_pixels_equals_mixing_embedded_tokens_and_is_local(tiny_vit):
    vit = tiny_vit()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 2, 3, 16, 16, dtype=torch.float64, generator=g)
    masks = binarized_cutmix(6, 2, (16, 16), 4, 0.5, generator=g).masks.double()
    mixed_pixels = vit.embed(mix_patches(x, masks, 4))
    tokens = torch.stack([vit.embed(x[:, i]) for i in range(2)], 1)  # (B, M, N, d)
    mixed_tokens = (masks.flatten(2).unsqueeze(-1) * tokens).sum(1)
    assert torch.allclose(mixed_pixels, mixed_tokens, atol=1e-12)
    # Locality: input 1's pixels inside the patches input 0 owns never reach the mixed tokens.
    changed = x.clone()
    owned_by_0 = upsample(masks, 4)[:, 0].bool()
    changed[:, 1] = torch.where(owned_by_0[:, None], torch.randn_like(x[:, 1]), x[:, 1])
    assert torch.equal(mix_patches(changed, masks, 4), mix_patches(x, masks, 4))


def test_whole_input_masks_give_every_token_to_one_input():
    g = torch.Generator().manual_seed(0)
    mixing = whole_input(4, 2, (8, 8), generator=g)
    k = int(mixing.lam[0].argmax())
    assert (
        mixing.whole and torch.equal(mixing.lam[:, k], torch.ones(4)) and torch.equal(mixing.lam.sum(1), torch.ones(4))
    )
    assert torch.equal(mixing.masks[:, k], torch.ones(4, 8, 8))


def test_whole_input_probability_ramps_over_the_last_twelfth():
    assert whole_input_prob(0.0) == 0.0 and whole_input_prob(11 / 12) == 0.0
    assert whole_input_prob(1.0) == pytest.approx(1.0)
    assert whole_input_prob(11 / 12 + 1 / 24) == pytest.approx(0.5)
    assert whole_input_prob(11 / 12 + 1 / 48, p_max=0.8) == pytest.approx(0.2)
    assert whole_input_prob(0.99, start=1.0) == 0.0


def test_bad_mask_options_are_config_errors():
    with pytest.raises(ConfigError, match="box_owner"):
        binarized_cutmix(2, 2, (32, 32), 4, 0.5, box_owner="per_row")
    with pytest.raises(ConfigError, match="do not split"):
        binarized_cutmix(2, 2, (30, 30), 4, 0.5)
    with pytest.raises(ConfigError, match="alpha"):
        binarized_cutmix(2, 2, (32, 32), 4, 0.0)


def test_single_input_masks_are_all_ones():
    mixing = binarized_cutmix(3, 1, (32, 32), 4, 0.5)
    assert torch.equal(mixing.masks, torch.ones(3, 1, 8, 8)) and torch.equal(mixing.lam, torch.ones(3, 1))
