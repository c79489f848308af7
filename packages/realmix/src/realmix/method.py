"""RealMix = MixMatch + Extend + TSA + OOD mask (spec §3), on mixlab's step-based SSL method.

The base algorithms (supervised, Mean Teacher, MixMatch, FixMatch) come from `mixlab.ssl.SSLMethod` unchanged, so
every baseline row of the paper runs through the same code; `variant="realmix"` switches on the three additions
through the method's hooks: unlabeled images come from the extended pool, the mixed labeled rows pass TSA, and the
mixed unlabeled rows pass the per-batch OOD mask.
"""

from __future__ import annotations

from typing import Any

import torch
from mixlab.engine import TrainProgress
from mixlab.errors import ConfigError
from mixlab.models.registry import load_weights
from mixlab.ssl import SSLMethod
from torch import nn

from realmix.config import RealMixConfig
from realmix.extend import ExtendedPool
from realmix.ood import ood_masked_mse
from realmix.tsa import tsa_cross_entropy, tsa_threshold


class RealMixMethod(SSLMethod):
    name = "realmix"
    config: RealMixConfig
    pool: ExtendedPool | None = None  # the extended unlabeled set (RealMix only)

    @property
    def is_realmix(self) -> bool:
        return self.config.variant == "realmix"

    def build_model(self, num_classes: int) -> nn.Module:
        model = super().build_model(num_classes)
        if self.config.transfer_learning and not self.config.init_checkpoint:
            raise ConfigError(
                "this recipe fine-tunes a network pre-trained on ImageNet-32 (Table 4); give its weights with "
                "--set init_checkpoint=PATH (a WRN of the same --model, e.g. trained by `realmix train` elsewhere)"
            )
        if self.config.init_checkpoint:
            # Transfer learning (spec §5.3): every weight but the classifier head, which is re-initialised.
            load_weights(model, self.config.init_checkpoint, exclude=("head.",))
        return model

    def build_data(self):
        data = super().build_data()
        cfg = self.config
        if self.is_realmix:
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
        return len(self.pool) if self.pool is not None else super().unlabeled_pool_size()

    def unlabeled_uint8(self, step: int) -> torch.Tensor:
        if self.pool is None:
            return super().unlabeled_uint8(step)
        return self.pool.get(self.unlabeled_stream.batch(step)).to(self.runtime.device, non_blocking=True)

    def train_step(self, batch: int, progress: TrainProgress):
        if self.is_realmix:
            return self.mixmatch_step(batch, progress)
        return super().train_step(batch, progress)

    def mixed_supervised_loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: TrainProgress):
        cfg = self.config
        if not self.is_realmix or cfg.tsa == "none":
            return super().mixed_supervised_loss(logits, targets, progress)
        eta = tsa_threshold(min(1.0, progress.step / cfg.total_steps), self.num_classes, cfg.tsa)  # type: ignore[arg-type]
        loss, keep = tsa_cross_entropy(logits, targets, eta, cfg.tsa_impl)  # type: ignore[arg-type]
        return loss, {"tsa_keep": keep.mean().detach(), "tsa_eta": torch.tensor(eta)}

    def mixed_unlabeled_loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: TrainProgress):
        cfg = self.config
        if not self.is_realmix or cfg.ood_gamma == 0:
            return super().mixed_unlabeled_loss(logits, targets, progress)
        loss, mask = ood_masked_mse(logits, targets, cfg.ood_gamma, cfg.ood_rule)  # type: ignore[arg-type]
        logs: dict[str, Any] = {"ood_kept": mask.mean().detach()}
        return loss, logs
