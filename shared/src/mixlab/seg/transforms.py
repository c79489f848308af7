"""Joint image + mask augmentation of semantic segmentation (spec guidedmix §3.3), batched on any device.

One training view is: a random rescale of the whole image by a factor uniform in ``scale_range`` (0.5-2.0, relative
to the image's own size), a random ``crop`` x ``crop`` window of the rescaled image, a horizontal flip with
probability 0.5 and a "slight rotation" of the crop by an angle uniform in ``[-rotate_deg, rotate_deg]``, then the
dataset's normalisation (ImageNet's by default). When the rescaled image is smaller than the crop along an axis, the
window is larger than the image there and the image lands at a uniformly random position inside it: the crop offset
is ``u * (scaled - crop)`` for ``u`` uniform in [0, 1) in both cases (the same formula, negative when padding).

All four steps compose into one affine map per sample, from the output's pixels back to the source image's, so the
whole view is a single :func:`torch.nn.functional.affine_grid` + :func:`~torch.nn.functional.grid_sample`: bilinear
for the (already normalised) image, nearest for the mask. Pixels that come from outside the source image (the
padding of a small rescaled image, the corners a rotation brings in) are 0 in the image (the mean, after
normalisation), :data:`~mixlab.seg.data.dataset.IGNORE_INDEX` in the mask and False in ``valid``: "outside" is
decided once, by the nearest source pixel, for all three; inside, the image's bilinear samples near its edge
replicate the edge pixels rather than blend in the padding. A rotation only fills corners from outside when the crop
reaches the image's border, elsewhere it brings in real content.

:func:`augment_batch` augments a batch of same-size images on their device with no host-device synchronisation
(the random draws come from ``generator``, which lives on that device, or torch's global RNG when None);
:func:`augment_sample` does the same for one image of any size (the DataLoader workers of file datasets, whose
images differ in size). Both draw their parameters with :func:`sample_params` and apply them with
:func:`apply_params`, so the distributions are identical and a batch equals its samples augmented one by one with
the same parameters.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from mixlab.data import _random
from mixlab.errors import ConfigError
from mixlab.seg.data.dataset import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
from mixlab.transfer import to_device


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


@dataclass(frozen=True)
class SegAugment:
    """The joint augmentation's settings: crop side, scale range, rotation bound (degrees), flip, normalisation."""

    crop: int
    scale_range: tuple[float, float] = (0.5, 2.0)
    rotate_deg: float = 10.0
    hflip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not isinstance(self.crop, numbers.Integral) or isinstance(self.crop, bool) or self.crop < 1:
            raise ConfigError(f"the crop size must be a positive number of pixels, not {self.crop!r}")
        scales = tuple(self.scale_range) if isinstance(self.scale_range, Sequence) else ()
        if len(scales) != 2 or not all(_real(s) for s in scales) or not 0 < scales[0] <= scales[1]:
            raise ConfigError(f"scale_range must be (low, high) with 0 < low <= high, not {self.scale_range!r}")
        if not _real(self.rotate_deg) or not 0 <= self.rotate_deg <= 180:
            raise ConfigError(f"rotate_deg must be an angle in [0, 180] degrees, not {self.rotate_deg!r}")
        if not isinstance(self.hflip, bool):
            raise ConfigError(f"hflip must be True or False, not {self.hflip!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            values = tuple(values) if isinstance(values, Sequence) else ()
            if len(values) != 3 or not all(_real(v) for v in values) or (name == "std" and min(values) <= 0):
                raise ConfigError(f"{name} must be 3 finite per-channel values on the [0, 1] scale, not {values!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        object.__setattr__(self, "crop", int(self.crop))
        object.__setattr__(self, "scale_range", (float(scales[0]), float(scales[1])))
        object.__setattr__(self, "rotate_deg", float(self.rotate_deg))


class AugParams(NamedTuple):
    """Per-sample parameters: ``scale (B,)``, ``offset (B, 2)`` (the crop position as fractions in [0, 1) of the
    room along x and y), ``flip (B,) bool`` and ``angle (B,)`` in radians."""

    scale: torch.Tensor
    offset: torch.Tensor
    flip: torch.Tensor
    angle: torch.Tensor

    def select(self, index: int | slice) -> AugParams:
        """The parameters of sample(s) ``index`` (a slice keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return AugParams(self.scale[index], self.offset[index], self.flip[index], self.angle[index])


def sample_params(
    batch: int, aug: SegAugment, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> AugParams:
    """Draw the parameters of ``batch`` views: one ``(batch, 5)`` uniform draw (scale, offset x, offset y, flip,
    angle), from ``generator`` (moved to ``device``) or from the global RNG on ``device``."""
    u = _random.rand((batch, 5), generator, torch.device(device))
    low, high = aug.scale_range
    scale = low + (high - low) * u[:, 0]
    flip = u[:, 3] < (0.5 if aug.hflip else 0.0)
    angle = (2 * u[:, 4] - 1) * math.radians(aug.rotate_deg)
    return AugParams(scale, u[:, 1:3], flip, angle)


def affine_matrices(params: AugParams, height: int, width: int, crop: int) -> torch.Tensor:
    """``float32 (B, 2, 3)``: each view's map from the crop's normalised coordinates to the source image's (as
    :func:`~torch.nn.functional.affine_grid` takes them, ``align_corners=False``).

    A crop pixel at ``d`` pixels from the crop's centre is rotated (``R``), flipped (``Fl``, about the vertical axis
    through the centre), shifted to the window's place in the rescaled image (``crop / 2 + offset``) and divided by
    the scale: ``source = (Fl R d + crop / 2 + offset) / scale`` in pixels, then normalised by the image size.
    """
    scale = params.scale.float()
    scaled_w, scaled_h = scale * width, scale * height
    offset_x = params.offset[:, 0].float() * (scaled_w - crop)
    offset_y = params.offset[:, 1].float() * (scaled_h - crop)
    cos, sin = params.angle.float().cos(), params.angle.float().sin()
    sign = 1 - 2 * params.flip.float()  # -1 where flipped
    half = crop / 2
    to_x, to_y = 2 / scaled_w, 2 / scaled_h
    row_x = torch.stack([to_x * sign * cos * half, -to_x * sign * sin * half, to_x * (half + offset_x) - 1], -1)
    row_y = torch.stack([to_y * sin * half, to_y * cos * half, to_y * (half + offset_y) - 1], -1)
    return torch.stack([row_x, row_y], 1)


def normalize_images(
    images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """``uint8 (B, 3, H, W)`` or ``(3, H, W)`` -> ``float32`` ``(x / 255 - mean) / std`` per channel."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    return (images.float() / 255.0 - m) / s


def apply_params(
    images: torch.Tensor, masks: torch.Tensor, params: AugParams, aug: SegAugment
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply ``params`` to ``uint8 (B, 3, H, W)`` images and ``uint8 (B, H, W)`` masks: ``(images float32 (B, 3, c,
    c) normalised, masks int64 (B, c, c), valid bool (B, c, c))`` with ``c = aug.crop``."""
    batch, _, height, width = images.shape
    if masks.shape != (batch, height, width):
        raise ConfigError(f"masks of shape {tuple(masks.shape)} do not match images of shape {tuple(images.shape)}")
    theta = to_device(affine_matrices(params, height, width, aug.crop), images.device)
    grid = F.affine_grid(theta, [batch, 1, aug.crop, aug.crop], align_corners=False)
    # The mask is sampled as value + 1, so that the zeros padding marks the pixels from outside the image.
    shifted = (masks.float() + 1).unsqueeze(1)
    sampled = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
    valid = sampled > 0
    labels = torch.where(valid, sampled.long() - 1, IGNORE_INDEX)
    # The image's edge pixels are extended half a pixel (no blend with the padding), the outside is exactly 0.
    x = normalize_images(images, aug.mean, aug.std)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out * valid.unsqueeze(1), labels, valid


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, aug: SegAugment, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment a batch of same-size ``uint8 (B, 3, H, W)`` images and ``uint8 (B, H, W)`` masks on their device:
    ``(images float32 (B, 3, c, c) normalised, masks int64 (B, c, c), valid bool (B, c, c))``."""
    params = sample_params(images.shape[0], aug, generator, images.device)
    return apply_params(images, masks, params, aug)


def augment_sample(
    image: torch.Tensor, mask: torch.Tensor, aug: SegAugment, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`augment_batch` for one ``uint8 (3, H, W)`` image and ``uint8 (H, W)`` mask of any size: ``(image
    float32 (3, c, c), mask int64 (c, c), valid bool (c, c))``."""
    params = sample_params(1, aug, generator, image.device)
    out, labels, valid = apply_params(image.unsqueeze(0), mask.unsqueeze(0), params, aug)
    return out[0], labels[0], valid[0]
