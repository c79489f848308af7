"""Batched, device-agnostic augmentations on ``uint8 (B, 3, H, W)`` batches.

The standard ones (pad-and-crop, flip, cutout, normalize) are vectorised: per-sample parameters become index or
mask tensors, so a batch costs a few kernels on any device. RandAugment and AutoAugment wrap torchvision's
implementations per image (their op choice is per call, so a loop is the only way to get per-image policies).
AugMix lives in :mod:`mixlab.data.augmix_ops`. Every sampler takes ``generator=None`` (see :mod:`mixlab.data._random`).

:class:`BatchTransform` chains named steps, so a recipe can say ``"crop+flip+normalize"``.

File-backed datasets (ImageNet-100) crop full-size images per file before they can be batched: their per-image
transforms (:func:`random_resized_crop`, :func:`resize_center_crop`) take a PIL image and return ``uint8 (3, S, S)``,
and run in DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Literal

import torch

from mixlab.data import _random
from mixlab.data.augmix_ops import augmix
from mixlab.data.randaugment import batched_randaugment
from mixlab.errors import ConfigError
from mixlab.transfer import constant

Fill = int | float | Sequence[float]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def _fill_tensor(fill: Fill, x: torch.Tensor) -> torch.Tensor:
    if isinstance(fill, int | float):
        return constant(fill, x.dtype, x.device)
    return constant(fill, x.dtype, x.device).view(1, -1, 1, 1)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror out-of-range indices without repeating the edge (numpy/torch ``reflect``)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def random_crop(
    x: torch.Tensor,
    padding: int | Sequence[int],
    size: int | Sequence[int] | None = None,
    fill: Fill = 0,
    padding_mode: Literal["constant", "reflect", "edge"] = "constant",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pad by ``padding`` and take a random ``size`` crop (default: the input size), per-sample offsets.

    Equivalent to torchvision's ``RandomCrop(size, padding, fill, padding_mode)`` on each image, with the offsets
    drawn uniformly in ``[0, H + 2·pad - size]``; implemented as two gathers (no padded copy, no Python loop).
    """
    b, c, h, w = x.shape
    pad_h, pad_w = _pair(padding)
    out_h, out_w = _pair(size) if size is not None else (h, w)
    span_h, span_w = h + 2 * pad_h - out_h, w + 2 * pad_w - out_w
    if span_h < 0 or span_w < 0 or min(pad_h, pad_w) < 0:
        raise ConfigError(f"cannot crop {out_h}x{out_w} from {h}x{w} images padded by {padding}.")
    if padding_mode == "reflect" and (pad_h >= h or pad_w >= w):
        raise ConfigError(f"reflect padding {padding} must be smaller than the image side ({h}x{w}).")
    if padding_mode not in ("constant", "reflect", "edge"):
        raise ConfigError(f"padding_mode must be 'constant', 'reflect' or 'edge', got {padding_mode!r}.")
    offset_y = _random.randint(0, span_h + 1, (b,), generator, x.device)
    offset_x = _random.randint(0, span_w + 1, (b,), generator, x.device)
    rows = offset_y[:, None] + torch.arange(out_h, device=x.device) - pad_h  # (B, out_h), source rows
    cols = offset_x[:, None] + torch.arange(out_w, device=x.device) - pad_w
    if padding_mode == "reflect":
        rows, cols = _reflect(rows, h), _reflect(cols, w)
    inside = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    out = x.gather(2, rows[:, None, :, None].expand(b, c, out_h, w))
    out = out.gather(3, cols[:, None, None, :].expand(b, c, out_h, out_w))
    if padding_mode == "constant" and (pad_h or pad_w):
        valid = inside[0][:, None, :, None] & inside[1][:, None, None, :]
        out = torch.where(valid, out, _fill_tensor(fill, x))
    return out


def random_hflip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability ``p``."""
    flip = _random.rand((x.shape[0],), generator, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def normalize(
    x: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel; ``mean``/``std`` on the [0, 1] scale (as in :class:`ImageDataset`)."""
    m = constant(mean, dtype, x.device).view(1, -1, 1, 1)
    s = constant(std, dtype, x.device).view(1, -1, 1, 1)
    return (x.to(dtype) / 255.0 - m) / s


def cutout_mask(
    batch: int,
    height: int,
    width: int,
    size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Cutout holes (DeVries & Taylor): ``bool (B, 1, H, W)``, True inside a ``size`` square clipped at the border.

    The centre is uniform over all pixels, the square spans ``[c - size//2, c + size//2)`` on each axis (the
    reference implementation), so holes near the border are smaller than ``size²``.
    """
    device = torch.device(device)
    centre_y = _random.randint(0, height, (batch,), generator, device)
    centre_x = _random.randint(0, width, (batch,), generator, device)
    half = size // 2
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows >= (centre_y - half)[:, None]) & (rows < (centre_y + half)[:, None])
    in_cols = (cols >= (centre_x - half)[:, None]) & (cols < (centre_x + half)[:, None])
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def cutout(x: torch.Tensor, size: int, fill: Fill = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace one random ``size`` square per image by ``fill`` (any dtype: on normalized input 0 is the mean)."""
    mask = cutout_mask(x.shape[0], x.shape[2], x.shape[3], size, generator, x.device)
    return torch.where(mask, _fill_tensor(fill, x), x)


def _per_image(
    transform: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    if x.dtype != torch.uint8:
        raise ConfigError("RandAugment/AutoAugment work on uint8 images; apply them before normalize.")
    with _random.seeded_global_rng(generator):
        return torch.stack([transform(image) for image in x]) if len(x) else x.clone()


def randaugment(
    x: torch.Tensor,
    num_ops: int = 2,
    magnitude: int = 9,
    num_magnitude_bins: int = 31,
    random_magnitude: bool = False,
    fill: Fill | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """torchvision's RandAugment applied independently to each image of a uint8 batch.

    ``random_magnitude``: each image draws its magnitude uniformly from ``1..magnitude`` (the FixMatch variant's
    random magnitude; the op set and magnitude scale stay torchvision's).
    """
    from torchvision.transforms import v2

    transform = v2.RandAugment(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=num_magnitude_bins, fill=fill)

    def one(image: torch.Tensor) -> torch.Tensor:
        if random_magnitude:
            transform.magnitude = int(torch.randint(1, magnitude + 1, (1,)).item())
        return transform(image)

    return _per_image(one, x, generator)


def autoaugment(
    x: torch.Tensor,
    policy: Literal["cifar10", "imagenet", "svhn"] = "cifar10",
    fill: Fill | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """torchvision's AutoAugment (``cifar10``, ``imagenet`` or ``svhn`` policy) applied to each image."""
    return _per_image(_autoaugment_op(policy, fill), x, generator)


def _autoaugment_op(policy: str, fill: Fill | None = None) -> Any:
    """torchvision's ``v2.AutoAugment`` with the named policy (on uint8 tensors and on PIL images alike)."""
    from torchvision.transforms import AutoAugmentPolicy, v2

    policies = {
        "cifar10": AutoAugmentPolicy.CIFAR10,
        "imagenet": AutoAugmentPolicy.IMAGENET,
        "svhn": AutoAugmentPolicy.SVHN,
    }
    if policy not in policies:
        raise ConfigError(f"AutoAugment policy must be one of {', '.join(policies)}, got {policy!r}.")
    return v2.AutoAugment(policies[policy], fill=fill)


# -- per-image transforms of file-backed datasets (PIL image -> uint8 (3, S, S), run in DataLoader workers) -----

#: The ImageNet evaluation crop ratio: resize the short side to S / 0.875 (256 for S = 224), centre-crop S.
IMAGENET_CROP_RATIO = 224 / 256


def random_resized_crop(size: int, hflip: bool = True, autoaugment: str | None = None) -> Callable[[Any], torch.Tensor]:
    """The ImageNet training crop: torchvision's ``RandomResizedCrop(size)`` (area 8-100%, aspect 3/4-4/3,
    bilinear, antialiased), a horizontal flip with probability 0.5 (``hflip``), then AutoAugment when a policy is
    named; a PIL image in, ``uint8 (3, size, size)`` out. Randomness comes from torch's global CPU RNG."""
    from torchvision.transforms import v2

    steps: list[Any] = [v2.RandomResizedCrop(size, antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if autoaugment not in (None, "none"):
        steps.append(_autoaugment_op(autoaugment))
    return v2.Compose([*steps, v2.PILToTensor()])


def resize_center_crop(size: int, crop_ratio: float = IMAGENET_CROP_RATIO) -> Callable[[Any], torch.Tensor]:
    """The ImageNet evaluation view: the short side resized to ``round(size / crop_ratio)`` (256 for 224), then the
    central ``size`` x ``size`` crop; a PIL image in, ``uint8 (3, size, size)`` out. Deterministic."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(round(size / crop_ratio), antialias=True), v2.CenterCrop(size), v2.PILToTensor()])


Step = Callable[..., torch.Tensor]  # step(x, generator=None) -> x

#: Steps that need uint8 input (so they must come before "normalize").
_UINT8_STEPS = {"randaugment", "randaugment_batched", "autoaugment", "augmix"}


def _normalize_step(x: torch.Tensor, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
    return normalize(x, **options)


#: name -> (function, option defaults); options given to build_batch_transform override the defaults.
STEPS: dict[str, tuple[Step, dict[str, Any]]] = {
    "crop": (random_crop, {"padding": 4}),
    "flip": (random_hflip, {}),
    "cutout": (cutout, {"size": 16}),
    "randaugment": (randaugment, {}),
    "randaugment_batched": (batched_randaugment, {}),  # same op set, no per-image loop
    "autoaugment": (autoaugment, {}),
    "augmix": (augmix, {}),
    "normalize": (_normalize_step, {}),
}


class BatchTransform:
    """A named sequence of batched steps; ``transform(x, generator=None)`` applies them in order."""

    def __init__(self, steps: Sequence[tuple[str, Step]]):
        self.steps = list(steps)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.steps]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for _, step in self.steps:
            x = step(x, generator=generator)
        return x

    def __repr__(self) -> str:
        return f"BatchTransform({'+'.join(self.names) or 'identity'})"


def build_batch_transform(
    spec: str | Sequence[str],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **step_options: Mapping[str, Any],
) -> BatchTransform:
    """Build a :class:`BatchTransform` from names, e.g. ``"crop+flip+normalize"`` or ``["crop", "cutout"]``.

    Names: crop, flip, cutout, randaugment, autoaugment, augmix, normalize. ``mean``/``std`` feed ``normalize``;
    per-step options are keyword dicts named after the step, e.g. ``crop={"padding": 4, "padding_mode":
    "reflect"}``, ``cutout={"size": 20}``, ``augmix={"severity": 3}``. An empty spec (or "none") is the identity.
    """
    names = [n.strip() for n in (spec.split("+") if isinstance(spec, str) else spec) if n.strip()]
    names = [] if names == ["none"] else names
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise ConfigError(f"unknown augmentation step(s) {', '.join(unknown)}; known: {', '.join(STEPS)}.")
    stray = sorted(set(step_options) - set(names))
    if stray:
        raise ConfigError(f"options given for step(s) {', '.join(stray)} that are not in {'+'.join(names)!r}.")
    if "normalize" in names:
        if mean is None or std is None:
            raise ConfigError("the 'normalize' step needs mean and std (from the dataset).")
        after = names[names.index("normalize") + 1 :]
        late = [n for n in after if n in _UINT8_STEPS]
        if late:
            raise ConfigError(f"{', '.join(late)} work on uint8 images and must come before 'normalize'.")
    steps = []
    for name in names:
        function, defaults = STEPS[name]
        options = {**defaults, **dict(step_options.get(name, {}))}
        if name == "normalize":
            options = {"mean": tuple(mean), "std": tuple(std), **options}  # type: ignore[arg-type]
        steps.append((name, partial(function, **options)))
    return BatchTransform(steps)
