"""Joint image + mask augmentation (spec guidedmix §3.3, §8 item 20) and the step-indexed segmentation batch streams."""

import math

import pytest
import torch
from mixlab.errors import ConfigError
from mixlab.seg.data.dataset import IGNORE_INDEX, SegDataset
from mixlab.seg.loader import SegStream, eval_batches
from mixlab.seg.transforms import (
    AugParams,
    SegAugment,
    apply_params,
    augment_batch,
    augment_sample,
    normalize_images,
    sample_params,
)

HALF = (0.5, 0.5, 0.5)
#: A colour per class, far apart, for the label-coloured images.
COLOURS = torch.tensor([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], dtype=torch.uint8)


def random_pair(batch=4, height=20, width=30, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, height, width), generator=g, dtype=torch.uint8)
    masks = torch.randint(0, classes, (batch, height, width), generator=g, dtype=torch.uint8)
    return images, masks


def label_coloured(batch=8, size=48, block=8, seed=0):
    """Masks of ``block`` x ``block`` squares of random classes, images painted with each class's colour."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, len(COLOURS), (batch, size // block, size // block), generator=g)
    masks = cells.repeat_interleave(block, 1).repeat_interleave(block, 2).to(torch.uint8)
    images = COLOURS[masks.long()].permute(0, 3, 1, 2).contiguous()
    return images, masks


def identity_params(batch, flip=False, angle=0.0):
    return AugParams(torch.ones(batch), torch.zeros(batch, 2), torch.full((batch,), flip), torch.full((batch,), angle))


def test_crop_is_exactly_crop_by_crop_and_padding_is_ignored_and_invalid():
    images, masks = random_pair(height=20, width=30)
    aug = SegAugment(crop=48, scale_range=(0.5, 1.2), rotate_deg=10.0, mean=HALF, std=HALF)
    out, labels, valid = augment_batch(images, masks, aug, torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 48, 48) and out.dtype == torch.float32
    assert labels.shape == valid.shape == (4, 48, 48) and labels.dtype == torch.int64 and valid.dtype == torch.bool
    assert (~valid).any(), "a 30-pixel image scaled to at most 36 must be padded in a 48 crop"
    # The source masks hold no 255: the ignored pixels are exactly the padding, where the image is the mean (0).
    assert torch.equal(labels == IGNORE_INDEX, ~valid)
    assert (out.permute(1, 0, 2, 3)[:, ~valid] == 0).all()
    assert labels[valid].max() < 5
    single = augment_sample(images[0, :, :7], masks[0, :7], aug, torch.Generator().manual_seed(1))
    assert [tuple(t.shape) for t in single] == [(3, 48, 48), (48, 48), (48, 48)]


def test_ignored_source_pixels_stay_ignored_but_valid():
    images, masks = random_pair(batch=2, height=16, width=16)
    masks[:, :8] = IGNORE_INDEX
    aug = SegAugment(crop=16, scale_range=(1.0, 1.0), rotate_deg=0.0, hflip=False, mean=HALF, std=HALF)
    _, labels, valid = augment_batch(images, masks, aug)
    assert valid.all() and torch.equal(labels, masks.long())


@pytest.mark.parametrize("size", [24, 23])
def test_unit_scale_no_flip_no_rotation_full_crop_is_the_identity(size):
    images, masks = random_pair(batch=3, height=size, width=size)
    aug = SegAugment(crop=size, scale_range=(1.0, 1.0), rotate_deg=0.0, hflip=False)
    out, labels, valid = augment_batch(images, masks, aug, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, normalize_images(images), atol=1e-4, rtol=0)
    assert torch.equal(labels, masks.long()) and valid.all()


def test_flip_and_quarter_turn_move_image_and_mask_together():
    images, masks = random_pair(batch=2, height=12, width=12)
    aug = SegAugment(crop=12, mean=HALF, std=HALF)
    out, labels, valid = apply_params(images, masks, identity_params(2, flip=True), aug)
    torch.testing.assert_close(out, normalize_images(images, HALF, HALF).flip(-1), atol=1e-4, rtol=0)
    assert torch.equal(labels, masks.long().flip(-1)) and valid.all()
    out, labels, valid = apply_params(images, masks, identity_params(2, angle=math.pi / 2), aug)
    torch.testing.assert_close(out, normalize_images(images, HALF, HALF).rot90(1, (2, 3)), atol=1e-4, rtol=0)
    assert torch.equal(labels, masks.long().rot90(1, (1, 2))) and valid.all()


def test_label_coloured_image_stays_consistent_with_its_mask():
    images, masks = label_coloured(batch=16)
    aug = SegAugment(crop=40, scale_range=(0.5, 2.0), rotate_deg=20.0, mean=HALF, std=HALF)
    params = sample_params(16, aug, torch.Generator().manual_seed(3))
    assert params.flip.any() and (~params.flip).any() and (params.angle.abs() > 0.05).any()
    out, labels, valid = apply_params(images, masks, params, aug)
    pixels = ((out * 0.5 + 0.5) * 255).permute(0, 2, 3, 1)  # back to 0..255 colours
    decoded = torch.cdist(pixels.reshape(-1, 3), COLOURS.float()).argmin(1).view(labels.shape)
    # Interior pixels: valid, and the 3x3 neighbourhood has one class (a boundary pixel's colour is a blend).
    padded = torch.nn.functional.pad(labels.float().unsqueeze(1), (1, 1, 1, 1), value=-1)
    window = torch.nn.functional.unfold(padded, 3).view(16, 9, *labels.shape[1:])
    interior = valid & (window == labels.unsqueeze(1)).all(1)
    assert interior.float().mean() > 0.4
    assert torch.equal(decoded[interior], labels[interior])


def test_batch_equals_samples_for_the_same_generator_state_and_parameters():
    images, masks = random_pair(batch=5, height=21, width=27)
    aug = SegAugment(crop=24, rotate_deg=15.0, mean=HALF, std=HALF)
    batch = augment_batch(images, masks, aug, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # on the CPU the (5, 5) draw is five (1, 5) draws in a row
    samples = [augment_sample(images[i], masks[i], aug, g) for i in range(5)]
    for whole, parts in zip(batch, zip(*samples)):
        assert torch.equal(whole, torch.stack(parts))
    params = sample_params(5, aug, torch.Generator().manual_seed(8))
    batch = apply_params(images, masks, params, aug)
    for i in range(5):
        one = apply_params(images[i : i + 1], masks[i : i + 1], params.select(i), aug)
        assert all(torch.equal(a[i : i + 1], b) for a, b in zip(batch, one))


def test_determinism_for_a_seed():
    images, masks = random_pair()
    aug = SegAugment(crop=16)
    first = augment_batch(images, masks, aug, torch.Generator().manual_seed(0))
    again = augment_batch(images, masks, aug, torch.Generator().manual_seed(0))
    other = augment_batch(images, masks, aug, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    torch.manual_seed(5)
    global_first = augment_batch(images, masks, aug)
    torch.manual_seed(5)
    assert torch.equal(global_first[0], augment_batch(images, masks, aug)[0])


def test_parameter_distributions():
    aug = SegAugment(crop=8, scale_range=(0.5, 2.0), rotate_deg=10.0)
    params = sample_params(20_000, aug, torch.Generator().manual_seed(0))
    assert abs(params.flip.float().mean().item() - 0.5) < 0.02
    assert params.scale.min() >= 0.5 and params.scale.max() <= 2.0 and abs(params.scale.mean().item() - 1.25) < 0.02
    assert params.angle.abs().max() <= math.radians(10.0) and abs(params.angle.mean().item()) < 0.005
    assert ((params.offset >= 0) & (params.offset < 1)).all()
    still = sample_params(1000, SegAugment(crop=8, hflip=False, rotate_deg=0.0), torch.Generator().manual_seed(0))
    assert not still.flip.any() and (still.angle == 0).all()


@pytest.mark.parametrize(
    "options",
    [
        {"crop": 0},
        {"crop": 8.5},
        {"crop": 8, "scale_range": (2.0, 1.0)},
        {"crop": 8, "scale_range": (0.0, 1.0)},
        {"crop": 8, "rotate_deg": -1.0},
        {"crop": 8, "hflip": 1},
        {"crop": 8, "std": (0.2, 0.0, 0.2)},
        {"crop": 8, "mean": (0.5, 0.5)},
    ],
)
def test_invalid_settings_are_config_errors(options):
    with pytest.raises(ConfigError):
        SegAugment(**options)


def test_normalize_images_for_one_image_and_a_batch():
    images, _ = random_pair(batch=2, height=4, width=5)
    batch = normalize_images(images, (0.1, 0.2, 0.3), (0.5, 0.25, 0.2))
    expected = (images.float() / 255 - torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1)) / torch.tensor(
        [0.5, 0.25, 0.2]
    ).view(3, 1, 1)
    torch.testing.assert_close(batch, expected)
    assert torch.equal(normalize_images(images[1], (0.1, 0.2, 0.3), (0.5, 0.25, 0.2)), batch[1])


# -- batch streams -------------------------------------------------------------------------------------------------


def memory_dataset(n=10, size=16):
    images, masks = random_pair(batch=n, height=size, width=size, classes=3, seed=4)
    return SegDataset("toy", "train", 3, ("a", "b", "c"), [str(i) for i in range(n)], tensors=(images, masks))


SIZES = [(20, 30), (32, 18), (25, 25), (16, 40), (24, 24), (30, 22), (18, 18)]


def _file_samples():
    g = torch.Generator().manual_seed(9)
    return [
        (
            torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8),
            torch.randint(0, 3, (h, w), generator=g, dtype=torch.uint8),
        )
        for h, w in SIZES
    ]


FILE_SAMPLES = _file_samples()


def _load(index):
    return FILE_SAMPLES[index]


def file_dataset():
    return SegDataset("files", "train", 3, ("a", "b", "c"), [f"f{i}" for i in range(len(SIZES))], loader=_load)


def equal_batches(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("make", [memory_dataset, file_dataset])
def test_stream_batch_is_a_pure_function_of_seed_and_step(make):
    aug = SegAugment(crop=16, mean=HALF, std=HALF)
    stream = SegStream(make(), 3, aug, seed=11, device="cpu")
    later = stream.batch(5)
    fresh = SegStream(make(), 3, aug, seed=11, device="cpu")
    assert equal_batches(fresh.batch(5), later)
    images, masks, valid = later
    assert images.shape == (3, 3, 16, 16) and masks.shape == valid.shape == (3, 16, 16)
    assert not torch.equal(stream.batch(6)[0], later[0])
    assert not torch.equal(SegStream(make(), 3, aug, seed=12).batch(5)[0], later[0])


@pytest.mark.parametrize(("make", "workers"), [(memory_dataset, 0), (file_dataset, 0), (file_dataset, 2)])
def test_iterate_gives_the_batches_of_batch(make, workers):
    aug = SegAugment(crop=20, mean=HALF, std=HALF)
    stream = SegStream(make(), 4, aug, seed=3, device="cpu", workers=workers)
    batches = list(stream.iterate(2, 6))
    assert len(batches) == 4
    for step, batch in zip(range(2, 6), batches):
        assert equal_batches(batch, stream.batch(step))


@pytest.mark.parametrize("make", [memory_dataset, file_dataset])
def test_rank_slices_differ_and_cover_the_global_batch(make):
    aug = SegAugment(crop=12, mean=HALF, std=HALF)
    ranks = [SegStream(make(), 2, aug, seed=1, rank=r, world_size=2) for r in range(2)]
    whole = SegStream(make(), 4, aug, seed=1)
    for step in (0, 3, 7):
        parts = [stream.indices.batch(step) for stream in ranks]
        assert not torch.equal(parts[0], parts[1])
        assert torch.equal(torch.cat(parts), whole.indices.batch(step))
        assert not torch.equal(ranks[0].batch(step)[0], ranks[1].batch(step)[0])
    if make is file_dataset:  # file views are seeded by the position in the global batch
        assert equal_batches([torch.cat(t) for t in zip(*(s.batch(4) for s in ranks))], whole.batch(4))


def test_eval_batches_in_dataset_order():
    dataset = memory_dataset(n=7)
    batches = list(eval_batches(dataset, 3, "cpu"))
    assert [len(x) for x, _ in batches] == [3, 3, 1]
    images, masks = dataset.tensors
    torch.testing.assert_close(torch.cat([x for x, _ in batches]), normalize_images(images))
    assert torch.equal(torch.cat([y for _, y in batches]), masks.long())
    files = list(eval_batches(file_dataset(), 3, "cpu"))
    assert [tuple(x.shape[-2:]) for x, _ in files] == SIZES and all(len(x) == 1 for x, _ in files)
    assert all(torch.equal(y[0], m.long()) for (_, y), (_, m) in zip(files, FILE_SAMPLES))
    with pytest.raises(ConfigError):
        next(eval_batches(dataset, 0))
