"""Mask pictures: colours, overlays, atomic PNG files and the README grids."""

import numpy as np
import pytest
import torch
from mixlab.seg.data import voc_palette
from mixlab.seg.visual import IGNORE_COLOR, colorize, mask_grid, overlay, save_png
from PIL import Image

PALETTE = torch.tensor([[0, 0, 0], [200, 10, 20], [5, 250, 40]], dtype=torch.uint8)
MASK = torch.tensor([[0, 1, 2], [2, 255, 1]])


def test_colorize_takes_colours_from_the_palette():
    out = colorize(MASK, PALETTE)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert out[0].tolist() == PALETTE.tolist() and out[1, 0].tolist() == [5, 250, 40]
    assert out[1, 1].tolist() == list(IGNORE_COLOR)  # a 3-colour palette has no entry 255: white
    voc = voc_palette()
    assert colorize(MASK, voc)[1, 1].tolist() == [224, 224, 192]  # VOC's own colour of 255
    assert colorize(MASK.numpy(), PALETTE, ignore_color=(1, 2, 3))[1, 1].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="no colour"):
        colorize(torch.tensor([[3]]), PALETTE)
    with pytest.raises(ValueError, match="integer"):
        colorize(MASK.float(), PALETTE)


def test_overlay_tints_labelled_pixels_only():
    image = torch.randint(0, 256, (3, 2, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    hwc = image.permute(1, 2, 0).numpy()
    assert np.array_equal(overlay(image, MASK, PALETTE, alpha=0.0), hwc)
    assert np.array_equal(overlay(hwc, MASK, PALETTE, alpha=0.0), hwc)  # channels-last input too
    half = overlay(image, MASK, PALETTE, alpha=0.5)
    assert np.array_equal(half[1, 1], hwc[1, 1])  # the ignored pixel is not tinted
    colours = colorize(MASK, PALETTE).astype(float)
    expected = np.rint(0.5 * hwc + 0.5 * colours).astype(np.uint8)
    keep = (MASK != 255).numpy()
    assert np.array_equal(half[keep], expected[keep])
    full = overlay(image, MASK, PALETTE, alpha=1.0)
    assert np.array_equal(full[keep], colours.astype(np.uint8)[keep])
    square = torch.zeros(3, 3, 3, dtype=torch.uint8)  # (3, H, W) with H = W = 3 reads either way: no error
    assert overlay(square, torch.zeros(3, 3, dtype=torch.long), PALETTE).shape == (3, 3, 3)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, MASK, PALETTE, alpha=1.5)
    with pytest.raises(ValueError, match="differ in size"):
        overlay(image, MASK[:1], PALETTE)


def test_save_png_round_trips_and_is_atomic(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = save_png(rgb, tmp_path / "a" / "b" / "x.png")
    assert np.array_equal(np.asarray(Image.open(path)), rgb)
    assert np.array_equal(np.asarray(Image.open(save_png(torch.from_numpy(rgb).permute(2, 0, 1), path))), rgb)
    labels = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    indexed = Image.open(save_png(labels, tmp_path / "label.png", palette=voc_palette()))
    assert indexed.mode == "P" and np.array_equal(np.asarray(indexed), labels)
    assert indexed.getpalette()[3:6] == [128, 0, 0]  # VOC class 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "label.png", "x.png"]  # no temporary left
    with pytest.raises(ValueError, match="uint8"):
        save_png(rgb.astype(np.float32), tmp_path / "f.png")


def test_mask_grid_layout(tmp_path):
    images = torch.stack([torch.full((3, 4, 6), v, dtype=torch.uint8) for v in (10, 90)])
    gt = torch.tensor([[[1] * 6] * 4, [[2] * 6] * 4])
    pred = gt.clone()
    pred[0, 0, 0] = 255
    path = mask_grid(images, [("ground truth", gt), ("prediction", pred)], PALETTE, tmp_path / "g.png",
                     labels=False, scale=2, gap=1)  # fmt: skip
    grid = np.asarray(Image.open(path))
    cell_h, cell_w = 4 * 2, 6 * 2
    assert grid.shape == (3 * (cell_h + 1) + 1, 2 * (cell_w + 1) + 1, 3)
    cell = lambda r, c: grid[1 + r * (cell_h + 1) : 1 + r * (cell_h + 1) + cell_h, 1 + c * (cell_w + 1) :][:, :cell_w]  # noqa: E731
    assert (cell(0, 0) == 10).all() and (cell(0, 1) == 90).all()
    assert (cell(1, 0) == [200, 10, 20]).all() and (cell(1, 1) == [5, 250, 40]).all()
    assert (cell(2, 0)[:2, :2] == 255).all() and (cell(2, 0)[2:] == [200, 10, 20]).all()  # the ignored pixel, x2

    labelled = np.asarray(Image.open(mask_grid(images, [("ground truth", gt)], PALETTE, tmp_path / "l.png", gap=1)))
    assert labelled.shape[0] == 2 * (4 + 1) + 1 and labelled.shape[1] > 2 * (6 + 1) + 1  # a margin for the names
    margin = labelled.shape[1] - (2 * (6 + 1) + 1)
    assert (labelled[:, :margin] < 128).any()  # some dark text in it
    with pytest.raises(ValueError, match="masks for 2 images"):
        mask_grid(images, [("gt", gt[:1])], PALETTE, tmp_path / "x.png")
    with pytest.raises(ValueError, match="differ in size"):
        mask_grid(images, [("gt", gt[:, :2])], PALETTE, tmp_path / "x.png")


def test_mask_grid_takes_images_of_different_sizes(tmp_path):
    images = [np.zeros((4, 5, 3), np.uint8), torch.zeros(3, 6, 3, dtype=torch.uint8)]
    masks = [torch.zeros(4, 5, dtype=torch.long), np.ones((6, 3), np.int64)]
    grid = np.asarray(Image.open(mask_grid(images, [("gt", masks)], PALETTE, tmp_path / "g.png", labels=False)))
    assert grid.shape == (2 * (6 + 2) + 2, 5 + 3 + 3 * 2, 3)
