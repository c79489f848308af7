"""The hybrid grid writer: layout, enlargement and the rejected marks."""

import numpy as np
import pytest
import torch
from mixlab.visual import CURVE_COLOURS, save_curves, save_hybrid_grid, to_uint8
from PIL import Image


def test_grid_places_parents_and_cells_and_frames_the_rejected(tmp_path):
    rows = torch.full((2, 3, 4, 4), 10, dtype=torch.uint8)
    columns = torch.full((3, 3, 4, 4), 200, dtype=torch.uint8)
    cells = torch.arange(6, dtype=torch.uint8).view(2, 3, 1, 1, 1).expand(2, 3, 3, 4, 4) * 30
    rejected = torch.zeros(2, 3, dtype=torch.bool)
    rejected[1, 2] = True
    path = save_hybrid_grid(rows, columns, cells, tmp_path / "g.png", rejected=rejected, scale=2, gap=1)
    image = np.asarray(Image.open(path))
    assert image.shape == (3 * 9 + 1, 4 * 9 + 1, 3)  # (R+1) x (C+1) tiles of 8 px with 1 px gaps
    tile = lambda r, c: image[1 + r * 9 : 1 + r * 9 + 8, 1 + c * 9 : 1 + c * 9 + 8]  # noqa: E731
    assert (tile(0, 1) == 200).all() and (tile(1, 0) == 10).all()
    assert (tile(1, 1) == 0).all() and (tile(2, 2) == 4 * 30).all()
    framed = tile(2, 3)
    assert (framed[0, :, 0] == 220).all() and (framed[4, 4] == 5 * 30).all()  # red frame, cell inside


def test_to_uint8_undoes_standardisation():
    pixels = torch.tensor([[[[0.0, 255.0]]]]).expand(1, 3, 1, 2)
    std = to_uint8((pixels / 255 - 0.5) / 0.25, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert std.dtype == torch.uint8 and std.tolist() == pixels.to(torch.uint8).tolist()
    with pytest.raises(ValueError, match="row and"):
        save_hybrid_grid(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), torch.zeros(2, 3, 2, 2, dtype=torch.uint8),
                         torch.zeros(2, 2, 3, 2, 2, dtype=torch.uint8), "x.png")  # fmt: skip


def test_save_curves_draws_each_series_and_its_band(tmp_path):
    series = {
        "a": [(0, 10.0, 8.0, 12.0), (100, 50.0, 40.0, 60.0)],
        "b": [(0, 20.0, 20.0, 20.0), (100, 30.0, 25.0, 35.0)],
    }
    path = save_curves(series, tmp_path / "sub" / "curves.png", title="toy", y_label="top-1 %")
    image = Image.open(path).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 16)}
    assert CURVE_COLOURS[0] in colours and CURVE_COLOURS[1] in colours  # both lines drawn
    pale = tuple(round(255 + (c - 255) * 64 / 255) for c in CURVE_COLOURS[0])
    assert any(all(abs(a - b) <= 1 for a, b in zip(pale, colour)) for colour in colours)  # series a's min-max band
    assert not list(path.parent.glob(".*"))  # no temporary file left behind


def test_save_curves_refuses_empty_input(tmp_path):
    with pytest.raises(ValueError):
        save_curves({"a": []}, tmp_path / "x.png")
