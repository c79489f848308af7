"""The ImageNet-100 recipes end to end on miniature ImageFolder trees of real JPEGs (both on-disk layouts), and
DeiT's repeated augmentation (`--set repetition_mode=deit_ra`)."""

import json
from pathlib import Path

import numpy as np
import pytest
from mixlab.data.imagenet100 import CMC_WNIDS
from mixlab.engine import load_checkpoint
from mixlab.testing import assert_resume_is_exact, one_line_error
from PIL import Image

RECIPE = "imagenet100-convit-mixvit-embedding"
# The recipe with a tiny transformer: 1 block of width 32, 32 px crops cut into 8x8 patches (16 tokens), and the
# JPEGs decoded in the main process. Everything else (RandomResizedCrop, flip, ImageNet AutoAugment, RandErase,
# the simultaneous MSDA, b = 3, wd 0.1, the sqrt LR rule) is the recipe's.
TINY = [
    "--recipe",
    RECIPE,
    "--model",
    "convit1-32",
    "--set",
    "patch_size=8",
    "--set",
    "image_size=32",
    "--set",
    "data_workers=0",
    "--no-progress",
    "--device",
    "cpu",
]


def write_tree(folder: Path, extra_classes: tuple[str, ...] = ()) -> Path:
    """``folder/{train,val}/<wnid>/0.JPEG``: one small JPEG of each of the 100 CMC classes (and of ``extra``)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in (*CMC_WNIDS, *extra_classes):
            (folder / split / wnid).mkdir(parents=True)
            size = tuple(int(v) for v in rng.integers(10, 24, 2))
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / split / wnid / "0.JPEG")
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_tree(root / "imagenet100")  # the CMC subset
    write_tree(root / "full" / "imagenet", extra_classes=("n01440764", "n01443537"))  # ImageNet-1k stand-in
    return root


def test_recipe_trains_on_the_subset_tree(run_cli, data_root, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", *TINY, "--data-root", data_root, "--batch-size", 60, "--epochs", 1, "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 100 * 3 // 60  # MixMo's batch repetition
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["dataset"], config["autoaugment"], config["weight_decay"], config["image_size"]) == (
        "imagenet100",
        "imagenet",
        0.1,
        32,
    )
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(record["head_top1"]) == 2 and 0 < record["train"]["msda_lambda"] <= 1
    assert load_checkpoint(out / "checkpoints" / "last.pt")["model"]["heads.0.weight"].shape == (100, 32)
    report = tmp_path / "eval.json"
    result = run_cli("eval", "-c", out / "checkpoints" / "last.pt", "--data-root", data_root, "--json", report)
    assert result.exit_code == 0, result.output  # the test set is read at the run's image_size (32 px)
    assert json.loads(report.read_text())["metrics"]["top1"] == pytest.approx(record["top1"], abs=1e-6)


def test_full_imagenet_tree_with_deit_ra_and_workers_resumes_exactly(run_cli, data_root, tmp_path, monkeypatch):
    """Pairing and every crop are seeded per batch, so a resumed run decodes the same images (in a worker)."""
    monkeypatch.setenv("MIXLAB_DATA", str(data_root / "full"))  # `train --resume` takes no --data-root
    args = [
        "train",
        *TINY,
        "--set",
        "repetition_mode=deit_ra",
        "--set",
        "data_workers=1",
        "--batch-size",
        50,
        "--epochs",
        1,
    ]
    assert_resume_is_exact(run_cli, args, tmp_path, stop_after=1)
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["steps"] == 100 // 50  # repeated augmentation: N samples per epoch, not N * b


def test_eval_reads_the_test_set_at_224_pixels(run_cli, data_root, tmp_path):
    """At the recipe's own size (patch 56: 4x4 tokens), `mixvit eval` decodes the val images through the lazy view
    (Resize(256) + CenterCrop(224))."""
    out = tmp_path / "run"
    args = [
        "train",
        "--recipe",
        RECIPE,
        "--model",
        "convit1-32",
        "--set",
        "patch_size=56",
        "--set",
        "data_workers=0",
        "--data-root",
        data_root,
        "--batch-size",
        6,
        "--epochs",
        1,
        "--stop-after-steps",
        1,
        "--no-progress",
        "--device",
        "cpu",
        "--out",
        out,
    ]
    assert run_cli(*args).exit_code == 0
    report = tmp_path / "report.json"
    result = run_cli(
        "eval", "-c", out / "checkpoints" / "last.pt", "--data-root", data_root, "--device", "cpu", "--json", report
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text())["metrics"]
    assert 0 <= metrics["top1"] <= 100 and len(metrics["head_top1"]) == 2


def test_deit_ra_on_in_memory_data_keeps_the_samples_per_epoch(run_cli, tmp_path):
    out = tmp_path / "run"
    tiny = [
        "--model",
        "convit1-32",
        "--set",
        "patch_size=8",
        "--set",
        "autoaugment=none",
        "--no-progress",
        "--device",
        "cpu",
    ]
    result = run_cli(
        "train",
        "--set",
        "repetition_mode=deit_ra",
        "--batch-size",
        256,
        "--epochs",
        1,
        "--stop-after-steps",
        2,
        "--out",
        out,
        *tiny,
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["repetition_mode"] == "deit_ra" and config["batch_size"] == 256  # not a multiple of b = 3
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 2


def test_one_line_errors(run_cli, data_root, tmp_path):
    missing = one_line_error(run_cli("train", *TINY, "--data-root", tmp_path / "empty", "--out", tmp_path / "a"))
    assert "imagenet100" in missing and "cannot be downloaded" in missing
    partner = one_line_error(
        run_cli("train", *TINY, "--data-root", data_root, "--set", "msda_partner=dataset", "--out", tmp_path / "b")
    )
    assert "msda_partner=dataset" in partner and "msda_partner=batch" in partner
    fixed = [
        "--recipe",
        "digits-convit-single",
        "--dataset",
        "svhn",
        "--set",
        "image_size=16",
        "--no-progress",
        "--out",
        tmp_path / "c",
    ]
    assert "does not take the option(s) image_size" in one_line_error(run_cli("train", *fixed))  # svhn is 32x32
    mode = one_line_error(run_cli("train", "--set", "repetition_mode=ra", "--no-progress", "--out", tmp_path / "d"))
    assert "repetition_mode must be one of mixmo, deit_ra" in mode
    assert not any((tmp_path / name / "summary.json").exists() for name in "abcd")
