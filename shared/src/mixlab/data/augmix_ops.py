"""AugMix (Hendrycks et al. 2020) as MixMo used it for the CIFAR-100-C experiments (spec mixmo-mixshare §3.9).

Thesis settings: severity 3, mixture width 3, chain depth 4, ops equalize, posterize, rotate, solarize, shear_x,
shear_y, translate_x, translate_y (none overlaps a CIFAR-C corruption), chain weights ``w ~ Dir(1, 1, 1)``, skip
weight ``m ~ Beta(1, 1)``, output ``(1 - m)·x + m·Σ_j w_j·chain_j(x)``. The Jensen-Shannon consistency loss is not
used, so one augmented view per image is returned. The official-code deviations are options: ``random_depth=True``
(depth uniform in 1..depth) and the extra ops ``identity``, ``invert`` (and ``autocontrast`` from AugMix's list).

Each op follows the reference ``augmentations.py`` of AugMix: a level ``U(0.1, severity)`` scaled per op and a
random sign for the geometric ones, applied to uint8 images (rounded after every op, as PIL does). The ops run
batched: every chain step draws one op per image and each op is applied to its images at once. Equalize,
autocontrast and invert are torchvision.transforms.v2.functional calls; posterize and solarize are their v2
definitions with per-image parameters; rotate/shear/translate are one batched bilinear affine warp whose matrices
equal v2's ``rotate``/``affine`` (tests check every op against the per-image v2.functional call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from mixlab.data import _random
from mixlab.errors import ConfigError
from mixlab.transfer import to_device

THESIS_OPS: tuple[str, ...] = (
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)

#: op(images uint8 (n, 3, H, W), level (n,) in [0.1, severity], sign (n,) of ±1) -> uint8 (n, 3, H, W)
Op = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _int_parameter(level: torch.Tensor, maxval: float) -> torch.Tensor:
    """AugMix's ``int(level * maxval / 10)`` (truncation; levels are positive)."""
    return torch.floor(level * maxval / 10.0)


def warp(images: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Bilinear warp with zero fill; ``inverse`` (n, 2, 3) maps output to input coordinates.

    Coordinates are continuous with the origin at the image's top-left corner and pixel centres at ``i + 0.5``
    (the convention of PIL's ``transform`` and of torchvision's affine grid).
    """
    n, _, h, w = images.shape
    device = images.device
    ys = torch.arange(h, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=device, dtype=torch.float32) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], dim=-1)  # (H, W, 3)
    source = torch.einsum("nij,hwj->nhwi", inverse.to(device=device, dtype=torch.float32), points)
    scale = torch.tensor([2.0 / w, 2.0 / h], device=device)
    sampled = F.grid_sample(
        images.float(), source * scale - 1.0, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return sampled.round_().clamp_(0, 255).to(torch.uint8)


def _matrices(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, e: torch.Tensor, f: torch.Tensor
) -> torch.Tensor:
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1)], -2)


def _equalize(images: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    return TF.equalize(images)


def _autocontrast(images: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    return TF.autocontrast(images)


def _invert(images: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    return TF.invert(images)


def _identity(images: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    return images


def posterize_bits(level: torch.Tensor) -> torch.Tensor:
    return 4 - _int_parameter(level, 4).long()


def _posterize(images: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    bits = posterize_bits(level)  # v2 posterize: keep the `bits` most significant bits
    mask = (((1 << bits) - 1) << (8 - bits)).to(torch.uint8)
    return images & to_device(mask.view(-1, 1, 1, 1), images.device)


def solarize_threshold(level: torch.Tensor) -> torch.Tensor:
    return 256 - _int_parameter(level, 256)


def _solarize(images: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    threshold = to_device(solarize_threshold(level).view(-1, 1, 1, 1), images.device)
    return torch.where(images.float() >= threshold, 255 - images, images)  # v2 solarize, per-image threshold


def rotate_degrees(level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    return _int_parameter(level, 30) * sign


def _rotate(images: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    h, w = images.shape[-2:]
    angle = -torch.deg2rad(rotate_degrees(level, sign).double())  # counter-clockwise, about the centre
    cos, sin = torch.cos(angle), torch.sin(angle)
    cx, cy = w / 2.0, h / 2.0
    inverse = _matrices(cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)
    return warp(images, inverse)


def shear_factor(level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    return level * 0.3 / 10.0 * sign


def _shear(images: torch.Tensor, level: torch.Tensor, sign: torch.Tensor, axis: int) -> torch.Tensor:
    s = shear_factor(level, sign).double()
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    inverse = _matrices(one, s, zero, zero, one, zero) if axis == 0 else _matrices(one, zero, zero, s, one, zero)
    return warp(images, inverse)  # PIL's AFFINE (1, s, 0, 0, 1, 0): shear about the top-left corner


def translate_pixels(level: torch.Tensor, sign: torch.Tensor, side: int) -> torch.Tensor:
    return _int_parameter(level, side / 3.0) * sign


def _translate(images: torch.Tensor, level: torch.Tensor, sign: torch.Tensor, axis: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    t = translate_pixels(level, sign, w if axis == 0 else h).double()
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    inverse = _matrices(one, zero, t, zero, one, zero) if axis == 0 else _matrices(one, zero, zero, zero, one, t)
    return warp(images, inverse)  # input = output + t: the content moves by -t (PIL's AFFINE (1, 0, t, 0, 1, 0))


OPS: dict[str, Op] = {
    "equalize": _equalize,
    "posterize": _posterize,
    "rotate": _rotate,
    "solarize": _solarize,
    "shear_x": lambda x, level, sign: _shear(x, level, sign, 0),
    "shear_y": lambda x, level, sign: _shear(x, level, sign, 1),
    "translate_x": lambda x, level, sign: _translate(x, level, sign, 0),
    "translate_y": lambda x, level, sign: _translate(x, level, sign, 1),
    "autocontrast": _autocontrast,
    "invert": _invert,
    "identity": _identity,
}


def augmix(
    x: torch.Tensor,
    severity: float = 3.0,
    width: int = 3,
    depth: int = 4,
    alpha: float = 1.0,
    ops: Sequence[str] = THESIS_OPS,
    random_depth: bool = False,
    mixing_weight: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One AugMix view of each image of a uint8 batch (module docstring); returns uint8 of the same shape.

    ``alpha`` is the concentration of both ``Dir(alpha, ..., alpha)`` (chain weights) and ``Beta(alpha, alpha)``
    (skip weight ``m``). ``mixing_weight`` fixes ``m`` instead (0 returns ``x`` unchanged, 1 only the chains).
    """
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ConfigError("augmix works on uint8 (B, C, H, W) batches; apply it before normalize.")
    unknown = [name for name in ops if name not in OPS]
    if unknown or not ops:
        raise ConfigError(f"unknown AugMix op(s) {unknown}; known: {', '.join(OPS)}.")
    if width < 1 or depth < 1 or severity < 0.1:
        raise ConfigError(f"AugMix needs width >= 1, depth >= 1, severity >= 0.1; got {width}, {depth}, {severity}.")
    batch, device = x.shape[0], x.device
    weights = _random.dirichlet(torch.full((batch, width), float(alpha), device=device), generator)
    if mixing_weight is None:
        m = _random.beta(alpha, alpha, (batch,), generator, device)
    else:
        m = torch.full((batch,), float(mixing_weight), device=device)
    functions = [OPS[name] for name in ops]
    mixture = torch.zeros(x.shape, dtype=torch.float32, device=device)
    for j in range(width):
        chain_depth = (
            _random.randint(1, depth + 1, (batch,), generator, device)
            if random_depth
            else torch.full((batch,), depth, device=device)
        )
        image = x
        for step in range(depth):
            choice = _random.randint(0, len(functions), (batch,), generator, device)
            level = 0.1 + (severity - 0.1) * _random.rand((batch,), generator, device)  # U(0.1, severity)
            sign = torch.where(_random.rand((batch,), generator, device) > 0.5, -1.0, 1.0)
            active = step < chain_depth
            updated = image.clone()
            for k, function in enumerate(functions):
                chosen = (choice == k) & active
                if device.type == "cpu":  # apply each op to its own images only
                    index = chosen.nonzero().squeeze(1)
                    if index.numel():
                        updated[index] = function(image[index], level[index], sign[index])
                else:  # on accelerators a full-batch op + select avoids a host sync per op
                    updated = torch.where(chosen[:, None, None, None], function(image, level, sign), updated)
            image = updated
        mixture += weights[:, j].view(-1, 1, 1, 1) * image.float()
    m = m.view(-1, 1, 1, 1)
    return ((1.0 - m) * x.float() + m * mixture).round_().clamp_(0, 255).to(torch.uint8)
