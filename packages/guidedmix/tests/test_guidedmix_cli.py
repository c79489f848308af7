"""`guidedmix train | eval | recipes | predict` on the built-in digit-scenes: the run directory, exact resume, the
written split, eval's per-class table, predict's pictures, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mixlab.engine import load_checkpoint
from mixlab.testing import assert_resume_is_exact, one_line_error, torch_threads
from PIL import Image


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fast_options):
    from guidedmix.cli import app
    from mixlab.testing import cli_invoker

    out = tmp_path_factory.mktemp("gm") / "run"
    with torch_threads(1):
        result = cli_invoker(app)("train", *fast_options, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_the_split_metrics_and_checkpoints(trained):
    labeled = (trained / "labeled.txt").read_text().split()
    unlabeled = (trained / "unlabeled.txt").read_text().split()
    assert len(labeled) == 20 and len(unlabeled) == 1980 and not set(labeled) & set(unlabeled)
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 4 and 0 <= summary["final"]["miou"] <= 100
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4] and "usup" in records[-1]["train"]
    state = load_checkpoint(trained / "checkpoints" / "last.pt")
    assert state["extra"]["classes"]["names"][0] == "background" and len(state["extra"]["classes"]["names"]) == 11


def test_eval_prints_miou_and_per_class_iou(trained, run_cli, tmp_path):
    with torch_threads(1):
        result = run_cli("eval", "-c", trained, "--device", "cpu", "--max-images", "10", "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert 0 <= report["metrics"]["miou"] <= 100 and "per-class IoU" in result.output
    assert set(next(iter(report["tables"].values()))) >= {"background", "0", "9"}
    with torch_threads(1):
        flipped = run_cli("eval", "-c", trained, "--device", "cpu", "--max-images", "4", "--tta", "ms_flip")
    assert flipped.exit_code == 0 and "ms_flip" in flipped.output


def test_predict_writes_mask_overlay_and_labels(trained, run_cli, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (40, 52)), ("b.jpg", (33, 33))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(images / name)
    out = tmp_path / "pred"
    with torch_threads(1):
        result = run_cli("predict", "-c", trained, "-i", images, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    for stem, size in (("a", (40, 52)), ("b", (33, 33))):
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        labels = np.asarray(Image.open(out / f"{stem}_labels.png"))
        assert mask.shape == (*size, 3) and labels.shape == size and labels.max() < 11
        assert np.asarray(Image.open(out / f"{stem}_overlay.png")).shape == (*size, 3)
    assert len(json.loads((out / "predictions.json").read_text())) == 2


def test_pictures_draws_image_truth_and_one_row_per_run(trained, run_cli, tmp_path):
    with torch_threads(1):
        result = run_cli("pictures", "-c", trained, "-c", trained, "--out", tmp_path / "g.png", "--count", "3",
                         "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.ndim == 3 and grid.shape[0] >= 4 * 128 and grid.shape[1] >= 3 * 128  # 4 rows, 3 columns of 128


def test_resume_is_exact(run_cli, fast_options, tmp_path):
    with torch_threads(1):
        assert_resume_is_exact(run_cli, ["train", *fast_options], tmp_path, stop_after=3)


def test_recipes_list_and_show(run_cli):
    listing = run_cli("recipes")
    assert listing.exit_code == 0 and "voc-r50-1464" in listing.output and "73.7" in listing.output
    shown = run_cli("recipes", "--show", "cityscapes-r101-1-8")
    assert shown.exit_code == 0 and "Table 7" in shown.output and '"pairing": "random"' in shown.output


def test_bad_input_is_one_line(run_cli, fast_options, tmp_path):
    assert "unknown segmentation dataset" in one_line_error(run_cli("train", "--recipe", "digits-100", "--dataset", "nope", "--out", tmp_path / "a"))  # fmt: skip
    assert "lambda_max" in one_line_error(run_cli("train", *fast_options, "--lambda-max", "0.7", "--out", tmp_path / "b"))  # fmt: skip
    missing = one_line_error(run_cli("train", "--dataset", "voc-aug", "--data-root", tmp_path, "--out", tmp_path / "c"))
    assert "VOC" in missing
    assert not (tmp_path / "c").exists()
    too_many = one_line_error(run_cli("train", *fast_options, "--labels", "3000", "--out", tmp_path / "d"))
    assert "3000" in too_many or "labeled" in too_many
