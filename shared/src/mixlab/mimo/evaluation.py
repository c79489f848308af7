"""Rebuild trained multi-input networks from their checkpoints; evaluate one, a deep ensemble, CIFAR-100-C."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mixlab.config import config_from_dict
from mixlab.data import build_dataset, dataset_info
from mixlab.engine import DistInfo, Precision, Runtime, load_checkpoint, resolve_device
from mixlab.errors import CheckpointError, DatasetError
from mixlab.metrics import classification_metrics, ensemble_logits, nll, reliability_bins, topk_accuracy
from mixlab.mimo.method import build_network, predict, summarize
from mixlab.models import MultiHeadMIMO
from mixlab.visual import save_reliability_diagram

NetworkBuilder = Callable[[Any, int], MultiHeadMIMO]


def load_network(
    path: Path,
    device: torch.device,
    *,
    method: str,
    config_cls: type,
    build: NetworkBuilder = build_network,
) -> tuple[MultiHeadMIMO, Any]:
    """The network a `<method> train` checkpoint holds, in eval mode on ``device``, and its saved config.

    ``config_cls`` rebuilds the saved configuration; ``build(config, num_classes)`` the untrained network.
    """
    state = load_checkpoint(path, method=method)
    config = config_from_dict(config_cls, state["config"], where=str(path))
    head_weights = [v for k, v in state["model"].items() if k.startswith("heads.") and k.endswith("weight")]
    if not head_weights:
        raise CheckpointError(f"{path} holds no multi-output heads: it is not a checkpoint of `{method} train`")
    model = build(config, head_weights[0].shape[0])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the {config.model} network it names. Loading them failed: {exc}"
        ) from exc
    return model.to(device).eval(), config


def evaluate_checkpoints(
    paths: list[Path],
    *,
    method: str,
    config_cls: type,
    build: NetworkBuilder = build_network,
    data_root: Path | None,
    device: str,
    amp: str,
    batch_size: int,
    cifar100c: bool,
    dataset: str | None = None,
    reliability: Path | None = None,
) -> dict[str, Any]:
    """Metrics of one network, or of several as a deep ensemble; CIFAR-100-C as well when asked and present.

    ``dataset`` evaluates on another dataset than the one the networks were trained on (same classes);
    ``reliability`` also writes a reliability diagram (PNG) of the prediction, before temperature scaling.
    """
    dev = resolve_device(device)
    runtime = Runtime(dev, DistInfo(), Precision(amp, dev), channels_last=False)
    networks = [load_network(Path(p), dev, method=method, config_cls=config_cls, build=build) for p in paths]
    configs = [c for _, c in networks]
    datasets = {c.dataset for c in configs}
    if len(datasets) != 1:
        raise CheckpointError(f"the checkpoints were trained on different datasets: {', '.join(sorted(datasets))}")
    config = configs[0]
    name = dataset or config.dataset
    # The image size the networks were trained at, where the evaluated dataset can be built at another size.
    options = {k: v for k, v in config.dataset_options().items() if k in dataset_info(name).options}
    test_set = build_dataset(name, "test", data_root, **options)
    for (model, _), path in zip(networks, paths):
        if model.num_classes != test_set.num_classes:
            raise CheckpointError(
                f"{path}: the network has {model.num_classes} classes, {name} has {test_set.num_classes}: "
                "it cannot be evaluated there"
            )

    outputs = [predict(model, test_set, runtime, batch_size) for model, _ in networks]
    targets = outputs[0][1].cpu()
    if len(networks) == 1:
        metrics = summarize(outputs[0][0], targets, config)
        title = f"{paths[0]} on {name} (test)"
    else:
        # Deep ensemble: average the logits within each network, the probabilities across networks (spec §4.3).
        probs = torch.stack([summarize_logits(o[0], c).softmax(-1) for o, c in zip(outputs, configs)]).mean(0)
        members = torch.stack([summarize_logits(o[0], c) for o, c in zip(outputs, configs)], dim=1)
        metrics = summarize_ensemble(probs, members, targets)
        title = f"ensemble of {len(networks)} networks on {name} (test)"
    report: dict[str, Any] = {"title": title, "checkpoints": [str(p) for p in paths], "metrics": metrics}
    if reliability is not None:
        prediction = summarize_logits(outputs[0][0], config) if len(networks) == 1 else probs.clamp_min(1e-12).log()
        written = save_reliability_diagram(reliability_bins(prediction, targets), reliability, title=name)
        report["notes"] = [*report.get("notes", ()), f"reliability diagram: {written}"]
    if cifar100c and name == "cifar100":
        try:
            corrupted = build_dataset("cifar100c", "test", data_root)
        except DatasetError as exc:
            report["cifar100c_note"] = f"CIFAR-100-C not evaluated: {str(exc).splitlines()[0]}"
        else:
            report["cifar100c"] = robustness(networks, corrupted, runtime, batch_size)
    return report


def summarize_logits(head_logits: torch.Tensor, config: Any) -> torch.Tensor:
    """One network's prediction: its heads combined as its config says (mean logits by default)."""
    return ensemble_logits(head_logits.cpu(), reduce=config.ensemble_reduce)


def summarize_ensemble(probs: torch.Tensor, members: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    """Metrics of a deep ensemble: `members` (N, networks, K) play the role of heads (accuracy, diversity)."""
    return classification_metrics(probs.clamp_min(1e-12).log(), targets, head_logits=members)


def robustness(networks, dataset, runtime: Runtime, batch_size: int) -> dict[str, float]:
    """Top-1, Top-5 and NLL on all CIFAR-100-C corruptions and severities pooled, without temperature scaling."""
    probs = None
    for model, config in networks:
        head_logits, targets = predict(model, dataset, runtime, batch_size)
        p = summarize_logits(head_logits, config).softmax(-1)
        probs = p if probs is None else probs + p
    logits = (probs / len(networks)).clamp_min(1e-12).log()
    targets = targets.cpu()
    acc = topk_accuracy(logits, targets, ks=(1, 5))
    return {"c_top1": acc["top1"], "c_top5": acc["top5"], "c_nll": nll(logits, targets), "images": int(len(targets))}


def mimo_evaluator(
    *,
    method: str,
    config_cls: type,
    build: NetworkBuilder = build_network,
) -> Callable[..., dict[str, Any]]:
    """The `eval` command's evaluator for a multi-input package (one network or a deep ensemble)."""

    def evaluate(paths: list[Path], *, cifar100c: bool = False, **options: Any) -> dict[str, Any]:
        return evaluate_checkpoints(
            paths,
            method=method,
            config_cls=config_cls,
            build=build,
            cifar100c=cifar100c,
            **options,
        )

    return evaluate
