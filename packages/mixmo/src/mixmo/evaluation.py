"""`mixmo eval`: rebuild trained networks from their checkpoints and report the thesis's metrics.

The machinery is shared with MixShare and MixViT in `mixlab.mimo.evaluation`; this module binds it to MixMo's
config and network builder (one shared head for Table 3.4's ``single_soft`` classifier).
"""

from __future__ import annotations

from pathlib import Path

import torch
from mixlab.mimo.evaluation import load_network as _load_network
from mixlab.mimo.evaluation import mimo_evaluator

from mixmo.config import MixMoConfig
from mixmo.method import build_network

#: evaluate_checkpoints(paths, data_root=, device=, amp=, batch_size=, cifar100c=, dataset=None) -> report
evaluate_checkpoints = mimo_evaluator(method="mixmo", config_cls=MixMoConfig, build=build_network)


def load_network(path: Path, device: torch.device) -> tuple[torch.nn.Module, MixMoConfig]:
    return _load_network(path, device, method="mixmo", config_cls=MixMoConfig, build=build_network)
