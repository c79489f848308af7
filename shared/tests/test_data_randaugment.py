"""Batched RandAugment (mixlab.data.randaugment) against torchvision.transforms.v2.functional, image by image.

Colour ops must match torchvision bit for bit. Geometric ops are compared with a bound on the share of differing
pixels, GEOMETRIC_TOLERANCE: both sides build the same float32 sampling grid and use grid_sample's nearest mode,
but the matrices come from float64 trigonometry in torch here and in Python's math there, and the grid from a
different matmul, so a last-bit difference can flip a sampling position that sits on a half-pixel tie (shears of
0.01·k on half-integer coordinates hit ties). On the CPU of this repo's CI the outputs are identical; any
convention error (centre, sign, truncation, rounding, fill) changes far more than 0.5% of the pixels.

Speed check, run by hand (not a test): ``uv run --frozen python shared/tests/test_data_randaugment.py``.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.data.randaugment import (
    GEOMETRIC_OPS,
    OPS,
    SIGNED_OPS,
    _apply_op,
    _apply_round,
    _draw,
    batched_randaugment,
    magnitude_table,
)
from mixlab.data.transforms import build_batch_transform
from mixlab.errors import ConfigError
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

GEOMETRIC_TOLERANCE = 0.005  # share of pixels (over the batch) allowed to differ for a geometric op
NEAREST = InterpolationMode.NEAREST


def sample_images(batch: int = 12, height: int = 20, width: int = 24, seed: int = 0) -> torch.Tensor:
    """Noise, smooth images, low-contrast ones, a constant channel, a constant image: every op's edge cases."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (max(batch, 8), 3, height, width), generator=g, dtype=torch.uint8)
    smooth = F.interpolate(torch.rand(4, 3, 5, 6, generator=g), size=(height, width), mode="bilinear")
    x[:4] = (smooth * 255).to(torch.uint8)
    x[4:6] = x[4:6] // 5 + 90
    x[6, 1] = 17
    x[7] = 255
    return x[:batch].contiguous()


def reference_op(image: torch.Tensor, op: str, m: float, fill: int) -> torch.Tensor:
    """torchvision's RandAugment op with signed magnitude ``m`` (its ``_apply_image_or_video_transform``)."""
    f = [float(fill)]
    if op == "Identity":
        return image
    if op == "ShearX":
        return TF.affine(
            image,
            angle=0.0,
            translate=[0, 0],
            scale=1.0,
            shear=[math.degrees(math.atan(m)), 0.0],
            interpolation=NEAREST,
            fill=f,
            center=[0, 0],
        )
    if op == "ShearY":
        return TF.affine(
            image,
            angle=0.0,
            translate=[0, 0],
            scale=1.0,
            shear=[0.0, math.degrees(math.atan(m))],
            interpolation=NEAREST,
            fill=f,
            center=[0, 0],
        )
    if op == "TranslateX":
        return TF.affine(
            image, angle=0.0, translate=[int(m), 0], scale=1.0, shear=[0.0, 0.0], interpolation=NEAREST, fill=f
        )
    if op == "TranslateY":
        return TF.affine(
            image, angle=0.0, translate=[0, int(m)], scale=1.0, shear=[0.0, 0.0], interpolation=NEAREST, fill=f
        )
    if op == "Rotate":
        return TF.rotate(image, angle=m, interpolation=NEAREST, fill=f)
    if op == "Brightness":
        return TF.adjust_brightness(image, 1.0 + m)
    if op == "Color":
        return TF.adjust_saturation(image, 1.0 + m)
    if op == "Contrast":
        return TF.adjust_contrast(image, 1.0 + m)
    if op == "Sharpness":
        return TF.adjust_sharpness(image, 1.0 + m)
    if op == "Posterize":
        return TF.posterize(image, int(m))
    if op == "Solarize":
        return TF.solarize(image, 255 * m)
    if op == "AutoContrast":
        return TF.autocontrast(image)
    assert op == "Equalize"
    return TF.equalize(image)


def assert_matches(out: torch.Tensor, expected: torch.Tensor, geometric: bool, context: str) -> None:
    assert out.dtype == torch.uint8 and out.shape == expected.shape
    differing = (out != expected).any(dim=1).float().mean().item()
    if geometric:
        assert differing <= GEOMETRIC_TOLERANCE, f"{context}: {differing:.2%} of the pixels differ"
    else:
        assert differing == 0, f"{context}: {differing:.2%} of the pixels differ"


@pytest.mark.parametrize("op", OPS)
def test_each_op_matches_torchvision(op):
    x = sample_images()
    table = magnitude_table(31, x.shape[-2], x.shape[-1])
    levels = (0, 4, 13, 22, 30) if table[OPS.index(op)].any() else (0,)
    for level in levels:
        for sign in (1.0, -1.0) if op in SIGNED_OPS else (1.0,):
            m = sign * float(table[OPS.index(op), level])
            out = _apply_op(x, op, m, fill=77)
            expected = torch.stack([reference_op(image, op, m, 77) for image in x])
            assert_matches(out, expected, op in GEOMETRIC_OPS, f"{op} level {level} magnitude {m}")


@pytest.mark.parametrize("op", ["ShearX", "Rotate", "TranslateY", "Color", "Sharpness", "Solarize"])
def test_per_image_magnitudes_and_odd_sizes(op):
    """Different magnitudes in one call, off-bin values, a non-square odd-sized batch."""
    x = sample_images(batch=8, height=17, width=26, seed=3)
    g = torch.Generator().manual_seed(1)
    scale = {"ShearX": 0.3, "Rotate": 30.0, "TranslateY": 9.0, "Solarize": 1.0}.get(op, 0.9)
    m = torch.rand(8, generator=g, dtype=torch.float64) * scale
    m = m if op == "Solarize" else m * torch.where(torch.arange(8) % 2 == 0, 1.0, -1.0).double()
    out = _apply_op(x, op, m, fill=5)
    expected = torch.stack([reference_op(image, op, float(v), 5) for image, v in zip(x, m)])
    assert_matches(out, expected, op in GEOMETRIC_OPS, op)


def test_full_pipeline_matches_torchvision_with_the_same_draws():
    """Three rounds of mixed ops with random magnitudes equal torchvision's ops applied image by image."""
    x = sample_images(batch=40, seed=5)
    generator = torch.Generator().manual_seed(11)
    state = generator.get_state()
    out = batched_randaugment(x, num_ops=3, magnitude=10, random_magnitude=True, fill=128, generator=generator)
    generator.set_state(state)
    ops, levels, negate = _draw(len(x), 3, 10, True, generator, x.device)
    table = magnitude_table(31, x.shape[-2], x.shape[-1])
    expected = []
    for i, image in enumerate(x):
        for r in range(3):
            op = OPS[int(ops[r, i])]
            m = float(table[ops[r, i], levels[r, i]])
            m = -m if op in SIGNED_OPS and bool(negate[r, i]) else m
            image = reference_op(image, op, m, 128)
        expected.append(image)
    assert len(set(ops.flatten().tolist())) == len(OPS)  # every op was exercised, several in each round
    assert_matches(out, torch.stack(expected), True, "pipeline")


def test_dtype_shape_device_and_input_preserved():
    x = sample_images(batch=6)
    before = x.clone()
    out = batched_randaugment(x, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape and out.device == x.device
    assert torch.equal(x, before)
    assert not torch.equal(out, x)
    assert batched_randaugment(x[:0]).shape == (0, 3, 20, 24)
    assert torch.equal(batched_randaugment(x, num_ops=0), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_output_stays_on_device_and_matches_cpu_colour_ops():
    x = sample_images(batch=16)
    out = batched_randaugment(x.cuda(), generator=torch.Generator().manual_seed(0))
    assert out.is_cuda and out.dtype == torch.uint8 and out.shape == x.shape
    for op in ("Posterize", "Solarize", "AutoContrast", "Equalize", "Brightness"):
        assert torch.equal(
            _apply_op(x.cuda(), op, 4.0 if op == "Posterize" else 0.4).cpu(),
            _apply_op(x, op, 4.0 if op == "Posterize" else 0.4),
        )


def test_seeded_generator_reproducible_without_touching_global_rng():
    x = sample_images(batch=16)
    global_state = torch.get_rng_state()
    a = batched_randaugment(x, generator=torch.Generator().manual_seed(7))
    b = batched_randaugment(x, generator=torch.Generator().manual_seed(7))
    c = batched_randaugment(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)
    d = batched_randaugment(x)
    torch.manual_seed(3)
    assert torch.equal(batched_randaugment(x), d)


def test_ops_are_drawn_per_image():
    """A batch of one repeated image gives many different outputs: op, sign and magnitude vary per image."""
    x = sample_images(batch=1).expand(64, -1, -1, -1).contiguous()
    out = batched_randaugment(x, num_ops=1, generator=torch.Generator().manual_seed(0))
    distinct = {tuple(image.flatten().tolist()) for image in out}
    assert len(distinct) >= 20


def test_draws_follow_the_random_magnitude_rule():
    g = torch.Generator().manual_seed(0)
    ops, levels, negate = _draw(5000, 2, 10, True, g, torch.device("cpu"))
    assert ops.min() == 0 and ops.max() == len(OPS) - 1
    assert torch.bincount(ops.flatten(), minlength=len(OPS)).min() > 10000 / len(OPS) * 0.8
    assert levels.min() == 0 and levels.max() == 10  # uniform on 0..magnitude, both ends included
    assert torch.bincount(levels.flatten()).min() > 10000 / 11 * 0.8
    assert 0.45 < negate.float().mean() < 0.55
    _, fixed, _ = _draw(100, 2, 7, False, g, torch.device("cpu"))
    assert (fixed == 7).all()


def test_geometric_ops_at_magnitude_zero_are_the_identity():
    x = sample_images()
    for op in GEOMETRIC_OPS:
        assert torch.equal(_apply_op(x, op, 0.0), x), op
        assert torch.equal(_apply_op(x, op, -0.0), x), op
    op = torch.tensor([OPS.index(name) for name in GEOMETRIC_OPS] * 3)[: len(x)]
    assert torch.equal(_apply_round(x, op, torch.zeros(len(x), dtype=torch.float64), 128), x)


def test_fill_covers_the_uncovered_pixels():
    x = sample_images(batch=4)
    out = _apply_op(x, "TranslateX", 5.0, fill=37)
    assert (out[..., :5] == 37).all() and torch.equal(out[..., 5:], x[..., :-5])
    out = _apply_op(x, "TranslateY", -3.0, fill=(1, 2, 3))
    assert torch.equal(
        out[..., -3:, :], torch.tensor([1, 2, 3], dtype=torch.uint8).view(1, 3, 1, 1).expand(4, 3, 3, 24)
    )
    assert torch.equal(out[..., :-3, :], x[..., 3:, :])


def test_invalid_inputs_raise_config_error():
    x = sample_images(batch=2)
    with pytest.raises(ConfigError):
        batched_randaugment(x.float())
    with pytest.raises(ConfigError):
        batched_randaugment(x[:, :1])
    with pytest.raises(ConfigError):
        batched_randaugment(x, magnitude=31)
    with pytest.raises(ConfigError):
        batched_randaugment(x, num_ops=-1)
    with pytest.raises(ConfigError):
        batched_randaugment(x, fill=300)
    with pytest.raises(ConfigError):
        _apply_op(x, "Invert", 0.0)


def test_batch_transform_step():
    x = sample_images(batch=4)
    transform = build_batch_transform("randaugment_batched", randaugment_batched={"magnitude": 5})
    out = transform(x, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, batched_randaugment(x, magnitude=5, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ConfigError):
        build_batch_transform("normalize+randaugment_batched", mean=(0.5,) * 3, std=(0.5,) * 3)


def _benchmark() -> None:
    """Batched vs torchvision's per-image loop on FixMatch's strong batch (448 CIFAR-sized images), on CPU."""
    import time

    from mixlab.data.transforms import randaugment

    x = torch.randint(0, 256, (448, 3, 32, 32), dtype=torch.uint8)

    def seconds(function, repeats: int) -> float:
        function()
        start = time.perf_counter()
        for _ in range(repeats):
            function()
        return (time.perf_counter() - start) / repeats

    loop = seconds(lambda: randaugment(x, num_ops=2, magnitude=10, random_magnitude=True), 3)
    batched = seconds(lambda: batched_randaugment(x, num_ops=2, magnitude=10), 20)
    print(
        f"448 images 32x32, {torch.get_num_threads()} threads: per-image loop {loop * 1e3:.1f} ms, "
        f"batched {batched * 1e3:.1f} ms, speed-up {loop / batched:.1f}x"
    )


if __name__ == "__main__":
    _benchmark()
