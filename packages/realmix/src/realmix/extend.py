"""RealMix's offline ``Extend`` step (Nair et al. 2019, §3.1): many strongly augmented copies of the unlabeled set.

The paper replaces the unlabeled set by 50 CutOut-augmented copies of every image (original images not included).
What the authors' code calls "cutout" is Random Erasing (the yu4u implementation, ``p = 0.3``, area 2-40 %, aspect
0.3-3.33, one constant fill value per image), so that is the default here; DeVries & Taylor Cutout and the "Simple
Aug" ablation (flip + reflect-pad shift, Table 5) are the alternatives.

Copies are addressed as pool index ``k`` -> image ``i = k % N``, copy ``j = k // N``. Copy ``(i, j)`` is a pure
function of ``(seed, i, j)``: its parameters come from a CPU generator seeded by :func:`copy_seed`, so a "virtual"
pool draws them on demand (no 7.6 GB array for CIFAR-10) and a "materialized" pool precomputes exactly the same
images. Only the parameter draw loops over samples; the pixels are written with one batched op on the images'
device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from mixlab.data.transforms import cutout_mask, random_crop, random_hflip
from mixlab.errors import ConfigError
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

_Rect = tuple[int, int, int, int, int]  # top, left, height, width, fill value (height = width = 0: untouched)
_ErasingParams = tuple[float, tuple[float, float], tuple[float, float], tuple[float, float]]


def copy_seed(seed: int, index: int, copy: int) -> int:
    """Seed of the generator that draws copy ``copy`` of image ``index`` (distinct for ``index < 1_000_003``)."""
    return (seed * _HASH * _HASH + copy * _HASH + index) % (2**63)


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


def _cpu_uniform(n: int, generator: torch.Generator | None) -> list[float]:
    """``n`` U[0, 1) floats as a Python list, from ``generator`` (on its device) or torch's global CPU RNG."""
    if generator is None:
        return torch.rand(n, dtype=torch.float64).tolist()
    return torch.rand(n, dtype=torch.float64, generator=generator, device=generator.device).cpu().tolist()


def _draw_erasing(
    u: list[float], refill: Callable[[], list[float]], height: int, width: int, params: _ErasingParams
) -> _Rect:
    """One image's yu4u random-erasing rectangle from a block of uniforms (``u[0]`` apply, ``u[1]`` fill, then tries).

    Mirrors ``get_random_eraser``: apply with probability p (``u < p``, so p = 0 is exactly the identity), then
    re-draw area s and aspect r and the top-left corner until the ``int(sqrt(s/r)) x int(sqrt(s·r))`` box fits.
    The fill is truncated to an integer like the uint8 assignment in the reference.
    """
    p, (area_lo, area_hi), (aspect_lo, aspect_hi), (fill_lo, fill_hi) = params
    if not u[0] < p:
        return 0, 0, 0, 0, 0
    value = min(int(fill_lo + u[1] * (fill_hi - fill_lo)), 255)
    tries, pos = u, 2
    for _ in range(_ERASING_MAX_TRIES):
        if pos + 4 > len(tries):
            tries, pos = refill(), 0
        s = (area_lo + tries[pos] * (area_hi - area_lo)) * height * width
        r = aspect_lo + tries[pos + 1] * (aspect_hi - aspect_lo)
        w, h = int(math.sqrt(s / r)), int(math.sqrt(s * r))
        left, top = int(tries[pos + 2] * width), int(tries[pos + 3] * height)
        pos += 4
        if left + w <= width and top + h <= height:
            return top, left, h, w, value
    raise ConfigError(
        f"random erasing found no box that fits a {height}x{width} image in {_ERASING_MAX_TRIES} "
        f"tries; area={params[1]} and aspect={params[2]} are too large for this image size."
    )


def _draw_devries(generator: torch.Generator, height: int, width: int, size: int, fill: int) -> _Rect:
    """The draws of :func:`mixlab.data.transforms.cutout_mask` for one image, as a (clipped-by-mask) rectangle."""
    centre_y = int(torch.randint(0, height, (1,), generator=generator).item())
    centre_x = int(torch.randint(0, width, (1,), generator=generator).item())
    half = size // 2
    return centre_y - half, centre_x - half, 2 * half, 2 * half, fill


def _draw_simple(generator: torch.Generator, padding: int, hflip: bool) -> tuple[int, int, int, bool]:
    """:func:`simple_augment`'s draws for one image (flip, then the y and x offsets): ``(oy, ox, padding, flip)``."""
    flip = bool(torch.rand((1,), generator=generator).item() < 0.5) if hflip else False
    offset_y = int(torch.randint(0, 2 * padding + 1, (1,), generator=generator).item())
    offset_x = int(torch.randint(0, 2 * padding + 1, (1,), generator=generator).item())
    return offset_y, offset_x, padding, flip


# ------------------------------------------------------------------------------------------------ batched apply


def _fill_rectangles(x: torch.Tensor, rects: Sequence[_Rect]) -> torch.Tensor:
    """Write one constant rectangle per image (all channels) with a single masked ``where`` on x's device.

    Rectangles may reach outside the image (DeVries holes near a border): the masks clip them.
    """
    if x.shape[0] == 0:
        return x.clone()
    params = to_device(torch.tensor(rects, dtype=torch.long), x.device)
    top, left, height, width, value = params.unbind(1)
    rows = torch.arange(x.shape[2], device=x.device)
    cols = torch.arange(x.shape[3], device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
    return torch.where(mask, value.to(x.dtype)[:, None, None, None], x)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def _shift_flip(x: torch.Tensor, shifts: Sequence[tuple[int, int, int, bool]]) -> torch.Tensor:
    """Per-image flip, then reflect-pad + crop at the given offsets, as two gathers (same maths as random_crop)."""
    b, c, h, w = x.shape
    if b == 0:
        return x.clone()
    params = torch.tensor([(oy - pad, ox - pad, int(flip)) for oy, ox, pad, flip in shifts], dtype=torch.long)
    params = to_device(params, x.device)
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
    block = _cpu_uniform(n * _ERASING_BLOCK, generator)

    def refill() -> list[float]:
        return _cpu_uniform(4 * _ERASING_TRIES, generator)

    rects = [
        _draw_erasing(block[b * _ERASING_BLOCK : (b + 1) * _ERASING_BLOCK], refill, height, width, params)
        for b in range(n)
    ]
    return _fill_rectangles(x, rects)


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
        keys = index.tolist()
        return self._copies([k % self.num_images for k in keys], [k // self.num_images for k in keys])

    def _copies(self, image_ids: list[int], copy_ids: list[int]) -> torch.Tensor:
        """Copies ``(image_ids[b], copy_ids[b])``: per-sample parameter draws, one batched apply."""
        x = self.images[to_device(torch.tensor(image_ids, dtype=torch.long), self.images.device)]
        height, width = x.shape[2], x.shape[3]
        generator = torch.Generator()
        seeds = [copy_seed(self.seed, i, j) for i, j in zip(image_ids, copy_ids)]
        if self.aug == "simple":
            shifts = []
            for s in seeds:
                generator.manual_seed(s)
                shifts.append(_draw_simple(generator, self.padding, self.hflip))
            return _shift_flip(x, shifts)
        rects: list[_Rect] = []
        if self.cutout_impl == "devries":
            for s in seeds:
                generator.manual_seed(s)
                rects.append(_draw_devries(generator, height, width, self.cutout_size, self.devries_fill))
        else:

            def refill() -> list[float]:
                return _cpu_uniform(4 * _ERASING_TRIES, generator)

            for s in seeds:
                generator.manual_seed(s)
                rects.append(
                    _draw_erasing(_cpu_uniform(_ERASING_BLOCK, generator), refill, height, width, self.erasing)
                )
        return _fill_rectangles(x, rects)

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
            keys = range(start, min(start + _MATERIALIZE_CHUNK, len(self)))
            pool[start : start + len(keys)] = self._copies(
                [k % self.num_images for k in keys], [k // self.num_images for k in keys]
            )
        return pool
