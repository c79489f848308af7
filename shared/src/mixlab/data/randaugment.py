"""RandAugment (Cubuk et al. 2020) for a whole uint8 batch at once, with FixMatch's random magnitude.

FixMatch's strong view augments ``(1 + mu)·B`` images per step (448 with mu=7); torchvision's ``v2.RandAugment``
works on one image per call, so a per-image loop dominated the step. Here every image of the batch draws its own
ops, signs and magnitudes, and each round applies each op once to the images that chose it: the five geometric ops
share one batched affine warp with per-image matrices, the colour ops are torchvision's tensor kernels with
per-image factors. One host sync per round (the per-op image counts); no Python loop over images.

Semantics (torchvision 0.2x ``v2.RandAugment``, ``interpolation=NEAREST``):

* ops, drawn uniformly and independently per image and per round: Identity, ShearX, ShearY, TranslateX,
  TranslateY, Rotate, Brightness, Color, Contrast, Sharpness, Posterize, Solarize, AutoContrast, Equalize;
* magnitude level ``m`` indexes ``num_magnitude_bins`` bins over torchvision's ranges: shear ``[0, 0.3]`` (as
  ``atan`` degrees, centre at the top-left corner), translate ``[0, 150/331·W]`` / ``[0, 150/331·H]`` pixels
  (truncated to an int), rotate ``[0, 30]`` degrees (about the image centre), brightness/color/contrast/sharpness
  factor ``1 + [0, 0.9]``, posterize ``round(8 - 4·m/(bins-1))`` bits, solarize threshold ``255·(1 - m/(bins-1))``;
  AutoContrast, Equalize and Identity have no magnitude;
* the nine signed ops (shears, translates, rotate, the four blends) negate their magnitude with probability 1/2;
* ``random_magnitude=True``: each image draws a level uniformly from ``{0, ..., magnitude}`` (inclusive)
  independently in every round (FixMatch's reference draws a magnitude per op); ``False``: level ``magnitude``;
* pixels that a geometric op uncovers take ``fill`` (torchvision's ``RandAugment`` default is 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mixlab.data import _random
from mixlab.errors import ConfigError
from mixlab.transfer import constant, to_device

OPS: tuple[str, ...] = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)
#: Contiguous in OPS, so after sorting the images by op they form one slice (one warp per round).
GEOMETRIC_OPS: tuple[str, ...] = OPS[1:6]
SIGNED_OPS: frozenset[str] = frozenset(OPS[1:10])
_OP_ID = {name: index for index, name in enumerate(OPS)}

Fill = int | Sequence[int]


def magnitude_table(num_bins: int, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``float64 (len(OPS), num_bins)``: the unsigned magnitude of every op at every level, as torchvision builds it.

    The bins are torchvision's float32 ``linspace``s (posterize: its rounded int bits); ops without a magnitude
    have a row of zeros. Values are widened to float64 exactly as torchvision's ``float(magnitudes[m])`` does.
    """

    def linspace(end: float) -> torch.Tensor:
        return torch.linspace(0.0, end, num_bins)

    rows = {
        "ShearX": linspace(0.3),
        "ShearY": linspace(0.3),
        "TranslateX": linspace(150.0 / 331.0 * width),
        "TranslateY": linspace(150.0 / 331.0 * height),
        "Rotate": linspace(30.0),
        "Brightness": linspace(0.9),
        "Color": linspace(0.9),
        "Contrast": linspace(0.9),
        "Sharpness": linspace(0.9),
        "Posterize": (8 - (torch.arange(num_bins) / ((num_bins - 1) / 4))).round().int(),
        "Solarize": torch.linspace(1.0, 0.0, num_bins),
    }
    table = torch.zeros(len(OPS), num_bins, dtype=torch.float64)
    for name, row in rows.items():
        table[_OP_ID[name]] = row.to(torch.float64)
    return to_device(table, device)


# --------------------------------------------------------------------------------------------- geometric ops


def _inverse_affine(
    center: tuple[torch.Tensor, torch.Tensor],
    angle: torch.Tensor,
    translate: tuple[torch.Tensor, torch.Tensor],
    shear: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """torchvision's ``_get_inverse_affine_matrix`` (scale 1) for per-image float64 parameters -> ``(n, 2, 3)``.

    Same formula and evaluation order as torchvision's Python floats, so the float32 matrices agree up to the last
    bit of the trigonometric functions. ``center`` is relative to the image centre, angles are in degrees.
    """
    rot = torch.deg2rad(angle)
    sx, sy = torch.deg2rad(shear[0]), torch.deg2rad(shear[1])
    cx, cy = center
    cos_sy = torch.cos(sy)
    tan_sx = torch.tan(sx)
    rot_minus_sy = rot - sy
    cx_plus_tx, cy_plus_ty = cx + translate[0], cy + translate[1]
    a = torch.cos(rot_minus_sy) / cos_sy
    b = -(a * tan_sx + torch.sin(rot))
    c = torch.sin(rot_minus_sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = cx - m0 * cx_plus_tx - m1 * cy_plus_ty
    m5 = cy - m3 * cx_plus_tx - m4 * cy_plus_ty
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=-1).view(-1, 2, 3)


def _geometric_theta(op: torch.Tensor, magnitude: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-image inverse matrices ``float32 (n, 2, 3)`` for op ids in GEOMETRIC_OPS and signed float64 magnitudes.

    Mirrors torchvision's RandAugment calls: ``affine(shear=[degrees(atan(m)), 0], center=[0, 0])`` (ShearY: the
    second shear), ``affine(translate=[int(m), 0])`` and ``rotate(angle=m)``, i.e. an affine of ``-(m mod 360)``
    degrees about the image centre.
    """
    zero = torch.zeros_like(magnitude)

    def where(name: str, value: torch.Tensor) -> torch.Tensor:
        return torch.where(op == _OP_ID[name], value, zero)

    shear_degrees = torch.rad2deg(torch.atan(magnitude))
    is_shear = (op == _OP_ID["ShearX"]) | (op == _OP_ID["ShearY"])
    center = (torch.where(is_shear, zero - width * 0.5, zero), torch.where(is_shear, zero - height * 0.5, zero))
    matrix = _inverse_affine(
        center,
        where("Rotate", -torch.remainder(magnitude, 360.0)),
        (where("TranslateX", torch.trunc(magnitude)), where("TranslateY", torch.trunc(magnitude))),
        (where("ShearX", shear_degrees), where("ShearY", shear_degrees)),
    )
    return matrix.to(torch.float32)


def _warp(x: torch.Tensor, theta: torch.Tensor, fill: Fill) -> torch.Tensor:
    """Nearest-neighbour warp of uint8 ``x`` by per-image inverse matrices, as torchvision's tensor affine does.

    torchvision's ``_affine_grid`` (pixel-centred base grid times the matrix, normalised afterwards) and
    ``_apply_grid_transform`` batched. torchvision marks the covered pixels by warping an extra ones channel;
    here the image is warped as ``x + 1`` instead (nearest sampling copies values, zero padding gives 0), so a
    0 is exactly an uncovered pixel, without the extra channel.
    """
    n, c, h, w = x.shape
    device = x.device
    base = torch.empty(1, h, w, 3, dtype=torch.float32, device=device)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=device))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    rescaled = to_device(theta, device).transpose(1, 2) / constant((0.5 * w, 0.5 * h), theta.dtype, device)
    # one (H·W, 3) x (3, 2n) product instead of n tiny batched ones (same dot products, several times faster)
    grid = base.view(h * w, 3).mm(rescaled.permute(1, 0, 2).reshape(3, 2 * n)).view(h, w, n, 2).permute(2, 0, 1, 3)
    warped = F.grid_sample(x.float().add_(1.0), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    uncovered = warped[:, :1] == 0  # all channels share the sampling position
    if isinstance(fill, int | float):  # fill rounded as torchvision rounds the warped float image
        warped = warped.sub_(1.0).masked_fill_(uncovered, float(round(fill)))
    else:
        values = constant([float(round(v)) for v in fill], torch.float32, device).view(1, -1, 1, 1)
        warped = torch.where(uncovered, values, warped.sub_(1.0))
    return warped.to(torch.uint8)  # sampled values are the input's integers (+1 -1): no rounding needed


# ------------------------------------------------------------------------------------------------ colour ops


def _factor(magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ratio, 1 - ratio)`` as float32 ``(n, 1, 1, 1)``, from ``ratio = 1 + m`` in float64 like torchvision's."""
    ratio = 1.0 + magnitude
    return ratio.float().view(-1, 1, 1, 1), (1.0 - ratio).float().view(-1, 1, 1, 1)


def _blend(image: torch.Tensor, degenerate: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend``: ``image·r + degenerate·(1 - r)`` clamped, truncated to uint8.

    ``addcmul`` computes the second product with the fused multiply-add of torchvision's ``add_(alpha=...)``, so
    values that land next to an integer truncate the same way.
    """
    ratio, alpha = _factor(magnitude)
    return torch.addcmul(image.mul(ratio), degenerate, alpha).clamp_(0, 255).to(torch.uint8)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """Floored ITU-R 601 luma ``float32 (n, 1, H, W)`` (torchvision's ``_rgb_to_grayscale_image`` then floor)."""
    r, g, b = x.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3).floor_()


def _brightness(x: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    ratio, _ = _factor(magnitude)
    return x.mul(ratio).clamp_(0, 255).to(torch.uint8)


def _color(x: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grayscale(x), magnitude)


def _contrast(x: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grayscale(x).mean(dim=(-3, -2, -1), keepdim=True), magnitude)


def _sharpness(x: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Blend with the 3x3 smoothed image (weights 1, centre 5, /13) inside a one-pixel border (kept as is).

    torchvision convolves in float32 and rounds. The smoothed value is ``s/13`` for the integer ``s = box sum +
    4·centre``, never within 1/26 of a half-integer, so that rounding equals the exact ``floor((s + 6) / 13)``
    computed here from shifted sums (a depthwise conv is several times slower on CPU).
    """
    _, _, h, w = x.shape
    if h <= 2 or w <= 2:
        return x.clone()
    output = x.to(torch.float32)
    rows = output[..., :-2, :] + output[..., 1:-1, :] + output[..., 2:, :]
    inner = output[..., 1:-1, 1:-1]
    total = (rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]).add_(inner, alpha=4.0)
    blurred = total.add_(6.0).div_(13.0).floor_()
    _, alpha = _factor(magnitude)
    inner.copy_(torch.addcmul(inner, blurred.sub_(inner), alpha))
    return output.clamp_(0, 255).to(torch.uint8)


def _posterize(x: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Keep the ``bits`` high bits of every value (``bits`` 8 is the identity)."""
    bits = magnitude.to(torch.int64).clamp(0, 8).view(-1, 1, 1, 1)
    mask = 256 - torch.bitwise_left_shift(torch.ones_like(bits), 8 - bits)  # ((1 << bits) - 1) << (8 - bits)
    return x & mask.to(torch.uint8)


def _solarize(x: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Invert the values ``>= 255·m`` (threshold rounded to float32 as torchvision's type promotion does).

    For integer values ``v >= t`` iff ``v >= ceil(t)``; inverting is ``v xor 255`` (xor is much faster than a
    uint8 ``where`` on CPU).
    """
    threshold = torch.ceil((255 * magnitude).float()).clamp_(0, 255).to(torch.uint8).view(-1, 1, 1, 1)
    return x ^ (x >= threshold).to(torch.uint8).neg_()


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to [0, 255] (constant channels unchanged)."""
    image = x.to(torch.float32)
    minimum = image.amin(dim=(-2, -1), keepdim=True)
    maximum = image.amax(dim=(-2, -1), keepdim=True)
    constant = maximum == minimum
    inv_scale = maximum.sub_(minimum).mul_(1.0 / 255)
    minimum = minimum.masked_fill(constant, 0.0)
    inv_scale = inv_scale.masked_fill(constant, 1.0)
    return image.sub_(minimum).div_(inv_scale).clamp_(0, 255).to(torch.uint8)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL's histogram equalisation per image and channel (torchvision's uint8 kernel, batched histograms)."""
    flat = x.flatten(start_dim=-2).to(torch.long)  # (n, c, H·W)
    hist = flat.new_zeros(x.shape[:-2] + (256,), dtype=torch.int32)
    hist.scatter_add_(-1, flat, hist.new_ones(1).expand_as(flat))
    cum_hist = hist.cumsum(dim=-1)
    last = cum_hist.argmax(dim=-1, keepdim=True)  # the largest value present
    step = (flat.shape[-1] - hist.gather(-1, last)).div_(255, rounding_mode="floor")
    lut = (cum_hist[..., :-1] + step // 2).div_(step.clamp(min=1), rounding_mode="floor").clamp_(0, 255)
    lut = torch.cat([lut.new_zeros(lut.shape[:-1] + (1,)), lut], dim=-1).to(torch.uint8)
    equalized = lut.gather(-1, flat).view_as(x)
    return torch.where(step.unsqueeze(-1) != 0, equalized, x)


_COLOUR_OPS = {
    "Brightness": _brightness,
    "Color": _color,
    "Contrast": _contrast,
    "Sharpness": _sharpness,
    "Posterize": _posterize,
    "Solarize": _solarize,
    "AutoContrast": lambda x, magnitude: _autocontrast(x),
    "Equalize": lambda x, magnitude: _equalize(x),
}


def _apply_op(x: torch.Tensor, op_name: str, magnitude: float | torch.Tensor, fill: Fill = 128) -> torch.Tensor:
    """Apply one op to every image of ``x`` with a signed magnitude value (a float, or one per image).

    ``magnitude`` is what torchvision's ``RandAugment._apply_image_or_video_transform`` receives: the bin value
    after the random sign (posterize: the bits; solarize: the threshold / 255). Exposed for the tests.
    """
    if op_name not in _OP_ID:
        raise ConfigError(f"unknown RandAugment op {op_name!r}; known: {', '.join(OPS)}.")
    n, _, h, w = x.shape
    values = torch.as_tensor(magnitude, dtype=torch.float64, device=x.device).expand(n)
    if op_name == "Identity":
        return x.clone()
    if op_name in GEOMETRIC_OPS:
        op = torch.full((n,), _OP_ID[op_name], dtype=torch.long, device=x.device)
        return _warp(x, _geometric_theta(op, values, h, w), fill)
    return _COLOUR_OPS[op_name](x, values)


def _apply_round(
    x: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor, fill: Fill, counts: list[int] | None = None
) -> torch.Tensor:
    """One RandAugment round: image ``i`` gets op ``OPS[op[i]]`` with signed magnitude ``magnitude[i]``.

    The images are sorted by op (one gather), every op works on its contiguous slice (the geometric ops on one
    slice, one warp), and the results go back to their places with one more gather (the inverse permutation).
    ``counts`` (images per op, known on the host) spares the read-back of ``bincount(op)`` from the device.
    """
    order = torch.argsort(op, stable=True)
    if counts is None:
        counts = torch.bincount(op, minlength=len(OPS)).tolist()  # a device read-back when op lives there
    starts = [0]
    for count in counts:
        starts.append(starts[-1] + count)
    images, op, magnitude = x.index_select(0, order), op[order], magnitude[order]

    def span(first: str, last: str) -> slice:
        return slice(starts[_OP_ID[first]], starts[_OP_ID[last] + 1])

    pieces = [images[span("Identity", "Identity")]]
    geometric = span(GEOMETRIC_OPS[0], GEOMETRIC_OPS[-1])
    if geometric.stop > geometric.start:
        theta = _geometric_theta(op[geometric], magnitude[geometric], x.shape[-2], x.shape[-1])
        pieces.append(_warp(images[geometric], theta, fill))
    for name, function in _COLOUR_OPS.items():
        part = span(name, name)
        if part.stop > part.start:
            pieces.append(function(images[part], magnitude[part]))
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)
    return torch.cat(pieces).index_select(0, inverse)  # a gather: much faster than index_copy_ on uint8


def _draw(
    n: int,
    num_ops: int,
    magnitude: int,
    random_magnitude: bool,
    generator: torch.Generator | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random choices, ``(num_ops, n)`` each: op ids into :data:`OPS`, magnitude levels, negate flags.

    Drawn in this order (ops, then levels if random, then signs) so a seeded generator fixes the output. The op ids
    are drawn and returned on the CPU (the CPU's global RNG, or the generator's): how many images each op gets is
    then known on the host, which splits the batch by op without reading anything back from the device.
    """
    ops = _random.randint(0, len(OPS), (num_ops, n), generator, torch.device("cpu"))
    if random_magnitude:
        levels = _random.randint(0, magnitude + 1, (num_ops, n), generator, device)
    else:
        levels = torch.full((num_ops, n), magnitude, dtype=torch.long, device=device)
    negate = _random.rand((num_ops, n), generator, device) <= 0.5  # torchvision: ``torch.rand(()) <= 0.5``
    return ops, levels, negate


def batched_randaugment(
    x: torch.Tensor,
    num_ops: int = 2,
    magnitude: int = 10,
    num_magnitude_bins: int = 31,
    random_magnitude: bool = True,
    fill: Fill = 128,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """RandAugment on a uint8 ``(N, 3, H, W)`` batch, every image with its own ops, signs and magnitudes.

    ``num_ops`` rounds; in each, every image draws an op uniformly from :data:`OPS`, a sign (negative with
    probability 1/2, used by the signed ops) and, with ``random_magnitude``, a level uniformly from
    ``0..magnitude`` (else the level is ``magnitude``); see the module docstring for the magnitude scale.
    Uncovered pixels of the geometric ops take ``fill`` (a value or one per channel). Returns a new uint8 tensor
    on ``x``'s device; the draws come from ``generator`` if given, else from torch's global RNG.
    """
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        dtype = x.dtype if isinstance(x, torch.Tensor) else None
        raise ConfigError(
            f"RandAugment works on uint8 (N, 3, H, W) images (apply it before normalize); got {shape} of dtype {dtype}."
        )
    if not isinstance(num_ops, int) or num_ops < 0:
        raise ConfigError(f"RandAugment num_ops must be a non-negative integer, got {num_ops!r}.")
    if num_magnitude_bins < 2 or not 0 <= magnitude < num_magnitude_bins:
        raise ConfigError(
            f"RandAugment magnitude must lie in 0..{num_magnitude_bins - 1} (num_magnitude_bins "
            f"{num_magnitude_bins} >= 2), got {magnitude}."
        )
    fills = [fill] if isinstance(fill, int | float) else list(fill)
    if len(fills) not in (1, 3) or not all(0 <= v <= 255 for v in fills):
        raise ConfigError(f"RandAugment fill must be one value or three values in [0, 255], got {fill!r}.")
    n, _, height, width = x.shape
    if n == 0 or num_ops == 0:
        return x.clone()
    device = x.device
    table = magnitude_table(num_magnitude_bins, height, width, device)
    signed = to_device(torch.tensor([name in SIGNED_OPS for name in OPS]), device)
    ops, levels, negate = _draw(n, num_ops, magnitude, random_magnitude, generator, device)
    for round_ in range(num_ops):
        counts = torch.bincount(ops[round_], minlength=len(OPS)).tolist()  # on the host: no device read-back
        op = to_device(ops[round_], device)
        value = table[op, levels[round_]]
        value = torch.where(signed[op] & negate[round_], -value, value)
        x = _apply_round(x, op, value, fill, counts)
    return x
