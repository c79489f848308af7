"""RealMix = MixMatch + Extend + TSA + OOD mask (spec §3), through MixMatch's hook points.

The base algorithms (supervised, Mean Teacher, MixMatch, FixMatch) are mixlab's own classes, unchanged, so every
baseline row of the paper runs through the same code (`realmix train --variant ...`). `RealMix` changes three
things that flow through MixMatch: unlabeled images come from the extended pool, the mixed labeled rows pass
Training Signal Annealing, and the mixed unlabeled rows pass the per-batch OOD mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from mixlab.config import need
from mixlab.engine import TrainProgress
from mixlab.ssl import ALGORITHMS, MixMatch, SSLMethod, algorithm_for

from realmix.config import RealMixConfig
from realmix.extend import ExtendedPool
from realmix.ood import ood_masked_mse
from realmix.tsa import tsa_cross_entropy, tsa_threshold


class RealMix(MixMatch):
    name = "realmix"
    config: RealMixConfig
    defaults = {}  # RealMix trains with MixMatch's hyperparameters (spec §3.9, §6)

    def build_data(self):
        data = super().build_data()
        cfg = self.config
        self.pool = ExtendedPool(
            data.unlabeled_images,
            n_copies=cfg.extend_copies,
            aug=cfg.extend_aug,
            mode=cfg.extend_mode,
            seed=cfg.extend_seed,
            cutout_impl=cfg.cutout_impl,
            cutout_size=cfg.cutout_size,
            padding=cfg.crop_padding or 4,
            hflip=cfg.hflip,
            p=cfg.erasing_p,
            area=cfg.erasing_area,
            aspect=cfg.erasing_aspect,
        )
        return data

    def unlabeled_pool_size(self) -> int:
        return len(self.pool)

    def unlabeled_uint8(self, step: int) -> torch.Tensor:
        return self.pool.get(self.unlabeled_stream.batch(step)).to(self.runtime.device, non_blocking=True)

    def mixed_supervised_loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: TrainProgress):
        cfg = self.config
        if cfg.tsa == "none":
            return super().mixed_supervised_loss(logits, targets, progress)
        eta = tsa_threshold(min(1.0, progress.step / self.total_steps), self.num_classes, cfg.tsa)  # type: ignore[arg-type]
        loss, keep = tsa_cross_entropy(logits, targets, eta, cfg.tsa_impl)  # type: ignore[arg-type]
        return loss, {"tsa_keep": keep.mean().detach(), "tsa_eta": torch.tensor(eta)}

    def mixed_unlabeled_loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: TrainProgress):
        cfg = self.config
        if cfg.ood_gamma == 0:
            return super().mixed_unlabeled_loss(logits, targets, progress)
        loss, mask = ood_masked_mse(logits, targets, cfg.ood_gamma, cfg.ood_rule)  # type: ignore[arg-type]
        logs: dict[str, Any] = {"ood_kept": mask.mean().detach()}
        return loss, logs


#: RealMix and the algorithms it is compared with, by ``config.variant``.
REALMIX_ALGORITHMS: dict[str, type[SSLMethod]] = {**ALGORITHMS, "realmix": RealMix}


def realmix_method(config: RealMixConfig, *, data_root: Path | None = None, download: bool = False) -> SSLMethod:
    """The method that trains ``config``: RealMix, or the base algorithm its ``variant`` names, tagged `realmix`."""
    need(
        not config.transfer_learning or bool(config.init_checkpoint),
        "this recipe fine-tunes a network pre-trained on ImageNet-32 (Table 4); give its weights with "
        "--set init_checkpoint=PATH (a WRN of the same --model, e.g. trained by `realmix train` elsewhere)",
    )
    method = algorithm_for(config, REALMIX_ALGORITHMS)(config, data_root=data_root, download=download)
    method.name = "realmix"  # checkpoints of every variant belong to `realmix eval` / `realmix train --resume`
    return method
