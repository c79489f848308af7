"""Spec §10 invariants 5-6 (cut mask, areas) and the §3.5 mask shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.mixing import BINARY_KINDS, binary_mask, cutmix_box_mask, kind_option_names


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _contiguous(flags: torch.Tensor) -> bool:
    """A 1-D bool vector whose True entries form one run (or none)."""
    idx = flags.nonzero().flatten()
    return idx.numel() == 0 or int(idx[-1] - idx[0] + 1) == idx.numel()


def _is_rectangle(mask: torch.Tensor) -> bool:
    """(H, W) {0,1} mask whose support is one axis-aligned rectangle (or empty)."""
    rows, cols = mask.amax(1) > 0, mask.amax(0) > 0
    return _contiguous(rows) and _contiguous(cols) and torch.equal(mask > 0, rows[:, None] & cols[None, :])


@pytest.mark.parametrize("kind", BINARY_KINDS)
@pytest.mark.parametrize("size", [(32, 32), (8, 12)])
def test_every_mask_is_binary_and_its_mean_is_the_returned_area(kind, size):
    H, W = size
    kappa = torch.rand(64, generator=_gen(1))
    mask, area = binary_mask(kind, kappa, H, W, generator=_gen(2))
    assert mask.shape == (64, 1, H, W) and mask.dtype == torch.float32 and area.shape == (64,)
    assert bool(((mask == 0) | (mask == 1)).all())
    assert torch.equal(mask.mean(dim=(1, 2, 3)), area)  # exactly, not approximately
    again, _ = binary_mask(kind, kappa, H, W, generator=_gen(2))
    assert torch.equal(mask, again)  # reproducible from the generator


def test_cutmix_support_is_one_rectangle_of_the_official_side():
    g = _gen(3)
    for H, W in ((32, 32), (16, 24)):
        kappa = torch.rand(500, generator=g)
        mask, _ = cutmix_box_mask(kappa, H, W, generator=g)
        side_h = 2 * (torch.floor(H * kappa.double().sqrt()).long() // 2)
        side_w = 2 * (torch.floor(W * kappa.double().sqrt()).long() // 2)
        for m, sh, sw in zip(mask[:, 0], side_h, side_w):
            assert _is_rectangle(m)
            rows, cols = int((m.amax(1) > 0).sum()), int((m.amax(0) > 0).sum())
            assert rows <= sh and cols <= sw
            ys, xs = m.nonzero(as_tuple=True)
            # A box that touches no border was not clipped: it has the full official side 2 * (int(W*sqrt k) // 2).
            if ys.numel() and ys.min() > 0 and ys.max() < H - 1 and xs.min() > 0 and xs.max() < W - 1:
                assert (rows, cols) == (int(sh), int(sw))


def test_clipped_area_is_biased_low_and_inside_area_is_exact():
    W = 32
    kappa = torch.full((10_000,), 0.5)
    _, clipped = cutmix_box_mask(kappa, W, W, generator=_gen(4))
    assert clipped.mean().item() <= 0.5
    side = 2 * (int(W * math.sqrt(0.5)) // 2)
    assert clipped.mean().item() < side**2 / W**2 - 0.05  # clipping really happens
    kappa = torch.rand(10_000, generator=_gen(5))
    _, clipped = cutmix_box_mask(kappa, W, W, generator=_gen(6))
    assert clipped.mean().item() <= kappa.mean().item()
    grid = torch.linspace(0, 1, 201)
    mask, inside = cutmix_box_mask(grid, W, W, box="inside", generator=_gen(7))
    expected = torch.tensor(
        [(2 * (int(W * math.sqrt(k)) // 2)) ** 2 / W**2 for k in grid.double().tolist()], dtype=torch.float64
    )
    assert torch.allclose(inside.double(), expected, atol=1e-7)
    assert bool(((inside - grid).abs() <= 4 / W + 4 / W**2).all())
    assert all(_is_rectangle(m) for m in mask[:, 0])
    # The inside box is placed uniformly: its left edge takes every feasible value.
    m, _ = cutmix_box_mask(torch.full((2000,), 0.25), W, W, box="inside", generator=_gen(8))
    left = m[:, 0].amax(1).argmax(1)
    assert set(left.tolist()) == set(range(W - 16 + 1))
    with pytest.raises(ConfigError):
        cutmix_box_mask(grid, W, W, box="outside")


def test_concatenation_masks_follow_the_thesis_axes():
    kappa = torch.rand(400, generator=_gen(9))
    H, W = 8, 12
    hmask, harea = binary_mask("hconcat", kappa, H, W, generator=_gen(10))
    vmask, varea = binary_mask("vconcat", kappa, H, W, generator=_gen(10))
    # "Horizontal concatenation" = a vertical dividing line: the mask depends on the column only.
    assert torch.equal(hmask, hmask[:, :, :1, :].expand_as(hmask))
    assert torch.equal(vmask, vmask[:, :, :, :1].expand_as(vmask))
    assert torch.equal(harea, torch.floor(kappa.double() * W).float() / W)
    assert torch.equal(varea, torch.floor(kappa.double() * H).float() / H)
    starts_left = 0
    for row in hmask[:, 0, 0]:
        ones = int(row.sum())
        assert _contiguous(row > 0)
        if 0 < ones < W:
            assert row[0] == 1 or row[-1] == 1  # the ones sit on one side
            starts_left += int(row[0] == 1)
    assert 100 < starts_left < 300  # the side is a fair coin per sample
    fixed, _ = binary_mask("hconcat", kappa, H, W, generator=_gen(10), random_side=False)
    assert bool((fixed[:, 0, 0, 0] == (torch.floor(kappa.double() * W) > 0).float()).all())


def test_patchup_mask_is_a_union_of_blocks_with_the_recalibrated_rate():
    S, block = 32, 7
    kappa = torch.full((600,), 0.5)
    mask, _ = binary_mask("patchup2d", kappa, S, S, generator=_gen(11))
    # Opening with the block (erosion then dilation, outside counted as ones) leaves a union of blocks unchanged.
    pad = block // 2
    eroded = -F.max_pool2d(F.pad(-mask, (pad,) * 4, value=-1.0), block, stride=1)
    opened = F.max_pool2d(eroded, block, stride=1, padding=pad)
    assert torch.equal(opened, mask)
    gamma = 0.5 * S**2 / (block**2 * (S - block + 1) ** 2)
    interior = mask[:, 0, pad : S - pad, pad : S - pad].mean().item()
    assert interior == pytest.approx(1 - (1 - gamma) ** (block**2), abs=0.02)
    zero, _ = binary_mask("patchup2d", torch.zeros(4), S, S, generator=_gen(12))
    assert zero.sum() == 0
    small, _ = binary_mask("patchup2d", kappa[:20], S, S, generator=_gen(13), block_size=3)
    assert small.mean() < mask.mean()
    with pytest.raises(ConfigError):
        binary_mask("patchup2d", kappa, 4, 4, block_size=7)


def _transitions(mask: torch.Tensor) -> float:
    """Share of neighbouring cell pairs that disagree (low for blob-like masks)."""
    m = mask[:, 0]
    return ((m[:, 1:] != m[:, :-1]).float().mean().item() + (m[:, :, 1:] != m[:, :, :-1]).float().mean().item()) / 2


def test_fmix_keeps_the_top_kappa_cells_of_a_smooth_field():
    kappa = torch.rand(200, generator=_gen(14))
    mask, area = binary_mask("fmix", kappa, 32, 32, generator=_gen(15))
    assert torch.equal(area, torch.floor(kappa.double() * 1024).float() / 1024)
    iid = 2 * kappa * (1 - kappa)  # disagreement rate of an i.i.d. mask of the same area
    assert _transitions(mask) < 0.25 * iid.mean().item()


def test_cowmask_ignores_kappa_and_draws_its_own_area():
    a, area_a = binary_mask("cowmask", torch.zeros(300), 32, 32, generator=_gen(16))
    b, _ = binary_mask("cowmask", torch.ones(300), 32, 32, generator=_gen(16))
    assert torch.equal(a, b)
    assert area_a.mean().item() == pytest.approx(0.5, abs=0.05)  # p_cow ~ U(0.2, 0.8)
    assert 0.05 < area_a.min().item() and area_a.max().item() < 0.95
    assert _transitions(a) < 0.2 * (2 * area_a * (1 - area_a)).mean().item()


def test_dispatcher_rejects_unknown_kinds_and_options():
    kappa = torch.full((2,), 0.5)
    with pytest.raises(ConfigError, match="cutmix"):
        binary_mask("stars", kappa, 8, 8)
    with pytest.raises(ConfigError, match="block_size"):
        binary_mask("cutmix", kappa, 8, 8, block_size=3)
    assert kind_option_names("cutmix") == ("box",)
    assert set(kind_option_names("cowmask")) == {"p_min", "p_max", "sigma_min", "sigma_max"}
    with pytest.raises(ConfigError):
        binary_mask("cutmix", torch.full((2, 1), 0.5), 8, 8)
