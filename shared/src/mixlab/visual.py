"""PNG pictures: the hybrid grids of SAMOSA and SciMix (semantic parents x appearance parents), reliability diagrams,
and test curves over training."""

from __future__ import annotations

from pathlib import Path

import torch


def save_png_atomically(image, path: str | Path) -> Path:
    """Write a PIL image to ``path`` as PNG through a temporary file in the same folder (no half-written file)."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def to_uint8(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Standardised float images (N, C, H, W) back to uint8 pixels (N, 3, H, W), clipped to [0, 255]."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    pixels = (images.detach().float().cpu() * s + m).clamp(0, 1).mul(255).round().to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


def grid_parents(targets: torch.Tensor, rows: int, columns: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a hybrid grid's parents in a labelled set: ``rows`` semantic parents (one of each class first,
    in class order, then others) and ``columns`` random appearance parents, drawn from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(targets), generator=generator)
    first = [int(order[(targets[order] == c).nonzero()[0, 0]]) for c in targets.unique().tolist()]
    chosen = set(first)
    row_index = torch.tensor((first + [int(i) for i in order if int(i) not in chosen])[:rows])
    return row_index, torch.randperm(len(targets), generator=generator)[:columns]


def save_hybrid_grid(
    rows: torch.Tensor,
    columns: torch.Tensor,
    cells: torch.Tensor,
    path: str | Path,
    *,
    rejected: torch.Tensor | None = None,
    scale: int = 2,
    gap: int = 2,
) -> Path:
    """Write a (R+1) x (C+1) PNG: the row parents (R, 3, H, W) down the first column, the column parents (C, 3, H, W)
    along the first row, and ``cells[r, c]`` (R, C, 3, H, W) in between; all uint8. Cells marked in ``rejected``
    (R, C) get a red frame. Each image is enlarged ``scale`` times (nearest), with ``gap`` white pixels between."""
    from PIL import Image, ImageDraw

    R, C, _, H, W = cells.shape
    if rows.shape[0] != R or columns.shape[0] != C:
        raise ValueError(
            f"{R} x {C} cells need {R} row and {C} column parents, got {rows.shape[0]} and {columns.shape[0]}"
        )
    h, w = H * scale, W * scale
    canvas = Image.new("RGB", ((C + 1) * (w + gap) + gap, (R + 1) * (h + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)

    def paste(image: torch.Tensor, r: int, c: int) -> tuple[int, int]:
        array = image.permute(1, 2, 0).contiguous().numpy()
        tile = Image.fromarray(array, "RGB").resize((w, h), Image.NEAREST)
        x, y = gap + c * (w + gap), gap + r * (h + gap)
        canvas.paste(tile, (x, y))
        return x, y

    draw.rectangle([0, 0, w + gap, h + gap], fill=(230, 230, 230))  # the empty corner
    for c in range(C):
        paste(columns[c], 0, c + 1)
    for r in range(R):
        paste(rows[r], r + 1, 0)
        for c in range(C):
            x, y = paste(cells[r, c], r + 1, c + 1)
            if rejected is not None and bool(rejected[r, c]):
                draw.rectangle([x, y, x + w - 1, y + h - 1], outline=(220, 0, 0), width=max(1, scale))
    return save_png_atomically(canvas, path)


def save_reliability_diagram(bins: dict, path: str | Path, title: str = "", size: int = 360) -> Path:
    """A reliability diagram PNG from :func:`mixlab.metrics.reliability_bins`: one bar per confidence bin at its
    accuracy (blue), the gap to the bin's mean confidence (red outline), the diagonal of perfect calibration, the
    share of images per bin as a strip under the axis, and the ECE. Written atomically."""
    import math

    from PIL import Image, ImageDraw

    margin, strip = 44, 24
    width, height = size + 2 * margin, size + 2 * margin + strip
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x0, y0 = margin, margin  # the plot's top-left corner; y grows downwards

    def point(confidence: float, accuracy: float) -> tuple[float, float]:
        return x0 + confidence * size, y0 + (1 - accuracy) * size

    edges, total = bins["edges"], max(1.0, sum(bins["count"]))
    for i, (count, conf, acc) in enumerate(zip(bins["count"], bins["confidence"], bins["accuracy"])):
        left, right = x0 + edges[i] * size, x0 + edges[i + 1] * size
        share = count / total
        draw.rectangle([left, y0 + size + 6, right, y0 + size + 6 + strip * share], fill=(120, 120, 120))
        if count == 0 or math.isnan(acc):
            continue
        draw.rectangle([left, point(0, acc)[1], right, y0 + size], fill=(70, 110, 200), outline=(40, 60, 120))
        top, bottom = sorted((point(0, acc)[1], point(0, conf)[1]))
        draw.rectangle([left, top, right, bottom], outline=(200, 40, 40), width=2)
    draw.line([point(0, 0), point(1, 1)], fill=(0, 0, 0), width=1)
    draw.rectangle([x0, y0, x0 + size, y0 + size], outline=(0, 0, 0))
    for tick in (0.0, 0.5, 1.0):
        draw.text((point(tick, 0)[0] - 8, y0 + size + strip + 10), f"{tick:.1f}", fill=(0, 0, 0))
        draw.text((x0 - 30, point(0, tick)[1] - 6), f"{tick:.1f}", fill=(0, 0, 0))
    draw.text((x0, y0 + size + strip + 24), "confidence (bars: accuracy; strip: share of images)", fill=(0, 0, 0))
    draw.text((x0, 8), f"{title}  ECE {100 * bins['ece']:.2f}%".strip(), fill=(0, 0, 0))
    return save_png_atomically(canvas, path)


#: Line colours of :func:`save_curves`, one per series (cycled).
CURVE_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34))  # fmt: skip


def save_curves(
    series: dict[str, list[tuple[float, float, float, float]]],
    path: str | Path,
    *,
    title: str = "",
    x_label: str = "step",
    y_label: str = "",
    size: tuple[int, int] = (640, 400),
) -> Path:
    """Test curves as a PNG: for each labelled series, points ``(x, mean, low, high)`` drawn as a line through the
    means over a light band from low to high (e.g. the min and max over seeds), with a legend. Written atomically."""
    from PIL import Image, ImageDraw

    points = [p for pts in series.values() for p in pts]
    if not points:
        raise ValueError("save_curves needs at least one point")
    left, right, top, bottom = 56, 16, 28, 44
    legend = 14 * len(series) + 6
    width, plot_h = size
    height = plot_h + legend
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[2] for p in points), max(p[3] for p in points)
    if x_hi == x_lo:
        x_hi = x_lo + 1
    pad = 0.05 * (y_hi - y_lo) or 1.0
    y_lo, y_hi = y_lo - pad, y_hi + pad
    box_w, box_h = width - left - right, plot_h - top - bottom

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x - x_lo) / (x_hi - x_lo) * box_w, top + (1 - (y - y_lo) / (y_hi - y_lo)) * box_h

    canvas = Image.new("RGB", (width, height), "white")
    for i, pts in enumerate(series.values()):  # translucent bands, so that overlapping ones stay visible
        pts = sorted(pts)
        if len(pts) > 1:
            layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
            band = [at(x, hi) for x, _, _, hi in pts] + [at(x, lo) for x, _, lo, _ in reversed(pts)]
            ImageDraw.Draw(layer).polygon(band, fill=(*CURVE_COLOURS[i % len(CURVE_COLOURS)], 64))
            canvas = Image.alpha_composite(canvas.convert("RGBA"), layer).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for i, pts in enumerate(series.values()):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        line = [at(x, mean) for x, mean, _, _ in sorted(pts)]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    draw.rectangle([left, top, left + box_w, top + box_h], outline=(0, 0, 0))
    for k in range(5):
        y_value = y_lo + (y_hi - y_lo) * k / 4
        draw.text((4, at(x_lo, y_value)[1] - 6), f"{y_value:.4g}", fill=(0, 0, 0))
        x_value = x_lo + (x_hi - x_lo) * k / 4
        draw.text((at(x_value, y_lo)[0] - 10, top + box_h + 6), f"{x_value:.4g}", fill=(0, 0, 0))
    draw.text((left + box_w // 2 - 20, top + box_h + 22), x_label, fill=(0, 0, 0))
    draw.text((left, 8), f"{title}   ({y_label})" if y_label else title, fill=(0, 0, 0))
    for i, label in enumerate(series):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        y = plot_h + 14 * i
        draw.rectangle([left, y + 3, left + 18, y + 9], fill=colour)
        draw.text((left + 26, y), label, fill=(0, 0, 0))
    return save_png_atomically(canvas, path)
