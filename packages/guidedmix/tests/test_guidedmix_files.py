"""GuidedMix end to end on miniature VOC + train_aug files in their real formats: variable-size JPEGs and palette /
grey PNG masks decoded by DataLoader workers, the official-train-list setting, per-image evaluation."""

from __future__ import annotations

import json

from mixlab.seg.testing import write_segmentation_class_aug, write_voc
from mixlab.testing import torch_threads


def test_voc_aug_run_with_the_official_train_list(run_cli, tmp_path):
    train = [f"2007_{i:06d}" for i in range(4)]
    val = [f"2008_{i:06d}" for i in range(3)]
    extra = [f"2009_{i:06d}" for i in range(6)]
    write_voc(tmp_path, train, val, image_ids=extra)
    write_segmentation_class_aug(tmp_path, train + extra, list_ids=train + extra)
    out = tmp_path / "run"
    args = ["train", "--recipe", "digits-100", "--dataset", "voc-aug", "--data-root", tmp_path, "--labels",
            "voc-aug-1464", "--crop-size", "24", "--batch-size", "2", "--unlabeled-batch-size", "2", "--steps", "3",
            "--eval-every", "3", "--set", "warmup_iters=1", "--workers", "1", "--no-progress", "--device", "cpu",
            "--out", out]  # fmt: skip
    with torch_threads(1):
        result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert sorted((out / "labeled.txt").read_text().split()) == train  # the official train list, labeled
    assert sorted((out / "unlabeled.txt").read_text().split()) == extra
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and len(summary["final"]["per_class_iou"]) == 21
    with torch_threads(1):
        scored = run_cli("eval", "-c", out, "--data-root", tmp_path, "--device", "cpu", "--json", tmp_path / "m.json")
    assert scored.exit_code == 0, scored.output
    assert "(val, 3 images, whole)" in json.loads((tmp_path / "m.json").read_text())["title"]
