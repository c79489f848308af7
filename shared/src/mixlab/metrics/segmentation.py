"""Semantic-segmentation metrics (spec guidedmix §4.5): one confusion matrix over the whole validation set, and the
scores computed from it (mIoU, per-class IoU, pixel accuracy, mean class accuracy, frequency-weighted IoU).

Definitions (``conf`` is the int64 (C, C) matrix, rows = ground truth, columns = prediction; pixels whose ground
truth is ``ignore_index`` (255) are never counted, whatever was predicted there):

* IoU_c = TP_c / (TP_c + FP_c + FN_c) = conf[c, c] / (rowsum_c + colsum_c - conf[c, c]).
* **Absent classes.** A class with TP + FP + FN = 0 (never in the ground truth and never predicted) has IoU NaN and
  is left out of the mean: mIoU = nanmean_c IoU_c. A class predicted somewhere but absent from the ground truth
  (FP > 0, TP = FN = 0) has IoU 0 and *does* count. ``present_classes`` lists the classes in the mean.
* pixel_acc = sum_c TP_c / sum(conf); mean_acc = nanmean_c TP_c / rowsum_c (NaN, left out, where rowsum_c = 0);
  fwiou = sum_c (rowsum_c / sum(conf)) IoU_c over the classes of the ground truth.
* Every score is reported in percent (x 100); round mIoU to one decimal for tables.

How other libraries compare (same confusion counts, different reductions):

* **mmsegmentation** (not installed; from knowledge, checked against public copies of ``IoUMetric``, not run):
  ``intersect_and_union`` drops ``label == ignore_index`` pixels, ``total_area_to_metrics`` gives IoU =
  total_intersect / total_union, NaN for a class with union 0 (unless its ``nan_to_num`` option is set), and the
  summary is ``np.round(np.nanmean(IoU) * 100, 2)``; aAcc and mAcc are our ``pixel_acc`` and ``mean_acc``.
  **Equal to ours**, absent classes included. One difference: mmseg histograms with ``torch.histc(min=0,
  max=C-1)``, which silently drops predictions outside [0, C); :class:`ConfusionMatrix` raises instead.
* The FCN ``fast_hist`` / ``np.bincount(C * gt + pred)`` + ``np.nanmean(diag / (sum0 + sum1 - diag))`` recipe that
  many segmentation code bases copy (from knowledge, not run here) is the same computation: **equal to ours**.
* **segmentation-models-pytorch 0.6.0** (installed; measured in ``tests/test_seg_metrics.py``):
  ``smp.metrics.get_stats(pred, gt, mode="multiclass", num_classes=C, ignore_index=255)`` gives per-image,
  per-class TP/FP/FN counts that sum to ours (ignored pixels dropped the same way). Then

  - ``iou_score(..., reduction="macro")`` sums the counts over images and averages the per-class IoUs over **all**
    C classes, an absent class (0/0) being replaced by ``zero_division`` (default **1.0**, or 0 with ``"warn"``).
    It **equals our mIoU when every class is present** (TP + FP + FN > 0 for all c); with an absent class it is
    higher (zero_division=1) or lower (zero_division=0). On the golden case of spec §8 item 12 with C = 4: ours
    72.22, smp macro 79.17 (zero_division=1) / 54.17 (zero_division=0).
  - ``reduction="micro"`` pools TP/FP/FN over classes before dividing: for single-label masks every wrong pixel is
    one FP and one FN, so it is acc / (2 - acc) (acc = pixel accuracy as a fraction), not a mean IoU.
  - ``reduction="micro-imagewise"`` is that same pooled ratio per image, averaged over images: neither our mIoU
    nor the dataset-level pooling (it weights images equally); in general it differs from our mIoU.
  - smp also histograms with ``torch.histc``, so out-of-range predictions are dropped silently.
* **torchmetrics** (not installed; read from public copies of its source, not run here; version-dependent): the
  0.10-era ``jaccard_index(..., average="macro", absent_score=0.0)`` and the first multiclass
  ``_jaccard_index_reduce`` (all weights 1) average over **all** classes, an absent class scoring ``absent_score``
  or 0: **differs from ours**. In later releases (whose ``_jaccard_index_reduce`` takes ``ignore_index`` and
  ``zero_division``) ``JaccardIndex(task="multiclass", average="macro")`` gives weight 0 to the classes with
  rowsum + colsum = 0 (TP + FP + FN = 0), i.e. leaves them out of the mean: accumulated over the dataset with
  ``ignore_index=255`` that **equals ours** (``zero_division`` then only shows in per-class output).
  ``segmentation.MeanIoU`` (from memory, unverified) averages per-image scores, which differs in general.

On the standard validation sets (VOC val, Cityscapes val, PASCAL-Context val) every class occurs, so mmseg, smp
``macro`` and any torchmetrics ``macro`` give our mIoU; the conventions matter only for small or partial sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist

from mixlab.seg.data.dataset import IGNORE_INDEX

#: What the reported ``miou`` is, for printing under a table.
MIOU_CONVENTION = (
    "miou: one confusion matrix over the whole set (ground-truth 255 dropped); IoU_c = TP/(TP+FP+FN); mean over "
    "the classes with TP+FP+FN > 0 (nanmean, as mmsegmentation), x 100"
)


class ConfusionMatrix:
    """A (C, C) int64 confusion matrix accumulated on ``device`` (rows = ground truth, columns = prediction).

    :meth:`update` adds the counts of one batch with a single ``index_add_`` into a fixed-size buffer, so it never
    waits for the device (``torch.bincount`` would size its output from the data's maximum, a host sync on CUDA).
    Pixels whose target is ``ignore_index`` are dropped, whatever their prediction. Out-of-range values (a
    prediction outside [0, C) where the target is a class, or a target outside [0, C) that is not ``ignore_index``)
    cannot be checked without a sync, so they are counted in two extra bins on the device and reported as a
    :class:`ValueError` when the matrix is read (:attr:`matrix`, which syncs anyway).

    Under DDP, call :meth:`all_reduce` once on every rank after the last update; it sums the ranks' counts (a no-op
    when torch.distributed is not initialised). Updating or reducing again afterwards is an error until
    :meth:`reset`.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str = "cpu") -> None:
        if int(num_classes) < 1:
            raise ValueError(f"A confusion matrix needs at least one class, got {num_classes}.")
        if 0 <= int(ignore_index) < int(num_classes):
            raise ValueError(f"ignore_index {ignore_index} is a class index (num_classes={num_classes}).")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.device = torch.device(device)
        # C*C cells, then the count of bad targets, then the count of bad predictions
        self._counts = torch.zeros(self.num_classes**2 + 2, dtype=torch.int64, device=self.device)
        self._reduced = False

    def reset(self) -> None:
        self._counts.zero_()
        self._reduced = False

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count the pixels of integer class maps ``pred`` and ``target`` of the same shape (any number of dims)."""
        if self._reduced:
            raise RuntimeError("This confusion matrix was all-reduced already; reset() it before updating again.")
        if pred.shape != target.shape:
            raise ValueError(f"Prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape.")
        for name, t in (("Prediction", pred), ("Target", target)):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise ValueError(f"{name} must hold integer class indices, got {t.dtype}.")
        c = self.num_classes
        p = pred.detach().to(self.device, non_blocking=True).reshape(-1).long()
        t = target.detach().to(self.device, non_blocking=True).reshape(-1).long()
        counted = t != self.ignore_index
        good_t = (t >= 0) & (t < c)
        good_p = (p >= 0) & (p < c)
        cell = torch.where(good_t & good_p, t * c + p, torch.full_like(t, c * c + 1))  # bad prediction bin
        cell = torch.where(good_t, cell, torch.full_like(t, c * c))  # bad target bin
        cell = torch.where(counted, cell, torch.full_like(t, -1))
        keep = cell >= 0
        # boolean indexing would sync (its size depends on the data): send dropped pixels to a scratch cell instead
        self._counts.index_add_(0, torch.where(keep, cell, 0), keep.long())

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts of every DDP rank in place (a no-op without an initialised process group)."""
        if self._reduced:
            raise RuntimeError("This confusion matrix was all-reduced already; reset() it before reducing again.")
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self._counts, op=dist.ReduceOp.SUM)
            self._reduced = True
        return self

    @property
    def matrix(self) -> torch.Tensor:
        """The int64 (C, C) counts on the CPU (rows = ground truth, columns = prediction)."""
        counts = self._counts.cpu()
        c = self.num_classes
        bad_target, bad_pred = int(counts[c * c]), int(counts[c * c + 1])
        if bad_target or bad_pred:
            raise ValueError(
                f"{bad_target} target pixel(s) outside [0, {c}) and not {self.ignore_index}, and {bad_pred} "
                f"prediction(s) outside [0, {c}) on labelled pixels: wrong num_classes or label mapping?"
            )
        return counts[: c * c].view(c, c).clone()


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~values.isnan()]
    return float(finite.mean()) if finite.numel() else math.nan


def segmentation_scores(matrix: torch.Tensor, class_names: Sequence[str] | None = None) -> dict:
    """Scores of a (C, C) confusion matrix (rows = ground truth, columns = prediction), all in percent.

    Returns ``miou`` (nanmean of the per-class IoUs: classes with TP + FP + FN = 0 are left out), ``per_class_iou``
    (C floats, NaN for those absent classes), ``pixel_acc``, ``mean_acc`` (nanmean of per-class recalls over the
    classes of the ground truth), ``per_class_acc`` (NaN where the class is not in the ground truth), ``fwiou``
    (IoUs weighted by ground-truth pixel frequency), ``present_classes`` (the class indices in the mIoU) and
    ``pixels`` (the number of counted pixels). With ``class_names`` (C names) also ``iou_by_class``: name -> IoU.
    """
    m = torch.as_tensor(matrix).detach().to("cpu", torch.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"A confusion matrix is square (C, C) with C >= 1, got {tuple(m.shape)}.")
    if bool((m < 0).any()):
        raise ValueError("A confusion matrix holds counts; found a negative entry.")
    c = m.shape[0]
    if class_names is not None and len(class_names) != c:
        raise ValueError(f"{len(class_names)} class names for a {c}-class confusion matrix.")
    total = float(m.sum())
    if total == 0:
        raise ValueError("The confusion matrix is empty: no labelled pixel was counted.")
    tp = m.diagonal()
    gt = m.sum(1)
    predicted = m.sum(0)
    union = gt + predicted - tp
    nan = torch.full_like(tp, math.nan)
    iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
    acc = torch.where(gt > 0, tp / gt.clamp_min(1), nan)
    in_gt = gt > 0
    scores = {
        "miou": 100.0 * _nanmean(iou),
        "per_class_iou": (100.0 * iou).tolist(),
        "pixel_acc": 100.0 * float(tp.sum()) / total,
        "mean_acc": 100.0 * _nanmean(acc),
        "per_class_acc": (100.0 * acc).tolist(),
        "fwiou": 100.0 * float((gt[in_gt] / total * iou[in_gt]).sum()),
        "present_classes": (union > 0).nonzero().flatten().tolist(),
        "pixels": int(total),
    }
    if class_names is not None:
        scores["iou_by_class"] = dict(zip(class_names, scores["per_class_iou"]))
    return scores
