"""RealMix's offline ``Extend`` step (Nair et al. 2019, §3.1): many strongly augmented copies of the unlabeled set.

The paper replaces the unlabeled set by 50 CutOut-augmented copies of every image (original images not included).
What the authors' code calls "cutout" is Random Erasing (the yu4u implementation, ``p = 0.3``, area 2-40 %, aspect
0.3-3.33, one constant fill value per image), so that is the default here; DeVries & Taylor Cutout and the "Simple
Aug" ablation (flip + reflect-pad shift, Table 5) are the alternatives.

Copies are addressed as pool index ``k`` -> image ``i = k % N``, copy ``j = k // N``. Copy ``(i, j)`` is a pure
function of ``(seed, i, j)``: its parameters come from :func:`mixlab.rng.keyed_uniform` (a counter-based generator
keyed by seed, image and copy), so a "virtual" pool draws them on demand (no 7.6 GB array for CIFAR-10) and a
"materialized" pool precomputes exactly the same images. Parameter draws and pixel writes are both batched: no step
loops over the samples in Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from mixlab.data.transforms import cutout_mask, random_crop, random_hflip
from mixlab.errors import ConfigError
from mixlab.rng import keyed_uniform
from mixlab.transfer import to_device

ExtendAug = Literal["cutout", "simple", "none"]
ExtendMode = Literal["virtual", "materialize"]
CutoutImpl = Literal["random_erasing", "devries"]

EXTEND_AUGS: tuple[str, ...] = ("cutout", "simple", "none")
EXTEND_MODES: tuple[str, ...] = ("virtual", "materialize")
CUTOUT_IMPLS: tuple[str, ...] = ("random_erasing", "devries")
ERASING_OPTIONS: tuple[str, ...] = ("p", "area", "aspect", "fill")

#: Mid-grey on the uint8 scale: RealMix feeds ``x·2/255 - 1``, so 128 maps to ≈0, DeVries' "fill with 0 after
#: normalisation".
DEVRIES_FILL = 128

_HASH = 1_000_003
_ERASING_TRIES = 16  # (s, r, left, top) tries drawn up front per image; more are drawn if all 16 miss
_ERASING_BLOCK = 2 + 4 * _ERASING_TRIES  # apply decision, fill value, then the tries
_ERASING_MAX_TRIES = 10_000
_MATERIALIZE_CHUNK = 4096

_ErasingParams = tuple[float, tuple[float, float], tuple[float, float], tuple[float, float]]


# --------------------------------------------------------------------------------------------------- validation


def _check_images(x: torch.Tensor, what: str = "images") -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        dtype = x.dtype if isinstance(x, torch.Tensor) else ""
        raise ConfigError(f"Extend augmentations take uint8 {what} of shape (N, C, H, W), got {dtype} {shape}.")


def _check_range(
    name: str, value: Sequence[float], low: float, high: float, low_open: bool = False
) -> tuple[float, float]:
    try:
        first, second = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"random erasing option {name} must be a (min, max) pair, got {value!r}.") from None
    low_ok = first > low if low_open else first >= low
    if not (low_ok and first <= second <= high):
        bracket = "(" if low_open else "["
        raise ConfigError(
            f"random erasing option {name}={value!r} must satisfy {bracket}{low}, {high}] with min <= max."
        )
    return first, second


def _check_erasing(p: float, area: Sequence[float], aspect: Sequence[float], fill: Sequence[float]) -> _ErasingParams:
    if not 0.0 <= float(p) <= 1.0:
        raise ConfigError(f"random erasing probability p must be in [0, 1], got {p!r}.")
    return (
        float(p),
        _check_range("area", area, 0.0, 1.0, low_open=True),
        _check_range("aspect", aspect, 0.0, math.inf, low_open=True),
        _check_range("fill", fill, 0.0, 255.0),
    )


def _check_fill(fill: int) -> int:
    if isinstance(fill, bool) or not isinstance(fill, int) or not 0 <= fill <= 255:
        raise ConfigError(f"the cutout fill must be an integer in [0, 255] (uint8 scale), got {fill!r}.")
    return fill


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"the cutout size must be a positive integer (pixels), got {size!r}.")
    return size


def _check_padding(padding: int, height: int, width: int) -> int:
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ConfigError(f"the shift padding must be a non-negative integer, got {padding!r}.")
    if padding >= min(height, width):
        raise ConfigError(f"reflect padding {padding} must be smaller than the image side ({height}x{width}).")
    return padding


# ------------------------------------------------------------------------------------------------ parameter draws


def _cpu_uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    """U[0, 1) float64 of ``shape`` on the CPU, from ``generator`` (drawn on its device) or torch's global CPU RNG."""
    if generator is None:
        return torch.rand(shape, dtype=torch.float64)
    return torch.rand(shape, dtype=torch.float64, generator=generator, device=generator.device).cpu()


#: More erasing tries for the images of ``rows`` (positions in the batch), round ``r >= 1``: ``(len(rows), 4 T)``.
MoreTries = Callable[[torch.Tensor, int], torch.Tensor]


def _erasing_boxes(
    first: torch.Tensor, more: MoreTries, height: int, width: int, params: _ErasingParams
) -> torch.Tensor:
    """yu4u random-erasing boxes ``(n, 5)`` int64 (top, left, height, width, fill; 0-sized: untouched) from uniforms.

    ``first`` is ``(n, 2 + 4 T)``: the apply draw, the fill draw, then T tries of (area s, aspect r, left, top).
    Mirrors ``get_random_eraser``: apply with probability p (``u < p``, so p = 0 is exactly the identity), then
    re-draw s and r and the top-left corner until the ``int(sqrt(s/r)) x int(sqrt(s·r))`` box fits; the fill is
    truncated to an integer like the uint8 assignment in the reference. Every image's first fitting try is found at
    once; only images none of whose T tries fit draw another T (rare), for at most 10,000 tries.
    """
    p, (area_lo, area_hi), (aspect_lo, aspect_hi), (fill_lo, fill_hi) = params
    boxes = torch.zeros((first.shape[0], 5), dtype=torch.long)
    value = (fill_lo + first[:, 1] * (fill_hi - fill_lo)).floor().clamp(max=255).long()
    pending = (first[:, 0] < p).nonzero().flatten()
    tries = first[pending, 2:]
    for round_ in range(1, _ERASING_MAX_TRIES // _ERASING_TRIES + 1):
        if pending.numel() == 0:
            return boxes
        t = tries.reshape(pending.numel(), -1, 4)
        s = (area_lo + t[..., 0] * (area_hi - area_lo)) * height * width
        r = aspect_lo + t[..., 1] * (aspect_hi - aspect_lo)
        box_w, box_h = (s / r).sqrt().floor(), (s * r).sqrt().floor()
        left, top = (t[..., 2] * width).floor(), (t[..., 3] * height).floor()
        fits = (left + box_w <= width) & (top + box_h <= height)
        found = fits.any(1)
        choice = fits.to(torch.uint8).argmax(1, keepdim=True)  # the first try that fits
        chosen = torch.cat([v.gather(1, choice) for v in (top, left, box_h, box_w)], 1).long()
        rows = pending[found]
        boxes[rows, :4] = chosen[found]
        boxes[rows, 4] = value[rows]
        pending = pending[~found]
        if pending.numel():
            tries = more(pending, round_)
    if pending.numel() == 0:
        return boxes
    raise ConfigError(
        f"random erasing found no box that fits a {height}x{width} image in {_ERASING_MAX_TRIES} "
        f"tries; area={params[1]} and aspect={params[2]} are too large for this image size."
    )


# ------------------------------------------------------------------------------------------------ batched apply


def _fill_rectangles(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Write one constant rectangle per image (all channels) with a single masked ``where`` on x's device.

    ``boxes`` is ``(n, 5)`` int64: top, left, height, width, fill value. Rectangles may reach outside the image
    (DeVries holes near a border): the masks clip them.
    """
    if x.shape[0] == 0:
        return x.clone()
    top, left, height, width, value = to_device(boxes, x.device).unbind(1)
    rows = torch.arange(x.shape[2], device=x.device)
    cols = torch.arange(x.shape[3], device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
    return torch.where(mask, value.to(x.dtype)[:, None, None, None], x)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def _shift_flip(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Per-image flip, then reflect-pad + crop, as two gathers (same maths as random_crop).

    ``shifts`` is ``(n, 3)`` int64: the row and column offsets relative to the unpadded image (``offset - padding``)
    and the flip flag.
    """
    b, c, h, w = x.shape
    if b == 0:
        return x.clone()
    params = to_device(shifts, x.device)
    rows = _reflect(params[:, 0:1] + torch.arange(h, device=x.device), h)
    cols = _reflect(params[:, 1:2] + torch.arange(w, device=x.device), w)
    cols = torch.where(params[:, 2:3].bool(), w - 1 - cols, cols)  # flip happened first: mirror the source column
    out = x.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))


# ------------------------------------------------------------------------------------------------ public batch ops


def random_erasing(
    x: torch.Tensor,
    p: float = 0.3,
    area: Sequence[float] = (0.02, 0.4),
    aspect: Sequence[float] = (0.3, 1 / 0.3),
    fill: Sequence[float] = (0, 255),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image Random Erasing as in the official RealMix "cutout" (yu4u's ``get_random_eraser``, pixel_level off).

    Each image, with probability ``p``, gets one ``int(sqrt(s/r)) x int(sqrt(s·r))`` box, ``s ~ U(area)·H·W``,
    ``r ~ U(aspect)``, top-left corner uniform, re-drawn until the box fits; the box is filled on every channel with
    one value ``int(U(fill))``. Unlike the released TF script (parameters frozen at graph-trace time), every image
    draws its own. Parameters are drawn on the CPU (from ``generator`` or the global RNG); the write is one batched
    op on x's device. Returns a new uint8 tensor.
    """
    _check_images(x)
    params = _check_erasing(p, area, aspect, fill)
    n, _, height, width = x.shape

    def more(rows: torch.Tensor, round_: int) -> torch.Tensor:
        return _cpu_uniform((rows.numel(), 4 * _ERASING_TRIES), generator)

    boxes = _erasing_boxes(_cpu_uniform((n, _ERASING_BLOCK), generator), more, height, width, params)
    return _fill_rectangles(x, boxes)


def devries_cutout(
    x: torch.Tensor, size: int, fill: int = DEVRIES_FILL, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DeVries & Taylor Cutout: one ``size`` square per image, centre uniform over the pixels, clipped at borders.

    ``fill`` is on the uint8 scale; the default 128 is mid-grey, i.e. ≈0 after RealMix's ``x·2/255 - 1`` scaling,
    which is Cutout's "zero in the normalised space". The paper's patch sides: 16 px (CIFAR-10), 20 px (SVHN).
    """
    _check_images(x)
    size, fill = _check_size(size), _check_fill(fill)
    mask = cutout_mask(x.shape[0], x.shape[2], x.shape[3], size, generator, x.device)
    return torch.where(mask, torch.tensor(fill, dtype=x.dtype, device=x.device), x)


def simple_augment(
    x: torch.Tensor, padding: int = 4, hflip: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Table 5's "Simple Aug": random horizontal flip, then reflect-pad ``padding`` and a random crop back to H x W.

    Flip before shift follows the official ``augment_cifar10`` (mirror, then shift). The content moves by at most
    ``padding`` pixels along each axis.
    """
    _check_images(x)
    _check_padding(padding, x.shape[2], x.shape[3])
    if hflip:
        x = random_hflip(x, generator=generator)
    return random_crop(x, padding, padding_mode="reflect", generator=generator)


# ------------------------------------------------------------------------------------------------ the pool


class ExtendedPool:
    """The extended unlabeled set ``Extend(X_u)``: ``n_copies`` augmented copies of every image, originals excluded.

    ``get(k)`` for pool indices ``k`` returns copy ``j = k // N`` of image ``i = k % N``; the copy depends only on
    ``(seed, i, j)``, so ``mode="virtual"`` (draw on demand) and ``mode="materialize"`` (precompute once, refused
    above ``max_bytes``) hold identical pools. ``aug="none"`` is the plain unlabeled set (``len = N``, originals):
    with it RealMix reduces to MixMatch.

    Options: ``cutout_impl`` picks Random Erasing (official, default; its ``p``/``area``/``aspect``/``fill`` come in
    ``erasing_options``) or DeVries Cutout (``cutout_size``, ``devries_fill``); ``padding``/``hflip`` configure
    ``aug="simple"``. Options that the chosen augmentation does not use are validated and then ignored.
    """

    def __init__(
        self,
        images: torch.Tensor,
        n_copies: int = 50,
        aug: ExtendAug = "cutout",
        mode: ExtendMode = "virtual",
        seed: int = 0,
        cutout_impl: CutoutImpl = "random_erasing",
        cutout_size: int = 16,
        *,
        devries_fill: int = DEVRIES_FILL,
        padding: int = 4,
        hflip: bool = True,
        max_bytes: float = 8e9,
        **erasing_options: Any,
    ) -> None:
        _check_images(images, "unlabeled images")
        if aug not in EXTEND_AUGS:
            raise ConfigError(f"extend aug must be one of {', '.join(EXTEND_AUGS)}, got {aug!r}.")
        if mode not in EXTEND_MODES:
            raise ConfigError(f"extend mode must be one of {', '.join(EXTEND_MODES)}, got {mode!r}.")
        if cutout_impl not in CUTOUT_IMPLS:
            raise ConfigError(f"cutout_impl must be one of {', '.join(CUTOUT_IMPLS)}, got {cutout_impl!r}.")
        if isinstance(n_copies, bool) or not isinstance(n_copies, int) or n_copies < 1:
            raise ConfigError(f"n_copies (extend copies) must be a positive integer, got {n_copies!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"the extend seed must be an integer, got {seed!r}.")
        if images.shape[0] == 0:
            raise ConfigError("cannot extend an empty unlabeled set.")
        if images.shape[0] >= _HASH:
            raise ConfigError(
                f"the virtual extend pool supports at most {_HASH - 1:,} unlabeled images, got {images.shape[0]:,}."
            )
        unknown = sorted(set(erasing_options) - set(ERASING_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown extend option(s) {', '.join(unknown)}; random erasing takes {', '.join(ERASING_OPTIONS)}."
            )
        defaults = {"p": 0.3, "area": (0.02, 0.4), "aspect": (0.3, 1 / 0.3), "fill": (0, 255)}
        self.erasing = _check_erasing(**{**defaults, **erasing_options})
        self.cutout_size = _check_size(cutout_size)
        self.devries_fill = _check_fill(devries_fill)
        self.padding = _check_padding(padding, images.shape[2], images.shape[3])
        self.hflip = bool(hflip)
        self.images = images
        self.num_images = images.shape[0]
        self.n_copies = 1 if aug == "none" else n_copies
        self.aug, self.mode, self.seed, self.cutout_impl = aug, mode, seed, cutout_impl
        self._pool: torch.Tensor | None = None
        if mode == "materialize" and aug != "none":
            self._pool = self._materialize(float(max_bytes))

    def __len__(self) -> int:
        return self.n_copies * self.num_images

    def __repr__(self) -> str:
        what = self.aug if self.aug != "cutout" else f"cutout[{self.cutout_impl}]"
        return (
            f"ExtendedPool({self.num_images} images x {self.n_copies} copies, aug={what}, mode={self.mode}, "
            f"seed={self.seed})"
        )

    @property
    def materialized_bytes(self) -> int:
        """Bytes a materialized pool of these images takes (uint8)."""
        return len(self) * int(math.prod(self.images.shape[1:]))

    def get(self, index: torch.Tensor) -> torch.Tensor:
        """Pool entries ``index`` (int64 (B,), any device) as uint8 (B, C, H, W) on the images' device."""
        index = torch.as_tensor(index)
        if index.dim() != 1 or index.is_floating_point() or index.dtype == torch.bool:
            raise IndexError(
                f"ExtendedPool.get takes a 1-D integer index tensor, got {index.dtype} {tuple(index.shape)}."
            )
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise IndexError(f"pool index out of range [0, {len(self)}): got {int(index.min())}..{int(index.max())}.")
        if self._pool is not None:
            return self._pool[to_device(index, self._pool.device)]
        if self.aug == "none":
            return self.images[to_device(index, self.images.device)]
        return self._copies(index.cpu())

    def _copies(self, keys: torch.Tensor) -> torch.Tensor:
        """Pool entries ``keys`` (int64 CPU): parameters drawn for all of them at once, one batched apply."""
        image_ids, copy_ids = keys % self.num_images, keys // self.num_images
        x = self.images[to_device(image_ids, self.images.device)]
        height, width = x.shape[2], x.shape[3]

        def draws(count: int, offset: int = 0) -> torch.Tensor:
            return keyed_uniform(self.seed, image_ids, copy_ids, count=count, offset=offset)

        if self.aug == "simple":
            u = draws(3)
            flip = (u[:, 0] < 0.5) if self.hflip else torch.zeros_like(u[:, 0], dtype=torch.bool)
            offsets = (u[:, 1:] * (2 * self.padding + 1)).floor().long() - self.padding
            return _shift_flip(x, torch.cat([offsets, flip.long()[:, None]], 1))
        if self.cutout_impl == "devries":
            u = draws(2)
            half = self.cutout_size // 2
            centre = (u * torch.tensor([height, width], dtype=torch.float64)).floor().long()
            size = torch.full_like(centre, 2 * half)
            fill = torch.full_like(centre[:, :1], self.devries_fill)
            return _fill_rectangles(x, torch.cat([centre - half, size, fill], 1))

        def more(rows: torch.Tensor, round_: int) -> torch.Tensor:
            offset = _ERASING_BLOCK + (round_ - 1) * 4 * _ERASING_TRIES
            return keyed_uniform(self.seed, image_ids[rows], copy_ids[rows], count=4 * _ERASING_TRIES, offset=offset)

        return _fill_rectangles(x, _erasing_boxes(draws(_ERASING_BLOCK), more, height, width, self.erasing))

    def _materialize(self, max_bytes: float) -> torch.Tensor:
        need = self.materialized_bytes
        if need > max_bytes:
            raise ConfigError(
                f"materializing the extended pool needs {need / 1e9:.2f} GB, above the {max_bytes / 1e9:.2f} GB "
                f"limit. It holds {self.n_copies} copies of {self.num_images:,} images; use extend mode 'virtual' "
                "(same pool, drawn on demand) or raise max_bytes."
            )
        pool = torch.empty((len(self), *self.images.shape[1:]), dtype=torch.uint8, device=self.images.device)
        for start in range(0, len(self), _MATERIALIZE_CHUNK):
            keys = torch.arange(start, min(start + _MATERIALIZE_CHUNK, len(self)))
            pool[start : start + len(keys)] = self._copies(keys)
        return pool
