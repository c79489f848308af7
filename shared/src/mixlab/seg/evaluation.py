"""`<pkg> eval` and `<pkg> predict` for segmentation checkpoints.

A checkpoint carries its configuration and its class facts (names, normalisation, palette), so ``predict`` runs on a
user's images with no dataset on disk (``prediction_grid`` draws the predictions of several runs on validation images); ``eval`` rebuilds the run's validation set and scores it with one confusion
matrix (mIoU and per-class IoU), in the run's inference mode or the one asked for (``--tta ms_flip``,
``--eval-mode slide``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixlab.config import config_from_dict
from mixlab.data._files import open_rgb
from mixlab.engine import DistInfo, Precision, Runtime, TrainProgress, load_checkpoint, resolve_device
from mixlab.errors import CheckpointError, ConfigError, DatasetError
from mixlab.seg.data import SegDataset, build_seg_dataset
from mixlab.seg.method import SegSSLMethod
from mixlab.seg.transforms import normalize_images
from mixlab.seg.visual import colorize, mask_grid, overlay, save_png

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def restore_seg_method(
    path: Path,
    *,
    method: str,
    config_cls: type,
    make_method: Callable[..., SegSSLMethod],
    device: str = "auto",
    amp: str = "off",
    data_root: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[SegSSLMethod, dict[str, Any]]:
    """The network a checkpoint was trained with, rebuilt from its saved configuration on one process, with its
    weights loaded (no data is read); and the checkpoint itself."""
    state = load_checkpoint(path, method=method)
    config = config_from_dict(config_cls, state["config"], where=str(path))
    if overrides:
        config = dataclasses.replace(config, **overrides).validate()
    meta = (state.get("extra") or {}).get("classes")
    if not meta:
        raise CheckpointError(f"{path} has no class list: it is not a segmentation checkpoint of this package")
    seg = make_method(config, data_root=data_root, download=False)
    dev = resolve_device(device)
    seg.set_classes(meta=meta)
    seg.build_network(Runtime(dev, DistInfo(), Precision(amp, dev), channels_last=False))
    seg.forward_module = seg.model
    try:
        seg.model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: the weights do not fit the {config.arch} network it names: {first}") from None
    seg.model.eval()
    return seg, state


def evaluate_seg_checkpoint(
    path: Path,
    *,
    method: str,
    config_cls: type,
    make_method: Callable[..., SegSSLMethod],
    device: str = "auto",
    amp: str = "off",
    dataset: str | None = None,
    data_root: Path | None = None,
    batch_size: int = 16,
    tta: str | None = None,
    eval_mode: str | None = None,
    max_images: int | None = None,
) -> dict[str, Any]:
    """mIoU, per-class IoU and pixel accuracy of a checkpoint on its dataset's validation split (or ``dataset``'s,
    which must have the same classes)."""
    overrides = {k: v for k, v in (("tta", tta), ("eval_mode", eval_mode)) if v is not None}
    overrides["eval_batch_size"] = batch_size
    seg, state = restore_seg_method(
        path, method=method, config_cls=config_cls, make_method=make_method, device=device, amp=amp,
        data_root=data_root, overrides=overrides,
    )  # fmt: skip
    name = dataset or seg.config.dataset
    val = build_seg_dataset(name, "val", data_root, **seg.dataset_options())
    if val.class_names != seg.class_names:
        raise DatasetError(f"{name} has other classes than the checkpoint's ({val.num_classes} vs {seg.num_classes})")
    if max_images is not None:
        if max_images < 1:
            raise ConfigError(f"--max-images must be at least 1, not {max_images}")
        val = val.subset(range(min(max_images, len(val))))
    seg.val = val
    metrics = seg.evaluate(TrainProgress(int(state.get("step", 0)), 0, 1, 1))
    mode = seg.inference.mode
    per_class = metrics.get("per_class_iou") or {}
    if isinstance(per_class, list):
        per_class = dict(zip(seg.class_names, per_class))
    return {"title": f"{path} on {name} (val, {len(val)} images, {mode})", "checkpoint": str(path),
            "step": state.get("step"), "metrics": metrics,
            "tables": {"per-class IoU (%; nan: class absent from the ground truth and the predictions)": per_class}}  # fmt: skip


def seg_evaluator(*, method: str, config_cls: type, make_method: Callable[..., SegSSLMethod]) -> Callable[..., dict]:
    """The `eval` command's evaluator for a segmentation package (one checkpoint)."""

    def evaluate(paths: list[Path], **options: Any) -> dict[str, Any]:
        if len(paths) != 1:
            raise ConfigError("give one checkpoint")
        return evaluate_seg_checkpoint(
            paths[0], method=method, config_cls=config_cls, make_method=make_method, **options
        )

    return evaluate


def image_files(inputs: list[Path]) -> list[Path]:
    """The images named, or found (sorted, not recursively) in the folders named."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            found.append(item)
        else:
            raise DatasetError(f"{item} does not exist (give image files or folders of images)")
    if not found:
        raise DatasetError(f"no image ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    return found


@torch.no_grad()
def predict_files(seg: SegSSLMethod, inputs: list[Path], out: Path, alpha: float = 0.5) -> list[dict[str, Any]]:
    """For each image: ``<stem>_mask.png`` (colour-coded classes), ``<stem>_overlay.png`` (the mask over the image)
    and ``<stem>_labels.png`` (class indices as grey levels), in ``out``. Returns what was written, per image."""
    rt = seg.runtime
    written = []
    for path in image_files(inputs):
        image = torch.from_numpy(
            np.asarray(open_rgb(path, str(path), downloadable=False), dtype=np.uint8).copy()
        ).permute(2, 0, 1)
        x = normalize_images(image[None].to(rt.device), seg.mean, seg.std)

        def model_fn(batch: torch.Tensor) -> torch.Tensor:
            with rt.precision.autocast():
                return seg.predict_logits(batch).float()

        labels = seg.inference.predict(model_fn, x)[0].argmax(0).to(torch.uint8).cpu()
        stem = out / path.stem
        save_png(colorize(labels, seg.palette), stem.with_name(f"{path.stem}_mask.png"))
        save_png(overlay(image, labels, seg.palette, alpha), stem.with_name(f"{path.stem}_overlay.png"))
        save_png(labels.numpy(), stem.with_name(f"{path.stem}_labels.png"))
        present = torch.bincount(labels.flatten().long(), minlength=seg.num_classes)
        classes = {
            seg.class_names[c]: round(100.0 * int(n) / labels.numel(), 1) for c, n in enumerate(present.tolist()) if n
        }
        written.append({"image": str(path), "mask": str(stem.with_name(f"{path.stem}_mask.png")), "classes": classes})
    return written


@torch.no_grad()
def prediction_grid(
    models: list[tuple[str, SegSSLMethod]], dataset: SegDataset, path: Path, count: int = 8, scale: int = 2
) -> Path:
    """A PNG grid of the first ``count`` images of ``dataset``: the image, the ground truth, then one row of
    predictions per (name, restored method), in the dataset's palette (for README pictures)."""
    if count < 1:
        raise ConfigError(f"--count must be at least 1, not {count}")
    samples = [dataset[i] for i in range(min(count, len(dataset)))]
    rows = [("ground truth", [mask for _, mask in samples])]
    for name, seg in models:
        rt = seg.runtime
        predictions = []
        for image, _ in samples:
            x = normalize_images(image[None].to(rt.device), seg.mean, seg.std)
            with rt.precision.autocast():
                probabilities = seg.inference.predict(lambda b, s=seg: s.predict_logits(b).float(), x)
            predictions.append(probabilities[0].argmax(0).to(torch.uint8).cpu())
        rows.append((name, predictions))
    return mask_grid([image for image, _ in samples], rows, dataset.palette, path, scale=scale)
