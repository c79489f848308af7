"""Batched augmentations: each against a per-image reference (a plain loop or torchvision.v2.functional)."""

import math

import mixlab.data.augmix_ops as A
import pytest
import torch
import torch.nn.functional as F
from mixlab.data import (
    augmix,
    autoaugment,
    build_batch_transform,
    cutout,
    cutout_mask,
    normalize,
    randaugment,
    random_crop,
    random_hflip,
)
from mixlab.errors import ConfigError
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF


def images(batch=8, side=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, 3, side, side), generator=g, dtype=torch.uint8)
    x[:, :, side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = 200  # structure for the geometric ops
    return x


def reference_crop(x, padding, size, fill, mode, seed):
    """Per-sample loop: pad with torch's F.pad, slice at the offsets drawn in the documented order (y then x)."""
    b, _, h, w = x.shape
    g = torch.Generator().manual_seed(seed)
    oy = torch.randint(0, h + 2 * padding - size + 1, (b,), generator=g)
    ox = torch.randint(0, w + 2 * padding - size + 1, (b,), generator=g)
    out = []
    for i in range(b):
        img = x[i].float()[None]
        if mode == "constant":
            padded = F.pad(img, (padding,) * 4, mode="constant", value=fill)
        else:
            padded = F.pad(img, (padding,) * 4, mode="reflect" if mode == "reflect" else "replicate")
        out.append(padded[0, :, oy[i] : oy[i] + size, ox[i] : ox[i] + size])
    return torch.stack(out).to(x.dtype), oy, ox


@pytest.mark.parametrize(
    "mode,fill,size",
    [("constant", 0, 32), ("constant", 7, 32), ("reflect", 0, 32), ("edge", 0, 32), ("constant", 0, 28)],
)
def test_random_crop_matches_per_sample_reference(mode, fill, size):
    x = images(16)
    out = random_crop(x, 4, size=size, fill=fill, padding_mode=mode, generator=torch.Generator().manual_seed(3))
    expected, oy, ox = reference_crop(x, 4, size, fill, mode, seed=3)
    assert out.dtype == torch.uint8 and out.shape == (16, 3, size, size)
    assert torch.equal(out, expected)
    assert len(set(zip(oy.tolist(), ox.tolist()))) > 1  # per-sample offsets, not one for the batch


def test_random_crop_shifts_content():
    # A zero-padded crop is the image translated by (4 - oy, 4 - ox): check one sample by hand.
    x = torch.arange(3 * 8 * 8, dtype=torch.uint8).view(1, 3, 8, 8)
    for seed in range(20):
        out = random_crop(x, 2, generator=torch.Generator().manual_seed(seed))
        g = torch.Generator().manual_seed(seed)
        oy, ox = int(torch.randint(0, 5, (1,), generator=g)), int(torch.randint(0, 5, (1,), generator=g))
        dy, dx = 2 - oy, 2 - ox  # content moves down by dy, right by dx
        for r in range(8):
            for c in range(8):
                sr, sc = r - dy, c - dx
                want = x[0, :, sr, sc] if 0 <= sr < 8 and 0 <= sc < 8 else torch.zeros(3, dtype=torch.uint8)
                assert torch.equal(out[0, :, r, c], want)


def test_random_crop_rejects_impossible():
    with pytest.raises(ConfigError):
        random_crop(images(2), 0, size=40)
    with pytest.raises(ConfigError):
        random_crop(images(2, side=8), 8, padding_mode="reflect")


def test_random_hflip():
    x = images(200)
    assert torch.equal(random_hflip(x, p=1.0), x.flip(-1))
    assert torch.equal(random_hflip(x, p=0.0), x)
    out = random_hflip(x, generator=torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(out[i], x[i].flip(-1)) for i in range(200)])
    kept = torch.tensor([torch.equal(out[i], x[i]) for i in range(200)])
    assert bool((flipped | kept).all())
    assert 70 < int(flipped.sum()) < 130


def test_cutout_holes_are_clipped_squares():
    mask = cutout_mask(500, 32, 32, 16, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (500, 1, 32, 32) and mask.dtype == torch.bool
    full = 0
    for m in mask[:, 0]:
        rows, cols = m.any(1).nonzero().squeeze(1), m.any(0).nonzero().squeeze(1)
        assert len(rows) <= 16 and len(cols) <= 16
        assert int(m.sum()) == len(rows) * len(cols)  # a filled axis-aligned rectangle
        assert len(rows) == 0 or (rows.diff() == 1).all() and (cols.diff() == 1).all()
        if len(rows) == 16 and len(cols) == 16:
            full += 1
    # the centre is uniform over the image: a full 16x16 hole needs centre in [8, 24] on both axes -> (17/32)^2
    assert abs(full / 500 - (17 / 32) ** 2) < 0.07


def test_cutout_fills_exactly_the_mask():
    x = images(32)
    out = cutout(x, 12, fill=5, generator=torch.Generator().manual_seed(1))
    mask = cutout_mask(32, 32, 32, 12, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, torch.where(mask, torch.tensor(5, dtype=torch.uint8), x))
    z = normalize(x, (0.5,) * 3, (0.25,) * 3)
    assert torch.equal(cutout(z, 12, generator=torch.Generator().manual_seed(1)), torch.where(mask, 0.0, z))


def test_normalize_values():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    mean, std = (0.5, 0.25, 0.2), (0.5, 0.25, 0.1)
    out = normalize(x, mean, std)
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([(0 - 0.5) / 0.5, (1 - 0.25) / 0.25, (0.2 - 0.2) / 0.1]))


def test_randaugment_and_autoaugment_wrappers():
    x = images(6)
    before = torch.get_rng_state()
    a = randaugment(x, generator=torch.Generator().manual_seed(5))
    b = randaugment(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), before)  # the generator path leaves the global RNG alone
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == x.shape
    assert not torch.equal(a, x)
    assert torch.equal(randaugment(x, num_ops=0), x)
    same = images(1).expand(12, -1, -1, -1).contiguous()  # identical inputs get independent policies
    out = autoaugment(same, "cifar10", generator=torch.Generator().manual_seed(0))
    assert len({out[i].sum().item() for i in range(12)}) > 1
    rm = randaugment(x, magnitude=9, random_magnitude=True, generator=torch.Generator().manual_seed(2))
    assert rm.shape == x.shape
    with pytest.raises(ConfigError):
        autoaugment(x, "mnist")
    with pytest.raises(ConfigError):
        randaugment(x.float())


# --- AugMix -----------------------------------------------------------------------------------------------------

LEVELS = torch.tensor([0.1, 0.6, 1.3, 2.0, 2.7, 3.0])
SIGNS = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, 1.0])
BILINEAR = InterpolationMode.BILINEAR


def shear_degrees(i):
    return math.degrees(math.atan(float(A.shear_factor(LEVELS, SIGNS)[i])))


REFERENCES = {  # the per-image torchvision.transforms.v2.functional call each batched op must equal
    "equalize": lambda x, i: TF.equalize(x),
    "autocontrast": lambda x, i: TF.autocontrast(x),
    "invert": lambda x, i: TF.invert(x),
    "posterize": lambda x, i: TF.posterize(x, int(A.posterize_bits(LEVELS)[i])),
    "solarize": lambda x, i: TF.solarize(x, float(A.solarize_threshold(LEVELS)[i])),
    "rotate": lambda x, i: TF.rotate(x, float(A.rotate_degrees(LEVELS, SIGNS)[i]), interpolation=BILINEAR),
    "shear_x": lambda x, i: TF.affine(
        x, angle=0.0, translate=[0, 0], scale=1.0, shear=[shear_degrees(i), 0.0], interpolation=BILINEAR, center=[0, 0]
    ),
    "shear_y": lambda x, i: TF.affine(
        x, angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, shear_degrees(i)], interpolation=BILINEAR, center=[0, 0]
    ),
    "translate_x": lambda x, i: TF.affine(
        x,
        angle=0.0,
        translate=[-int(A.translate_pixels(LEVELS, SIGNS, 32)[i]), 0],
        scale=1.0,
        shear=[0.0, 0.0],
        interpolation=BILINEAR,
    ),
    "translate_y": lambda x, i: TF.affine(
        x,
        angle=0.0,
        translate=[0, -int(A.translate_pixels(LEVELS, SIGNS, 32)[i])],
        scale=1.0,
        shear=[0.0, 0.0],
        interpolation=BILINEAR,
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_augmix_ops_equal_torchvision_per_image(name):
    x = images(len(LEVELS))
    out = A.OPS[name](x, LEVELS, SIGNS)
    assert out.dtype == torch.uint8
    for i in range(len(LEVELS)):
        difference = (out[i].int() - REFERENCES[name](x[i], i).int()).abs()
        if name in ("rotate", "shear_x", "shear_y"):
            # same matrix and sampler; float rounding of the grid may flip a value sitting on .5 by one level
            assert int(difference.max()) <= 1 and float((difference > 0).float().mean()) < 0.005, (name, i)
        else:
            assert int(difference.max()) == 0, (name, i)
    if name not in ("equalize", "autocontrast", "invert"):
        assert not torch.equal(out[-1], x[-1])  # the strongest level changes the image


def test_augmix_magnitudes_follow_the_reference_scaling():
    # AugMix augmentations.py at severity 3: level ~ U(0.1, 3), int(level * maxval / 10)
    top, low = torch.tensor([3.0]), torch.tensor([0.1])
    assert int(A.posterize_bits(top)) == 3 and int(A.posterize_bits(low)) == 4
    assert int(A.solarize_threshold(top)) == 180 and int(A.solarize_threshold(low)) == 254
    assert int(A.rotate_degrees(top, torch.tensor([-1.0]))) == -9
    assert int(A.translate_pixels(top, torch.tensor([1.0]), 32)) == 3
    assert float(A.shear_factor(top, torch.tensor([1.0]))) == pytest.approx(0.09)


def test_augmix_output_and_identities():
    x = images(10)
    out = augmix(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8 and not torch.equal(out, x)
    # skip weight m = 0: the original image exactly
    assert torch.equal(augmix(x, mixing_weight=0.0, generator=torch.Generator().manual_seed(0)), x)
    # a mixture of identity chains is the image itself, whatever the Dirichlet/Beta draws
    assert torch.equal(augmix(x, ops=("identity",), generator=torch.Generator().manual_seed(0)), x)
    # m = 1, one chain of one deterministic op: exactly that op
    eq = augmix(x, width=1, depth=1, ops=("equalize",), mixing_weight=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(eq, TF.equalize(x))


def test_augmix_is_a_convex_mixture():
    # with one chain, output = (1 - m) x + m chain(x): between x and the chain, pixel by pixel (up to rounding)
    # solarize's threshold is random in [180, 254]: each chain pixel is x or 255 - x, so the mixture lies between
    x = images(8)
    out = augmix(x, width=1, depth=1, severity=3.0, ops=("solarize",), generator=torch.Generator().manual_seed(4))
    assert not torch.equal(out, x)
    lo, hi = torch.minimum(x, 255 - x).int(), torch.maximum(x, 255 - x).int()
    assert bool(((out.int() >= lo - 1) & (out.int() <= hi + 1)).all())


def test_augmix_determinism_and_rng_isolation():
    x = images(4)
    before = torch.get_rng_state()
    a = augmix(x, random_depth=True, generator=torch.Generator().manual_seed(9))
    b = augmix(x, random_depth=True, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(1)
    c = augmix(x)
    torch.manual_seed(1)
    assert torch.equal(c, augmix(x))
    with pytest.raises(ConfigError):
        augmix(x, ops=("color",))
    with pytest.raises(ConfigError):
        augmix(x.float())


# --- BatchTransform ---------------------------------------------------------------------------------------------


def test_build_batch_transform_composes_in_order():
    x = images(8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    t = build_batch_transform("crop+flip+normalize", mean=mean, std=std, crop={"padding": 2})
    assert t.names == ["crop", "flip", "normalize"]
    out = t(x, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    expected = normalize(random_hflip(random_crop(x, 2, generator=g), generator=g), mean, std)
    assert torch.equal(out, expected)
    assert torch.equal(build_batch_transform("none")(x), x)
    cut = build_batch_transform(["cutout"], cutout={"size": 8})(x, generator=torch.Generator().manual_seed(0))
    assert int((cut != x).any(1).sum()) <= 8 * 8 * 8


def test_build_batch_transform_rejects_bad_specs():
    with pytest.raises(ConfigError, match="unknown augmentation"):
        build_batch_transform("crop+rotate90")
    with pytest.raises(ConfigError, match="mean and std"):
        build_batch_transform("normalize")
    with pytest.raises(ConfigError, match="before 'normalize'"):
        build_batch_transform("normalize+augmix", mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(ConfigError, match="not in"):
        build_batch_transform("crop", cutout={"size": 4})
