"""RealMix Extend step: random erasing, DeVries cutout, simple shift+flip, and the virtual/materialized pool."""

import math
import time

import pytest
import torch
from mixlab.data.transforms import cutout_mask
from mixlab.errors import ConfigError
from mixlab.rng import keyed_uniform
from realmix.extend import (
    _ERASING_BLOCK,
    _ERASING_TRIES,
    ExtendedPool,
    _erasing_boxes,
    devries_cutout,
    random_erasing,
    simple_augment,
)


def _images(n: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _changed_box(before: torch.Tensor, after: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(top, left, height, width) of the bounding box of changed pixels of one (3, H, W) image, or None."""
    changed = (before != after).any(dim=0)
    if not changed.any():
        return None
    rows = changed.any(dim=1).nonzero().flatten()
    cols = changed.any(dim=0).nonzero().flatten()
    top, left = int(rows.min()), int(cols.min())
    return top, left, int(rows.max()) - top + 1, int(cols.max()) - left + 1


def _coordinate_images(n: int, size: int = 32) -> torch.Tensor:
    """Channel 0 = row index, channel 1 = column index: the output tells where each pixel came from."""
    x = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    x[:, 0] = torch.arange(size, dtype=torch.uint8)[:, None]
    x[:, 1] = torch.arange(size, dtype=torch.uint8)[None, :]
    x[:, 2] = torch.arange(n, dtype=torch.uint8)[:, None, None]
    return x


# ----------------------------------------------------------------------------------------------- random erasing


def test_realmix_random_erasing_p0_is_identity():
    x = _images()
    out = random_erasing(x, p=0.0, generator=_gen(1))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, x)


def test_realmix_random_erasing_p1_one_constant_rectangle_per_image():
    x = _images(64)
    before = x.clone()
    out = random_erasing(x, p=1.0, generator=_gen(2))
    assert torch.equal(x, before), "input must not be modified in place"
    h, w = x.shape[2:]
    boxes, fills = set(), set()
    for b in range(x.shape[0]):
        box = _changed_box(x[b], out[b])
        assert box is not None, f"image {b} unchanged at p=1"
        top, left, bh, bw = box
        assert 0 <= top and top + bh <= h and 0 <= left and left + bw <= w
        patch = out[b, :, top : top + bh, left : left + bw]
        value = int(patch[0, 0, 0])
        assert (patch == value).all(), "one constant on every channel inside the box"
        outside = torch.ones(h, w, dtype=torch.bool)
        outside[top : top + bh, left : left + bw] = False
        assert torch.equal(out[b][:, outside], x[b][:, outside]), "pixels outside the box are untouched"
        area = bh * bw
        assert area <= 0.4 * h * w
        # s = sqrt(s/r)·sqrt(s·r) < (bw + 1)(bh + 1): the int truncation of both sides
        assert (bw + 1) * (bh + 1) > 0.02 * h * w
        assert 0 <= value <= 254
        boxes.add(box)
        fills.add(value)
    assert len(boxes) > 40 and len(fills) > 40, "parameters must be drawn per image, not once per call"


def test_realmix_random_erasing_apply_rate_and_determinism():
    x = _images(1000, size=16)
    out = random_erasing(x, generator=_gen(3))
    changed = (out != x).flatten(1).any(dim=1).float().mean().item()
    assert 0.25 < changed < 0.35  # p = 0.3
    assert torch.equal(out, random_erasing(x, generator=_gen(3)))
    assert not torch.equal(out, random_erasing(x, generator=_gen(4)))


def test_realmix_random_erasing_options():
    x = _images(32)
    out = random_erasing(x, p=1.0, fill=(7, 7), area=(0.1, 0.1), aspect=(1.0, 1.0), generator=_gen(5))
    side = int(math.sqrt(0.1 * 32 * 32))  # 10
    for b in range(x.shape[0]):
        top, left, bh, bw = _changed_box(x[b], out[b])
        assert (bh, bw) == (side, side)
        assert (out[b, :, top : top + bh, left : left + bw] == 7).all()
    for bad in [
        dict(p=1.5),
        dict(area=(0.5, 0.1)),
        dict(area=(0.0, 0.2)),
        dict(aspect=(0.0, 1.0)),
        dict(fill=(0, 300)),
        dict(fill=5),
    ]:
        with pytest.raises(ConfigError):
            random_erasing(x, **bad)
    with pytest.raises(ConfigError):
        random_erasing(x.float())


# ----------------------------------------------------------------------------------------------- devries / simple


def test_realmix_devries_cutout_matches_cutout_mask_and_fill():
    x = _images(32)
    out = devries_cutout(x, 16, generator=_gen(6))
    mask = cutout_mask(32, 32, 32, 16, generator=_gen(6))
    assert torch.equal(out, torch.where(mask, torch.tensor(128, dtype=torch.uint8), x))
    for b in range(x.shape[0]):
        top, left, bh, bw = _changed_box(x[b], out[b])
        assert bh <= 16 and bw <= 16
        assert (out[b, :, top : top + bh, left : left + bw] == 128).all()  # mid-grey (≈0 in [-1, 1])
    black = devries_cutout(x, 8, fill=0, generator=_gen(6))
    changed = (black != x).any(dim=1)
    assert changed.any() and (black.permute(1, 0, 2, 3)[:, changed] == 0).all()
    for bad in [dict(size=0), dict(size=8, fill=256), dict(size=8, fill=1.5)]:
        with pytest.raises(ConfigError):
            devries_cutout(x, **bad)


@pytest.mark.parametrize("hflip", [False, True])
def test_realmix_simple_augment_shift_bounded_and_flip(hflip):
    n, size, pad = 200, 32, 4
    x = _coordinate_images(n, size)
    out = simple_augment(x, padding=pad, hflip=hflip, generator=_gen(7))
    assert torch.equal(out[:, 2], x[:, 2]), "images stay in place in the batch"
    inner = slice(pad, size - pad)
    flips, shifts = 0, set()
    for b in range(n):
        src_rows = out[b, 0, inner, inner].long() - torch.arange(pad, size - pad)[:, None]
        dy = int(src_rows[0, 0])
        assert (src_rows == dy).all() and abs(dy) <= pad
        cols = out[b, 1, inner, inner].long()
        flipped = bool(cols[0, 1] < cols[0, 0])
        flips += flipped
        expected = torch.arange(pad, size - pad)
        dx = int(cols[0, 0] - (size - 1 - pad if flipped else pad))
        expected = (size - 1 - expected if flipped else expected) + dx
        assert torch.equal(cols, expected[None, :].expand_as(cols)) and abs(dx) <= pad
        # reflect padding: every source row/col is a valid index and the border mirrors without repeating the edge
        all_rows = torch.arange(size) + dy
        reflected = torch.where(
            all_rows < 0, -all_rows, torch.where(all_rows > size - 1, 2 * (size - 1) - all_rows, all_rows)
        )
        assert torch.equal(out[b, 0, :, 0].long(), reflected)
        shifts.add((dy, dx))
    if hflip:
        assert 70 < flips < 130
    else:
        assert flips == 0
    assert len(shifts) > 40, "offsets are drawn per image"
    with pytest.raises(ConfigError):
        simple_augment(x, padding=32)


# ----------------------------------------------------------------------------------------------- the pool


def test_realmix_pool_length_cifar10_at_250():
    # spec §10.36: 49,750 unlabeled CIFAR-10 images, 50 copies; a stride-0 tensor costs no memory in virtual mode
    images = torch.zeros(1, 3, 32, 32, dtype=torch.uint8).expand(49_750, 3, 32, 32)
    pool = ExtendedPool(images)
    assert len(pool) == 50 * 49_750 == 2_487_500
    assert pool.get(torch.tensor([0, len(pool) - 1])).shape == (2, 3, 32, 32)
    with pytest.raises(ConfigError, match="7.64 GB"):
        ExtendedPool(images, mode="materialize", max_bytes=1e9)


def test_realmix_pool_none_is_the_plain_unlabeled_set():
    x = _images(10)
    for mode in ("virtual", "materialize"):
        pool = ExtendedPool(x, n_copies=50, aug="none", mode=mode)
        assert len(pool) == 10
        idx = torch.tensor([3, 0, 9, 3])
        assert torch.equal(pool.get(idx), x[idx])


@pytest.mark.parametrize("aug,impl", [("cutout", "random_erasing"), ("cutout", "devries"), ("simple", "devries")])
def test_realmix_pool_virtual_deterministic_and_equal_to_materialized(aug, impl):
    x = _images(12)
    before = x.clone()
    virtual = ExtendedPool(x, n_copies=5, aug=aug, cutout_impl=impl, seed=3)
    materialized = ExtendedPool(x, n_copies=5, aug=aug, cutout_impl=impl, seed=3, mode="materialize")
    assert len(virtual) == len(materialized) == 60
    everything = torch.arange(60)
    pool = virtual.get(everything)
    assert torch.equal(pool, materialized.get(everything))
    assert torch.equal(pool, ExtendedPool(x, n_copies=5, aug=aug, cutout_impl=impl, seed=3).get(everything))
    assert not torch.equal(pool, ExtendedPool(x, n_copies=5, aug=aug, cutout_impl=impl, seed=4).get(everything))
    # a copy does not depend on the batch it is fetched in
    idx = torch.tensor([59, 7, 7, 30, 0])
    assert torch.equal(virtual.get(idx), torch.cat([virtual.get(idx[b : b + 1]) for b in range(5)]))
    assert torch.equal(virtual.get(idx), pool[idx])
    assert torch.equal(x, before)


def _sequential_erasing(u: list[float], refills: list[list[float]], height: int, width: int, params) -> tuple:
    """yu4u's get_random_eraser for one image, try after try, on given uniforms (the reference for the batched one)."""
    p, (a_lo, a_hi), (r_lo, r_hi), (f_lo, f_hi) = params
    if not u[0] < p:
        return (0, 0, 0, 0, 0)
    value = min(int(f_lo + u[1] * (f_hi - f_lo)), 255)
    tries = [u[2:], *refills]
    for block in tries:
        for t in range(0, len(block), 4):
            s = (a_lo + block[t] * (a_hi - a_lo)) * height * width
            r = r_lo + block[t + 1] * (r_hi - r_lo)
            w, h = int(math.sqrt(s / r)), int(math.sqrt(s * r))
            left, top = int(block[t + 2] * width), int(block[t + 3] * height)
            if left + w <= width and top + h <= height:
                return (top, left, h, w, value)
    raise AssertionError("the reference ran out of tries")


@pytest.mark.parametrize("area", [(0.02, 0.4), (0.6, 0.9)])  # the second misses often: refill rounds are exercised
def test_realmix_batched_erasing_boxes_equal_the_sequential_reference(area):
    n, size = 300, 20
    params = (0.7, area, (0.3, 1 / 0.3), (0.0, 255.0))
    first = torch.rand(n, _ERASING_BLOCK, dtype=torch.float64, generator=_gen(12))
    extra = torch.rand(40, n, 4 * _ERASING_TRIES, dtype=torch.float64, generator=_gen(13))  # [round - 1, image]
    rounds = []

    def more(rows, round_):
        rounds.append(round_)
        return extra[round_ - 1, rows]

    boxes = _erasing_boxes(first, more, size, size, params)
    expected = [
        _sequential_erasing(first[b].tolist(), [extra[r, b].tolist() for r in range(40)], size, size, params)
        for b in range(n)
    ]
    assert boxes.tolist() == [list(e) for e in expected]
    assert (rounds == []) == (area == (0.02, 0.4)) and rounds == list(range(1, len(rounds) + 1))


def test_realmix_pool_copy_is_keyed_by_seed_image_and_copy():
    # "simple" copies on coordinate images expose their draws: flip u0 < 0.5, offsets floor(u * (2 pad + 1)) - pad
    x, pad = _coordinate_images(7), 4
    pool = ExtendedPool(x, n_copies=4, aug="simple", padding=pad, seed=11)
    for k in (0, 6, 7, 20, 27):
        i, j = k % 7, k // 7
        u = keyed_uniform(11, torch.tensor([i]), torch.tensor([j]), count=3)[0]
        dy, dx = (int(v * (2 * pad + 1)) - pad for v in u[1:].tolist())
        out = pool.get(torch.tensor([k]))[0]
        rows, cols = out[0, pad:-pad, 16].long(), out[1, 16, pad:-pad].long()
        assert torch.equal(rows, torch.arange(pad, 32 - pad) + dy)
        flipped = bool(u[0] < 0.5)
        expected_cols = torch.arange(pad, 32 - pad) + dx
        assert torch.equal(cols, 31 - expected_cols if flipped else expected_cols), k


def test_realmix_pool_different_copies_differ():
    x = _images(6)
    pool = ExtendedPool(x, n_copies=8, p=1.0)  # every copy erased
    copies = pool.get(torch.arange(48)).view(8, 6, 3, 32, 32)  # [j, i]
    for i in range(6):
        for j in range(8):
            assert not torch.equal(copies[j, i], x[i])
            for j2 in range(j):
                assert not torch.equal(copies[j, i], copies[j2, i]), (i, j, j2)
    default = ExtendedPool(_images(50), n_copies=20)  # p = 0.3: about 30 % of the copies are erased
    erased = (default.get(torch.arange(1000)) != default.images.repeat(20, 1, 1, 1)).flatten(1).any(1)
    assert 0.22 < erased.float().mean().item() < 0.38


def test_realmix_pool_simple_and_devries_options():
    x = _coordinate_images(20)
    pool = ExtendedPool(x, n_copies=10, aug="simple", hflip=False, padding=2)
    out = pool.get(torch.arange(200))
    cols = out[:, 1, 5, 2:30].long()
    assert (cols[:, 1:] > cols[:, :-1]).all(), "no flip when hflip=False"
    assert ((out[:, 0, 2:30, 5].long() - torch.arange(2, 30)).abs() <= 2).all()
    grey = ExtendedPool(_images(20), n_copies=3, cutout_impl="devries", cutout_size=8, devries_fill=3)
    got = grey.get(torch.arange(60))
    changed = (got != grey.images.repeat(3, 1, 1, 1)).any(dim=1)
    assert changed.flatten(1).any(1).all()
    assert (got.permute(1, 0, 2, 3)[:, changed] == 3).all()
    assert changed.flatten(1).sum(1).max() <= 64


def test_realmix_pool_rejects_bad_options():
    x = _images(4)
    bad = [
        dict(aug="autoaugment"),
        dict(mode="disk"),
        dict(cutout_impl="cutmix"),
        dict(n_copies=0),
        dict(n_copies=2.5),
        dict(cutout_size=0),
        dict(q=0.3),
        dict(p=2.0),
        dict(padding=40),
        dict(devries_fill=999),
    ]
    for options in bad:
        with pytest.raises(ConfigError) as info:
            ExtendedPool(x, **options)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        ExtendedPool(x.float())
    with pytest.raises(ConfigError):
        ExtendedPool(x[:0])
    pool = ExtendedPool(x, n_copies=2)
    with pytest.raises(IndexError):
        pool.get(torch.tensor([8]))
    with pytest.raises(IndexError):
        pool.get(torch.tensor([-1]))
    with pytest.raises(ConfigError, match="GB"):
        ExtendedPool(x, n_copies=2, mode="materialize", max_bytes=100)


def test_realmix_pool_get_is_batched_fast():
    pool = ExtendedPool(_images(2000), n_copies=50)
    idx = torch.randint(0, len(pool), (448,), generator=_gen(9))
    pool.get(idx[:8])
    start = time.perf_counter()
    out = pool.get(idx)
    assert out.shape == (448, 3, 32, 32)
    assert time.perf_counter() - start < 1.0  # ~10 ms in practice; a per-image Python apply loop would be far slower
