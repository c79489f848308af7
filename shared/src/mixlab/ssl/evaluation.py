"""`<pkg> eval` for semi-supervised checkpoints: the EMA model's test error on the run's evaluation set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mixlab import cli as common
from mixlab.engine import DistInfo, Precision, Runtime, TrainProgress, load_checkpoint, resolve_device
from mixlab.errors import CheckpointError
from mixlab.ssl.method import SSLMethod


def evaluate_ssl_checkpoint(
    path: Path,
    *,
    method: str,
    config_cls: type,
    make_method: Callable[[Any], SSLMethod],
    device: str = "auto",
    amp: str = "off",
    raw: bool = False,
) -> dict[str, Any]:
    """Metrics of the checkpoint's EMA model (``raw=True``: the trained weights themselves) on its test data.

    The split and the evaluation set are rebuilt from the saved configuration, so a mismatch-protocol run is scored
    on the labeled classes' test images, as in training.
    """
    state = load_checkpoint(path, method=method)
    config = common.config_from_dict(config_cls, state["config"])
    dev = resolve_device(device)
    ssl_method = make_method(config)
    ssl_method.build(Runtime(dev, DistInfo(), Precision(amp, dev), channels_last=False))
    ssl_method.forward_module = ssl_method.model
    try:
        ssl_method.model.load_state_dict(state["model"])
        if state.get("extra", {}).get("ema") is not None:
            ssl_method.ema.load_state_dict(state["extra"]["ema"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the {config.model} network it names ({exc})") from exc
    if raw:
        ssl_method.ema.module.load_state_dict(ssl_method.model.state_dict())
    with torch.no_grad(), ssl_method.runtime.precision.autocast():
        metrics = ssl_method.evaluate(TrainProgress(int(state.get("step", 0)), 0, 1, 1))
    for key in ("median_top1", "median_error", "evaluations_in_median"):
        metrics.pop(key, None)  # one evaluation: the median of the run is in its summary.json
    which = "trained weights" if raw else "EMA weights"
    title = f"{path} ({which}) on {config.dataset} (test{', labeled classes' if ssl_method.data.eval_classes else ''})"
    return {"title": title, "checkpoint": str(path), "step": state.get("step"), "metrics": metrics}
