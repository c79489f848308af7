"""The segmentation confusion matrix and its scores (spec guidedmix §4.5, §8 item 12), and how they compare with
segmentation-models-pytorch's metrics."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from mixlab.metrics.segmentation import MIOU_CONVENTION, ConfusionMatrix, segmentation_scores

GT = torch.tensor([[0, 0, 1], [1, 255, 2]])
PRED = torch.tensor([[0, 1, 1], [1, 2, 2]])


def matrix_of(pred, target, num_classes, ignore_index=255):
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(pred, target)
    return cm.matrix


def reference_matrix(pred, target, num_classes, ignore_index=255):
    """Pixel by pixel, in Python."""
    m = [[0] * num_classes for _ in range(num_classes)]
    for p, t in zip(pred.flatten().tolist(), target.flatten().tolist()):
        if t != ignore_index:
            m[t][p] += 1
    return torch.tensor(m)


def test_golden_case_of_the_spec():
    m = matrix_of(PRED, GT, 3)
    assert m.dtype == torch.int64
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]  # rows = ground truth, columns = prediction
    assert int(m.sum()) == 5 and int(m[:, 2].sum()) == 1  # the 255 pixel (predicted 2) is not counted
    s = segmentation_scores(m)
    assert s["per_class_iou"] == pytest.approx([50.0, 200 / 3, 100.0], abs=1e-12)
    assert s["miou"] == pytest.approx(100 * (0.5 + 2 / 3 + 1) / 3, abs=1e-12)
    assert round(s["miou"], 2) == 72.22
    assert s["pixel_acc"] == pytest.approx(80.0) and s["mean_acc"] == pytest.approx(250 / 3)
    assert s["fwiou"] == pytest.approx(100 * (0.4 * 0.5 + 0.4 * 2 / 3 + 0.2 * 1.0))
    assert s["present_classes"] == [0, 1, 2] and s["pixels"] == 5
    assert "nanmean" in MIOU_CONVENTION


def test_a_class_absent_everywhere_is_nan_and_left_out_of_the_mean():
    s = segmentation_scores(matrix_of(PRED, GT, 4), class_names=["bg", "a", "b", "c"])
    assert math.isnan(s["per_class_iou"][3]) and math.isnan(s["per_class_acc"][3])
    assert round(s["miou"], 2) == 72.22 and s["present_classes"] == [0, 1, 2]
    assert s["iou_by_class"]["a"] == pytest.approx(200 / 3) and math.isnan(s["iou_by_class"]["c"])


def test_a_class_predicted_but_absent_from_the_ground_truth_has_iou_0_and_counts():
    # GT has only class 0; class 1 is predicted once (FP = 1), class 2 never occurs
    s = segmentation_scores(matrix_of(torch.tensor([0, 1, 0]), torch.tensor([0, 0, 0]), 3))
    assert s["per_class_iou"][:2] == pytest.approx([200 / 3, 0.0]) and math.isnan(s["per_class_iou"][2])
    assert s["miou"] == pytest.approx(100 / 3) and s["present_classes"] == [0, 1]
    assert math.isnan(s["per_class_acc"][1]) and s["mean_acc"] == pytest.approx(200 / 3)  # recall: GT classes only


def test_two_halves_accumulate_to_one_pass_and_reset_clears():
    one = ConfusionMatrix(3)
    one.update(PRED, GT)
    halves = ConfusionMatrix(3)
    halves.update(PRED[:1], GT[:1])
    halves.update(PRED[1:], GT[1:])
    assert torch.equal(one.matrix, halves.matrix)
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 17, 19), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.2] = 255
    pred = torch.randint(0, 5, (3, 17, 19), generator=g)
    whole, pieces = ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(pred, target)
    for p, t in zip(pred.flatten().split(100), target.flatten().split(100)):
        pieces.update(p, t.to(torch.uint8))  # uint8 masks, like the datasets'
    assert torch.equal(whole.matrix, pieces.matrix)
    assert torch.equal(whole.matrix, reference_matrix(pred, target, 5))
    whole.reset()
    assert int(whole.matrix.sum()) == 0


def test_out_of_range_values_are_reported_when_the_matrix_is_read():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 7, -1]), torch.tensor([0, 255, 255]))  # bad predictions on ignored pixels: fine
    assert cm.matrix.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    cm.update(torch.tensor([3]), torch.tensor([1]))  # no sync at update time ...
    with pytest.raises(ValueError, match="1 prediction"):
        cm.matrix  # noqa: B018  ... an error on reading
    bad_target = ConfusionMatrix(3)
    bad_target.update(torch.tensor([0, 0]), torch.tensor([5, -2]))
    with pytest.raises(ValueError, match="2 target"):
        bad_target.matrix  # noqa: B018


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in shape"):
        ConfusionMatrix(3).update(PRED, GT[:1])
    with pytest.raises(ValueError, match="integer class"):
        ConfusionMatrix(3).update(PRED.float(), GT)
    with pytest.raises(ValueError, match="is a class index"):
        ConfusionMatrix(3, ignore_index=2)
    with pytest.raises(ValueError, match="at least one class"):
        ConfusionMatrix(0)
    with pytest.raises(ValueError, match="empty"):
        segmentation_scores(torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="square"):
        segmentation_scores(torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="class names"):
        segmentation_scores(matrix_of(PRED, GT, 3), class_names=["a", "b"])


def test_all_reduce_is_a_no_op_without_a_process_group():
    cm = ConfusionMatrix(3)
    cm.update(PRED, GT)
    assert cm.all_reduce() is cm and cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    cm.update(PRED, GT)  # still updatable: nothing was reduced
    assert int(cm.matrix.sum()) == 10


RANK_SCRIPT = """
import json, sys, torch, torch.distributed as dist
from mixlab.metrics.segmentation import ConfusionMatrix
rank, store = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
gt = torch.tensor([[0, 0, 1], [1, 255, 2]]); pred = torch.tensor([[0, 1, 1], [1, 2, 2]])
cm = ConfusionMatrix(3)
cm.update(pred[rank], gt[rank])
cm.all_reduce()
try:
    cm.update(pred, gt)
    twice = False
except RuntimeError:
    twice = True
print(json.dumps({"matrix": cm.matrix.tolist(), "refused": twice}))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_all_reduce_sums_two_gloo_ranks(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    store = str(tmp_path / "store")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RANK_SCRIPT, str(rank), store],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
    for out, _ in outputs:
        result = json.loads(out.strip().splitlines()[-1])
        assert result == {"matrix": [[1, 1, 0], [0, 2, 0], [0, 0, 1]], "refused": True}


# --- segmentation-models-pytorch 0.6.0 (an optional dependency: mixlab[seg]) ---


def smp_stats(pred, target, num_classes):
    smp = pytest.importorskip("segmentation_models_pytorch")
    return smp, smp.metrics.get_stats(pred, target, mode="multiclass", num_classes=num_classes, ignore_index=255)


def test_smp_counts_and_macro_iou_equal_ours_when_every_class_is_present():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 6, (4, 23, 29), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.1] = 255
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.6, target.clamp(max=5), torch.randint(0, 6, (1,)))
    smp, (tp, fp, fn, tn) = smp_stats(pred, target, 6)
    m = matrix_of(pred, target, 6)
    assert torch.equal(tp.sum(0), m.diagonal())
    assert torch.equal(fp.sum(0), m.sum(0) - m.diagonal()) and torch.equal(fn.sum(0), m.sum(1) - m.diagonal())
    ours = segmentation_scores(m)
    assert ours["present_classes"] == list(range(6))
    macro = 100 * float(smp.metrics.iou_score(tp, fp, fn, tn, reduction="macro"))
    assert macro == pytest.approx(ours["miou"], abs=1e-4)  # smp computes in float32
    acc = ours["pixel_acc"] / 100
    micro = float(smp.metrics.iou_score(tp, fp, fn, tn, reduction="micro"))
    assert micro == pytest.approx(acc / (2 - acc), abs=1e-6)  # pooled over classes: not a mean IoU
    imagewise = 100 * float(smp.metrics.iou_score(tp, fp, fn, tn, reduction="micro-imagewise"))
    assert abs(imagewise - ours["miou"]) > 1.0


def test_smp_macro_differs_from_ours_when_a_class_is_absent():
    smp, (tp, fp, fn, tn) = smp_stats(PRED[None], GT[None], 4)
    one = 100 * float(smp.metrics.iou_score(tp, fp, fn, tn, reduction="macro"))  # zero_division=1.0 (default)
    zero = 100 * float(smp.metrics.iou_score(tp, fp, fn, tn, reduction="macro", zero_division=0.0))
    ours = segmentation_scores(matrix_of(PRED, GT, 4))["miou"]
    assert round(ours, 2) == 72.22 and round(one, 2) == 79.17 and round(zero, 2) == 54.17
    nan = float(smp.metrics.iou_score(tp, fp, fn, tn, reduction="macro", zero_division=math.nan))
    assert math.isnan(nan)  # smp has no nanmean: NaN propagates through its plain mean
