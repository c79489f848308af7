"""`mixmo eval`: rebuild trained networks from their checkpoints and report the thesis's metrics.

The machinery is shared with MixShare in `mixlab.mimo.evaluation`; this module binds it to MixMo's config and
network builder (one shared head for Table 3.4's ``single_soft`` classifier).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from mixlab.mimo.evaluation import evaluate_checkpoints as _evaluate_checkpoints
from mixlab.mimo.evaluation import load_network as _load_network
from mixlab.mimo.evaluation import robustness, summarize_ensemble, summarize_logits

from mixmo.config import MixMoConfig
from mixmo.method import build_network

__all__ = ["evaluate_checkpoints", "load_network", "robustness", "summarize_ensemble", "summarize_logits"]


def load_network(path: Path, device: torch.device) -> tuple[torch.nn.Module, MixMoConfig]:
    return _load_network(path, device, method="mixmo", config_cls=MixMoConfig, build=build_network)


def evaluate_checkpoints(
    paths: list[Path], *, data_root: Path | None, device: str, amp: str, batch_size: int, cifar100c: bool
) -> dict[str, Any]:
    return _evaluate_checkpoints(
        paths,
        method="mixmo",
        config_cls=MixMoConfig,
        build=build_network,
        data_root=data_root,
        device=device,
        amp=amp,
        batch_size=batch_size,
        cifar100c=cifar100c,
    )
