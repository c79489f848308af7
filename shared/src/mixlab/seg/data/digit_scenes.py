"""``digit-scenes`` and ``fashion-scenes``: seeded synthetic segmentation scenes built from classification sprites.

``digit-scenes`` is the built-in default of every segmentation command: it needs no file and no download. Each
64x64 canvas (option ``size``) holds 1 to 3 handwritten digits from scikit-learn's bundled UCI digits (the source
of :mod:`mixlab.data.digits`) on a textured background, with a per-pixel class mask: 11 classes, 0 = background and
digit ``d`` = class ``d + 1``. The sprites are the 32x32 grey versions of the 8x8 originals (the same bilinear
upsampling as the ``digits`` dataset, before its colouring), used as the digit's opacity. ``train`` (2,000 canvases,
option ``count``) draws its digits from the digits' train split only and ``val`` (500, option ``val_count``) from its
test split only, so no digit instance appears in both.

``fashion-scenes`` composes Fashion-MNIST articles (10 classes + background, 96x96 canvases, 10,000 train from
Fashion-MNIST's train split / 2,000 val from its test split) the same way. It reads the official idx files through
``build_dataset("fashion-mnist", ...)`` (under the data root, or Debian's ``/usr/share/datasets/fashion-mnist``);
without them it raises that loader's :class:`~mixlab.errors.DatasetError`. An article's opacity is its silhouette
(grey values from :data:`SILHOUETTE` up; Fashion-MNIST's background is 0) and its own grey texture shades its colour.

The composition (:func:`compose_scenes`), shared by both:

- background: a random base colour, plus a smooth colour field (a 4x4 grid of random offsets up to
  :data:`FIELD_AMPLITUDE` per channel, bilinearly upsampled), plus stripes (a triangle wave of random orientation,
  period and phase, with a random colour amplitude up to :data:`STRIPE_AMPLITUDE`), plus uniform pixel noise up to
  :data:`NOISE_AMPLITUDE`, so that no colour threshold separates objects from background;
- objects: 1 to 3 per canvas, each a random sprite in a random flat colour at least :data:`MIN_COLOUR_DISTANCE` (RGB)
  from the canvas's base colour, its frame a square of side 35-65 % of the canvas (aspect jittered by up to 20 %,
  tilted by up to 15 degrees) placed uniformly inside the canvas. Objects are alpha-blended in order: overlaps are
  allowed and a later object lies on top of the earlier ones;
- mask: where an object's resampled opacity is at least :data:`OPAQUE` (0.6) the pixel takes its class; where it is
  in ``[AMBIGUOUS, OPAQUE)`` = ``[0.4, 0.6)`` (a ring about one pixel wide along the stroke's edge, where the pixel
  is an even blend of object and background) it is :data:`~mixlab.seg.data.dataset.IGNORE_INDEX` (255); below, the
  pixel keeps what lies underneath. About 5 % of digit-scenes' pixels are ignored, 10 % are digits.

Everything is deterministic: the parameters are drawn with numpy from seeded generators and rendered with torch on the
CPU. Canvases are generated in chunks of :data:`CHUNK`, each with its own seed (dataset, split, chunk index) and
relative (size-free) parameters, so canvas ``i`` does not depend on ``count``: a smaller count is a prefix, and
another ``size`` renders the same scenes at another resolution. Results are cached per options.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.data import digits as _digits
from mixlab.data.mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_INFO
from mixlab.data.registry import DatasetInfo, build_dataset, resolve_data_root
from mixlab.errors import DatasetError
from mixlab.seg.data.dataset import IGNORE_INDEX, SegDataset
from mixlab.seg.data.registry import register_seg_dataset

MAX_OBJECTS = 3
CHUNK = 256
#: Side of an object's frame relative to the canvas side, uniform in this range.
OBJECT_SIDE = (0.35, 0.65)
#: The frame's aspect ratio is exp(U(-log, +log)) of this, i.e. within 1/1.2 .. 1.2.
MAX_ASPECT = 1.2
MAX_TILT_DEG = 15.0
#: Minimum RGB distance (0..255 scale) between an object's colour and its canvas's base colour.
MIN_COLOUR_DISTANCE = 100.0
FIELD_AMPLITUDE = 50.0
FIELD_GRID = 4
STRIPE_AMPLITUDE = 35.0
#: Stripe period relative to the canvas side, uniform in this range.
STRIPE_PERIOD = (0.08, 0.25)
NOISE_AMPLITUDE = 12.0
#: Resampled opacity from which a pixel belongs to the object; from AMBIGUOUS up to it the pixel is ignored (255).
OPAQUE = 0.6
AMBIGUOUS = 0.4
#: Fashion-MNIST grey values (0..1) mapped linearly to opacity 0..1 (the article's silhouette).
SILHOUETTE = (2 / 255, 10 / 255)
#: How much an article's own grey texture darkens its colour (colour * (1 - s + s * texture)).
FASHION_SHADING = 0.6

DIGIT_SCENES_SEED = 2024
FASHION_SCENES_SEED = 2025
SPLIT_CODES = {"train": 0, "val": 1}

DIGIT_SCENES_SIZE = 64
DIGIT_SCENES_COUNTS = {"train": 2000, "val": 500}
FASHION_SCENES_SIZE = 96
FASHION_SCENES_COUNTS = {"train": 10_000, "val": 2_000}

# Per-channel statistics of the default train split (on the [0, 1] scale), computed once with
# digit_scenes_statistics() / fashion_scenes_statistics() (the latter from the real Fashion-MNIST files) and
# hard-coded (a test recomputes the first).
DIGIT_SCENES_MEAN = (0.5048, 0.5100, 0.4920)
DIGIT_SCENES_STD = (0.2827, 0.2817, 0.2773)
FASHION_SCENES_MEAN = (0.4767, 0.4731, 0.4744)
FASHION_SCENES_STD = (0.2852, 0.2856, 0.2874)

DIGIT_CLASS_NAMES = ("background", *(str(d) for d in range(10)))
FASHION_CLASS_NAMES = ("background", *FASHION_MNIST_CLASSES)

_OPTIONS = ("size", "count", "val_count")

DIGIT_SCENES_INFO = DatasetInfo(
    name="digit-scenes",
    num_classes=11,
    image_size=DIGIT_SCENES_SIZE,
    splits=("train", "val"),
    mean=DIGIT_SCENES_MEAN,
    std=DIGIT_SCENES_STD,
    description="Built in: 1-3 of scikit-learn's handwritten digits per textured 64x64 canvas (option size), each in "
    "a colour, with per-pixel masks (11 classes: background, 0-9; 255 on the ambiguous edge ring); 2,000 train "
    "(option count) from the digits' train split / 500 val (option val_count) from its test split.",
    layout="none: generated from the digits bundled with scikit-learn, nothing is read from the data root",
    has_download=False,
    builtin=True,
    options=_OPTIONS,
)

FASHION_SCENES_INFO = DatasetInfo(
    name="fashion-scenes",
    num_classes=11,
    image_size=FASHION_SCENES_SIZE,
    splits=("train", "val"),
    mean=FASHION_SCENES_MEAN,
    std=FASHION_SCENES_STD,
    description="1-3 Fashion-MNIST articles per textured 96x96 canvas (option size), each in a colour shaded by its "
    "texture, with per-pixel masks (11 classes: background + Fashion-MNIST's 10); 10,000 train (option count) from "
    "Fashion-MNIST's train split / 2,000 val (option val_count) from its test split.",
    layout=f"Fashion-MNIST's idx files, as for the fashion-mnist dataset: {FASHION_MNIST_INFO.layout}",
    has_download=False,
    options=_OPTIONS,
)


class Scenes(NamedTuple):
    """Composed canvases: ``images uint8 (N, 3, S, S)``, ``masks uint8 (N, S, S)`` and ``objects int64 (N, 3)``, the
    sprite index of each layer from the bottom (-1 where the canvas has fewer objects)."""

    images: torch.Tensor
    masks: torch.Tensor
    objects: torch.Tensor


class _Plan(NamedTuple):
    """The size-free parameters of one chunk of canvases, drawn from its own generator."""

    sprites: np.ndarray  # int64 (C, MAX_OBJECTS), -1 = no object
    theta: np.ndarray  # float (C, MAX_OBJECTS, 2, 3): canvas -> sprite normalised coordinates
    colours: np.ndarray  # float (C, MAX_OBJECTS, 3), 0..255
    base: np.ndarray  # float (C, 3)
    field: np.ndarray  # float (C, 3, FIELD_GRID, FIELD_GRID)
    stripe_direction: np.ndarray  # float (C, 2): unit vector / period (relative units)
    stripe_phase: np.ndarray  # float (C,)
    stripe_amplitude: np.ndarray  # float (C, 3)


def _plan(rng: np.random.Generator, num_sprites: int) -> _Plan:
    shape = (CHUNK, MAX_OBJECTS)
    counts = rng.integers(1, MAX_OBJECTS + 1, CHUNK)
    sprites = rng.integers(0, num_sprites, shape)
    sprites[np.arange(MAX_OBJECTS)[None, :] >= counts[:, None]] = -1
    side = rng.uniform(*OBJECT_SIDE, shape)
    aspect = np.exp(rng.uniform(-math.log(MAX_ASPECT), math.log(MAX_ASPECT), shape))
    width, height = side * np.sqrt(aspect), side / np.sqrt(aspect)
    tilt = np.deg2rad(rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG, shape))
    centre_x = width / 2 + rng.random(shape) * (1 - width)  # the frame inside the canvas (relative units)
    centre_y = height / 2 + rng.random(shape) * (1 - height)
    # Canvas normalised coordinates X = c + R(tilt) diag(w, h) u, with u the sprite's normalised coordinates (the
    # frame's half-side in normalised canvas units is the relative side): u = diag(1/w, 1/h) R(tilt)^T (X - c).
    cos, sin = np.cos(tilt), np.sin(tilt)
    linear = np.stack([np.stack([cos / width, sin / width], -1), np.stack([-sin / height, cos / height], -1)], -2)
    centre = np.stack([2 * centre_x - 1, 2 * centre_y - 1], -1)
    theta = np.concatenate([linear, -(linear @ centre[..., None])], -1)
    base = rng.uniform(0, 255, (CHUNK, 3))
    colours = rng.uniform(0, 255, (*shape, 3))
    bad = np.linalg.norm(colours - base[:, None], axis=-1) < MIN_COLOUR_DISTANCE
    while bad.any():  # resample only the failing objects: deterministic given the seed
        colours[bad] = rng.uniform(0, 255, (int(bad.sum()), 3))
        bad = np.linalg.norm(colours - base[:, None], axis=-1) < MIN_COLOUR_DISTANCE
    field = rng.uniform(-FIELD_AMPLITUDE, FIELD_AMPLITUDE, (CHUNK, 3, FIELD_GRID, FIELD_GRID))
    angle = rng.uniform(0, math.pi, CHUNK)
    period = rng.uniform(*STRIPE_PERIOD, CHUNK)
    direction = np.stack([np.cos(angle), np.sin(angle)], -1) / period[:, None]
    phase = rng.random(CHUNK)
    amplitude = rng.uniform(-STRIPE_AMPLITUDE, STRIPE_AMPLITUDE, (CHUNK, 3))
    return _Plan(sprites, theta, colours, base, field, direction, phase, amplitude)


def _interpolation(size: int, grid: int) -> torch.Tensor:
    """``float (size, grid)``: bilinear interpolation (align_corners=True) from ``grid`` nodes to ``size`` pixels."""
    position = torch.arange(size, dtype=torch.float64) * (grid - 1) / (size - 1)
    low = position.floor().clamp(max=grid - 2).long()
    weight = position - low
    matrix = torch.zeros(size, grid, dtype=torch.float64)
    matrix[torch.arange(size), low] = 1 - weight
    matrix[torch.arange(size), low + 1] = weight
    return matrix.float()


def _background(plan: _Plan, noise: torch.Tensor, size: int) -> torch.Tensor:
    """``float (C, 3, S, S)`` on the 0..255 scale: base colour + smooth field + stripes + noise (not clamped).

    ``noise`` is uniform in [0, 1) and becomes uniform in [-NOISE_AMPLITUDE, NOISE_AMPLITUDE); the constant parts of
    the noise and of the stripes' triangle wave go into the field's nodes (bilinear interpolation keeps constants).
    """
    amplitude = torch.from_numpy(plan.stripe_amplitude).float()
    constant = torch.from_numpy(plan.base).float() - amplitude - NOISE_AMPLITUDE
    nodes = torch.from_numpy(plan.field).float() + constant[:, :, None, None]
    interpolation = _interpolation(size, FIELD_GRID)
    canvas = interpolation @ nodes @ interpolation.T  # (C, 3, S, S)
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    direction = torch.from_numpy(plan.stripe_direction).float()
    phase = torch.from_numpy(plan.stripe_phase).float()
    along_y = direction[:, 1, None] * centres + phase[:, None]  # (C, S), per row
    along_x = direction[:, 0, None] * centres  # (C, S), per column
    position = along_y[:, :, None] + along_x[:, None, :]
    wave = position.sub_(position.floor()).sub_(0.5).abs_()  # in [0, 0.5]: the triangle wave is 4 * wave - 1
    canvas.addcmul_((4 * amplitude)[:, :, None, None], wave[:, None])
    return canvas.add_(noise, alpha=2 * NOISE_AMPLITUDE)


#: Where the sampling grid of an absent object points: far outside its sprite, so that it samples zeros.
_ABSENT = torch.tensor([[0.0, 0.0, 10.0], [0.0, 0.0, 10.0]])


def compose_scenes(
    opacity: torch.Tensor,
    labels: torch.Tensor,
    count: int,
    size: int,
    seed: Sequence[int],
    texture: torch.Tensor | None = None,
    shading: float = 0.0,
) -> Scenes:
    """``count`` canvases of ``size`` x ``size`` composed of the sprites (see the module docstring).

    ``opacity`` is ``float (M, s, s)`` in [0, 1], one grey sprite per object; ``labels`` ``int64 (M,)`` is the mask
    value of each sprite (its class + 1: 0 is the background). ``texture`` (``float (M, s, s)`` in [0, 1]) shades an
    object's colour by ``1 - shading + shading * texture``; without it the colour is flat. ``seed`` (non-negative
    integers) names the sequence: chunk ``k`` draws from ``numpy.random.default_rng([*seed, k])``.
    """
    if count < 1 or size < 8:
        raise DatasetError(f"a scene dataset needs count >= 1 and size >= 8, got count={count}, size={size}.")
    channels = opacity[:, None].float()
    if texture is not None:
        channels = torch.cat([channels, texture[:, None].float()], 1)
    labels = labels.to(torch.uint8)
    centres = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
    pixels = torch.stack([centres.expand(size, size), centres[:, None].expand(size, size), torch.ones(size, size)], -1)
    pixels = pixels.view(size * size, 3)  # (x, y, 1) of each pixel centre, normalised as affine_grid's
    images = torch.empty((count, 3, size, size), dtype=torch.uint8)
    masks = torch.empty((count, size, size), dtype=torch.uint8)
    objects = torch.empty((count, MAX_OBJECTS), dtype=torch.int64)
    for chunk, start in enumerate(range(0, count, CHUNK)):
        n = min(CHUNK, count - start)
        rng = np.random.default_rng([*seed, chunk])
        plan = _plan(rng, len(opacity))
        noise = torch.from_numpy(rng.random((CHUNK, 3, size, size), dtype=np.float32)[:n])
        plan = _Plan(*(field[:n] for field in plan))
        canvas = _background(plan, noise, size)
        mask = torch.zeros((n, size, size), dtype=torch.uint8)
        sprites = torch.from_numpy(plan.sprites)
        present = sprites >= 0
        index = sprites.clamp(min=0)
        theta = torch.where(present[..., None, None], torch.from_numpy(plan.theta).float(), _ABSENT)
        colours = torch.from_numpy(plan.colours).float()
        for layer in range(MAX_OBJECTS):
            grid = (pixels @ theta[:, layer].transpose(1, 2)).view(n, size, size, 2)
            sampled = F.grid_sample(channels[index[:, layer]], grid, padding_mode="zeros", align_corners=False)
            alpha = sampled[:, :1]
            colour = colours[:, layer, :, None, None]
            if texture is not None:
                colour = colour * (1 - shading + shading * sampled[:, 1:])
            canvas.lerp_(colour.expand_as(canvas), alpha)
            mask.masked_fill_(alpha[:, 0] >= AMBIGUOUS, IGNORE_INDEX)
            mask = torch.where(alpha[:, 0] >= OPAQUE, labels[index[:, layer]][:, None, None], mask)
        images[start : start + n] = canvas.round_().clamp_(0, 255).to(torch.uint8)
        masks[start : start + n] = mask
        objects[start : start + n] = sprites
    return Scenes(images, masks, objects)


# --- digit-scenes -------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def digit_sprites() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All 1,797 grey digits as ``float (N, 32, 32)`` in [0, 1] (upsampled as in ``digits``), their ``int64``
    classes, and the digits dataset's (train, test) index tensors."""
    raw, labels = _digits._raw_digits()
    grey = torch.from_numpy(raw.astype(np.float32) / 16.0).unsqueeze(1)
    side = _digits.SIDE
    sprites = F.interpolate(grey, size=(side, side), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)[:, 0]
    train, test = _digits.stratified_split(labels, _digits.NUM_TEST, _digits.SPLIT_SEED)
    return sprites, torch.from_numpy(labels), torch.from_numpy(train), torch.from_numpy(test)


def _split_count(split: str, defaults: dict[str, int], count: int | None, val_count: int | None) -> int:
    chosen = count if split == "train" else val_count
    value = defaults[split] if chosen is None else chosen
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        option = "count" if split == "train" else "val_count"
        raise DatasetError(f"{option} must be a positive number of canvases, got {value!r}.")
    return value


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise DatasetError(f"size must be the canvas side in pixels, at least 16, got {size!r}.")
    return size


def digit_scenes(split: str, size: int = DIGIT_SCENES_SIZE, count: int | None = None) -> Scenes:
    """The canvases of ``split`` (``objects`` indexes the 1,797 digits of :func:`digit_sprites`), cached."""
    return _digit_scenes(split, size, DIGIT_SCENES_COUNTS[split] if count is None else count)


@lru_cache(maxsize=4)
def _digit_scenes(split: str, size: int, count: int) -> Scenes:
    sprites, labels, train, test = digit_sprites()
    source = train if split == "train" else test
    scenes = compose_scenes(sprites[source], labels[source] + 1, count, size, (DIGIT_SCENES_SEED, SPLIT_CODES[split]))
    objects = torch.where(scenes.objects >= 0, source[scenes.objects.clamp(min=0)], -1)
    return Scenes(scenes.images, scenes.masks, objects)


def _statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the [0, 1] scale, accumulated in float64 chunk by chunk."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(images), CHUNK):
        x = images[start : start + CHUNK].double() / 255.0
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    std = ((squares - n * mean * mean) / (n - 1)).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def digit_scenes_statistics() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the default train split (the source of DIGIT_SCENES_MEAN/STD)."""
    return _statistics(digit_scenes("train").images)


def _seg_dataset(name: str, split: str, scenes: Scenes, class_names: tuple[str, ...], mean, std) -> SegDataset:
    return SegDataset(
        name=name,
        split=split,
        num_classes=len(class_names),
        class_names=class_names,
        ids=[f"{split}-{i:05d}" for i in range(len(scenes.images))],
        mean=mean,
        std=std,
        tensors=(scenes.images, scenes.masks),
    )


@register_seg_dataset(DIGIT_SCENES_INFO)
def build_digit_scenes(
    root: Path, split: str, size: int = DIGIT_SCENES_SIZE, count: int | None = None, val_count: int | None = None
) -> SegDataset:
    """``root`` is accepted for a uniform interface and ignored: the data is built in. ``count`` sets the train
    split's number of canvases and ``val_count`` the val split's (each split reads its own)."""
    size = _check_size(size)
    scenes = digit_scenes(split, size, _split_count(split, DIGIT_SCENES_COUNTS, count, val_count))
    return _seg_dataset("digit-scenes", split, scenes, DIGIT_CLASS_NAMES, DIGIT_SCENES_MEAN, DIGIT_SCENES_STD)


# --- fashion-scenes -----------------------------------------------------------------------------------------------


def fashion_sprites(root: Path | str | None, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fashion-MNIST's articles of the source split (``train`` for train, ``test`` for val): their silhouettes
    (opacity) and textures (grey / the article's maximum), ``float (N, 28, 28)``, and ``int64`` classes."""
    source = build_dataset("fashion-mnist", "train" if split == "train" else "test", root, pad=False, channels=1)
    grey = source.images[:, 0].float() / 255.0
    low, high = SILHOUETTE
    opacity = ((grey - low) / (high - low)).clamp_(0.0, 1.0)
    texture = grey / grey.amax(dim=(1, 2), keepdim=True).clamp(min=high)
    return opacity, texture.clamp_(0.0, 1.0), source.targets


def fashion_scenes(root: Path | str, split: str, size: int = FASHION_SCENES_SIZE, count: int | None = None) -> Scenes:
    """The canvases of ``split`` (``objects`` indexes the source split of Fashion-MNIST), cached per data root."""
    return _fashion_scenes(str(root), split, size, FASHION_SCENES_COUNTS[split] if count is None else count)


@lru_cache(maxsize=2)
def _fashion_scenes(root: str, split: str, size: int, count: int) -> Scenes:
    opacity, texture, labels = fashion_sprites(root, split)
    seed = (FASHION_SCENES_SEED, SPLIT_CODES[split])
    return compose_scenes(opacity, labels + 1, count, size, seed, texture=texture, shading=FASHION_SHADING)


def fashion_scenes_statistics(root: Path | str | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the default train split (the source of FASHION_SCENES_MEAN/STD)."""
    return _statistics(fashion_scenes(resolve_data_root(root), "train").images)


@register_seg_dataset(FASHION_SCENES_INFO)
def build_fashion_scenes(
    root: Path, split: str, size: int = FASHION_SCENES_SIZE, count: int | None = None, val_count: int | None = None
) -> SegDataset:
    """Fashion-MNIST is read from ``root`` (or Debian's copy); ``count`` / ``val_count`` as for digit-scenes."""
    size = _check_size(size)
    scenes = fashion_scenes(root, split, size, _split_count(split, FASHION_SCENES_COUNTS, count, val_count))
    return _seg_dataset("fashion-scenes", split, scenes, FASHION_CLASS_NAMES, FASHION_SCENES_MEAN, FASHION_SCENES_STD)
