"""Pictures of segmentation masks: colour maps, overlays, PNG files and the image / ground truth / prediction grids of
the READMEs. numpy and PIL only (no matplotlib).

Inputs may be torch tensors or numpy arrays; outputs are numpy ``uint8`` arrays (H, W, 3). Masks hold class indices
in ``[0, K)`` for a palette of K colours, or ``ignore_index`` (255). Ignored pixels are drawn in ``ignore_color``; by
default that is the palette's own entry 255 when it has one (the 256-colour VOC map of
:func:`mixlab.seg.data.voc_palette` gives the devkit's cream (224, 224, 192) there, as in VOC's label PNGs), and
white (255, 255, 255) for shorter palettes. Overlays never tint ignored pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mixlab.seg.data.dataset import IGNORE_INDEX
from mixlab.visual import save_png_atomically

ArrayLike = torch.Tensor | np.ndarray
#: the colour of ignored pixels for palettes without an entry 255
IGNORE_COLOR = (255, 255, 255)


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _palette(palette: ArrayLike) -> np.ndarray:
    p = _numpy(palette)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] == 0:
        raise ValueError(f"A palette is (K, 3) colours, got shape {p.shape}.")
    if p.dtype != np.uint8:
        if p.min() < 0 or p.max() > 255:
            raise ValueError("Palette colours must lie in [0, 255].")
        p = p.astype(np.uint8)
    return p


def _ignore_color(palette: np.ndarray, ignore_index: int, ignore_color: Sequence[int] | None) -> np.ndarray:
    if ignore_color is not None:
        return np.asarray(ignore_color, dtype=np.uint8).reshape(3)
    if 0 <= ignore_index < len(palette):
        return palette[ignore_index]
    return np.asarray(IGNORE_COLOR, dtype=np.uint8)


def _mask(mask: ArrayLike) -> np.ndarray:
    m = _numpy(mask)
    if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"A mask is an integer (H, W) array, got {m.dtype} {m.shape}.")
    return m.astype(np.int64)


def colorize(
    mask: ArrayLike,
    palette: ArrayLike,
    *,
    ignore_index: int = IGNORE_INDEX,
    ignore_color: Sequence[int] | None = None,
) -> np.ndarray:
    """The colours of an integer mask (H, W): ``palette[mask]`` as uint8 (H, W, 3), ``ignore_index`` pixels in
    ``ignore_color`` (see the module docstring for the default). A value outside the palette is a ValueError."""
    m, p = _mask(mask), _palette(palette)
    ignored = m == ignore_index
    bad = ~ignored & ((m < 0) | (m >= len(p)))
    if bad.any():
        raise ValueError(f"Mask values {np.unique(m[bad])[:5].tolist()} have no colour in a {len(p)}-colour palette.")
    out = p[np.where(ignored, 0, m)]
    out[ignored] = _ignore_color(p, ignore_index, ignore_color)
    return out


def _image_hwc(image: ArrayLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """A uint8 picture as (H, W, 3) from (3, H, W), (H, W, 3) or grey (H, W); ``size`` (the mask's, when known)
    settles shapes that read both ways, such as (3, W, 3); otherwise channels-last wins such ties."""
    a = _numpy(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim == 3:
        first, last = a.shape[0] in (1, 3), a.shape[-1] in (1, 3)
        if size is not None:
            fits_first, fits_last = first and a.shape[1:] == size, last and a.shape[:2] == size
            if fits_first or fits_last:  # otherwise the size check below reports the mismatch
                first, last = fits_first, fits_last
        if first and not last:
            a = a.transpose(1, 2, 0)
    if a.ndim != 3 or a.shape[-1] not in (1, 3) or a.dtype != np.uint8:
        raise ValueError(f"An image is uint8 (3, H, W) or (H, W, 3), got {a.dtype} {a.shape}.")
    if size is not None and a.shape[:2] != size:
        raise ValueError(f"Image {a.shape[:2]} and mask {size} differ in size.")
    return np.ascontiguousarray(np.broadcast_to(a, (*a.shape[:2], 3)))


def overlay(
    image: ArrayLike,
    mask: ArrayLike,
    palette: ArrayLike,
    alpha: float = 0.5,
    *,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """``image`` (uint8 (3, H, W) or (H, W, 3)) tinted with the mask's colours: (1 - alpha) image + alpha colour,
    rounded, as uint8 (H, W, 3). Ignored pixels keep the image's values exactly; alpha = 0 returns the image."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}.")
    m = _mask(mask)
    picture = _image_hwc(image, m.shape)
    colours = colorize(m, palette, ignore_index=ignore_index).astype(np.float64)
    blend = np.rint((1.0 - alpha) * picture + alpha * colours).clip(0, 255).astype(np.uint8)
    return np.where((m == ignore_index)[..., None], picture, blend)


def save_png(array: ArrayLike, path: str | Path, *, palette: ArrayLike | None = None) -> Path:
    """Write uint8 (H, W, 3) (RGB), (3, H, W) or (H, W) (grey, or indexed with ``palette`` like VOC label files) as
    a PNG, atomically (a temporary file in the same folder, then ``os.replace``); creates the parent folders."""
    from PIL import Image

    a = _numpy(array)
    if a.dtype != np.uint8:
        raise ValueError(f"save_png writes uint8 arrays, got {a.dtype}.")
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        picture = Image.fromarray(np.ascontiguousarray(a), "L" if palette is None else "P")
        if palette is not None:
            picture.putpalette(_palette(palette)[:256].reshape(-1).tolist())
    elif a.ndim == 3 and a.shape[-1] == 3:
        if palette is not None:
            raise ValueError("A palette is only for (H, W) index images.")
        picture = Image.fromarray(np.ascontiguousarray(a), "RGB")
    else:
        raise ValueError(f"save_png writes (H, W), (H, W, 3) or (3, H, W) arrays, got {a.shape}.")
    return save_png_atomically(picture, path)


def _enlarge(a: np.ndarray, scale: int) -> np.ndarray:
    return a.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else a


def mask_grid(
    images: ArrayLike | Sequence[ArrayLike],
    masks_rows: Sequence[tuple[str, ArrayLike | Sequence[ArrayLike]]],
    palette: ArrayLike,
    path: str | Path,
    *,
    image_label: str = "image",
    labels: bool = True,
    scale: int = 1,
    gap: int = 2,
    ignore_index: int = IGNORE_INDEX,
    ignore_color: Sequence[int] | None = None,
) -> Path:
    """Write a PNG grid: one column per image, the images on the first row and one row of coloured masks per
    ``(name, masks)`` of ``masks_rows`` (ground truth, then predictions), on a white canvas with ``gap`` pixels
    between cells. With ``labels`` each row is named (``image_label``, then the names) in a left margin, in PIL's
    default font. ``images`` are uint8 (N, 3, H, W) or N pictures of their own sizes ((3, H, W) or (H, W, 3)); each
    row's masks are (N, H, W) or N masks, mask j the size of image j. Cells are enlarged ``scale`` times (nearest)."""
    from PIL import Image, ImageDraw, ImageFont

    if int(scale) < 1 or int(gap) < 0:
        raise ValueError(f"scale must be >= 1 and gap >= 0, got {scale} and {gap}.")
    scale, gap = int(scale), int(gap)
    raw = list(images)
    if not raw:
        raise ValueError("mask_grid needs at least one image.")
    p = _palette(palette)
    mask_rows = [(str(name), [_mask(m) for m in masks]) for name, masks in masks_rows]
    for name, masks in mask_rows:
        if len(masks) != len(raw):
            raise ValueError(f"Row {name!r} has {len(masks)} masks for {len(raw)} images.")
    # the first row's mask sizes settle images whose layout reads both ways, such as (3, 6, 3)
    pictures = [_image_hwc(image, mask_rows[0][1][j].shape if mask_rows else None) for j, image in enumerate(raw)]
    rows: list[tuple[str, list[np.ndarray]]] = [(image_label, pictures)]
    for name, masks in mask_rows:
        cells = []
        for picture, m in zip(pictures, masks):
            if m.shape != picture.shape[:2]:
                raise ValueError(f"Row {name!r}: a {m.shape} mask for a {picture.shape[:2]} image.")
            cells.append(colorize(m, p, ignore_index=ignore_index, ignore_color=ignore_color))
        rows.append((name, cells))

    widths = [picture.shape[1] * scale for picture in pictures]
    row_height = max(picture.shape[0] for picture in pictures) * scale
    font = ImageFont.load_default() if labels else None
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = 0
    if font is not None:
        margin = max(int(np.ceil(probe.textlength(name, font=font))) for name, _ in rows) + 2 * max(gap, 4)
    canvas = Image.new(
        "RGB", (margin + sum(widths) + gap * (len(widths) + 1), len(rows) * (row_height + gap) + gap), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for r, (name, cells) in enumerate(rows):
        y = gap + r * (row_height + gap)
        if font is not None:
            top, bottom = probe.textbbox((0, 0), name, font=font)[1::2]
            draw.text((max(gap, 4), y + (row_height - (bottom - top)) // 2 - top), name, fill=(0, 0, 0), font=font)
        x = margin + gap
        for cell, width in zip(cells, widths):
            canvas.paste(Image.fromarray(_enlarge(cell, scale), "RGB"), (x, y))
            x += width + gap
    return save_png(np.asarray(canvas), path)
