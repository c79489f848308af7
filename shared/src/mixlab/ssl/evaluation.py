"""`<pkg> eval` for semi-supervised checkpoints: the EMA model's test error on the run's evaluation set."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mixlab.config import config_from_dict
from mixlab.engine import DistInfo, Precision, Runtime, TrainProgress, load_checkpoint, resolve_device
from mixlab.errors import CheckpointError, ConfigError
from mixlab.ssl.method import SSLMethod


def restore_ssl_method(
    path: Path,
    *,
    method: str,
    config_cls: type,
    make_method: Callable[..., SSLMethod],
    device: str = "auto",
    amp: str = "off",
    dataset: str | None = None,
    data_root: Path | None = None,
) -> tuple[SSLMethod, dict[str, Any]]:
    """The method a checkpoint was trained with, rebuilt from its saved configuration (data split included) on one
    process, with the checkpoint's weights and EMA loaded; and the checkpoint itself."""
    state = load_checkpoint(path, method=method)
    config = config_from_dict(config_cls, state["config"], where=str(path))
    if dataset is not None:
        config = dataclasses.replace(config, dataset=dataset)
    dev = resolve_device(device)
    ssl_method = make_method(config, data_root=data_root, download=False)
    ssl_method.build(Runtime(dev, DistInfo(), Precision(amp, dev), channels_last=False))
    ssl_method.forward_module = ssl_method.model
    try:
        ssl_method.trainable.load_state_dict(state["model"])
        ssl_method.load_extra_state(state.get("extra") or {})  # the EMA and whatever else the method keeps
    except (RuntimeError, KeyError, CheckpointError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = f" (is {dataset} a dataset with the same classes?)" if dataset else ""
        raise CheckpointError(
            f"{path}: weights do not fit the {config.model} network it names{hint}: {first}"
        ) from None
    return ssl_method, state


def evaluate_ssl_checkpoint(
    path: Path,
    *,
    method: str,
    config_cls: type,
    make_method: Callable[..., SSLMethod],
    device: str = "auto",
    amp: str = "off",
    raw: bool = False,
    dataset: str | None = None,
    data_root: Path | None = None,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Metrics of the checkpoint's EMA model (``raw=True``: the trained weights themselves) on its test data.

    The split and the evaluation set are rebuilt from the saved configuration, so a mismatch-protocol run is scored
    on the labeled classes' test images, as in training. ``dataset`` scores it on another dataset's test set.
    """
    ssl_method, state = restore_ssl_method(
        path, method=method, config_cls=config_cls, make_method=make_method, device=device, amp=amp,
        dataset=dataset, data_root=data_root,
    )  # fmt: skip
    config = ssl_method.config
    if raw:
        ssl_method.ema.module.load_state_dict(ssl_method.model.state_dict())
    with torch.no_grad(), ssl_method.runtime.precision.autocast():
        metrics = ssl_method.evaluate(TrainProgress(int(state.get("step", 0)), 0, 1, 1), batch_size=batch_size)
    for key in ("median_top1", "median_error", "evaluations_in_median"):
        metrics.pop(key, None)  # one evaluation: the median of the run is in its summary.json
    which = "trained weights" if raw else "EMA weights"
    title = f"{path} ({which}) on {config.dataset} (test{', labeled classes' if ssl_method.data.eval_classes else ''})"
    return {"title": title, "checkpoint": str(path), "step": state.get("step"), "metrics": metrics}


def ssl_evaluator(*, method: str, config_cls: type, make_method: Callable[..., SSLMethod]) -> Callable[..., dict]:
    """The `eval` command's evaluator for a semi-supervised package (one checkpoint, ``--raw`` option)."""

    def evaluate(paths: list[Path], *, raw: bool = False, **options: Any) -> dict[str, Any]:
        if len(paths) != 1:
            raise ConfigError("give one checkpoint (semi-supervised runs are not evaluated as ensembles)")
        return evaluate_ssl_checkpoint(
            paths[0], method=method, config_cls=config_cls, make_method=make_method, raw=raw, **options
        )

    return evaluate
