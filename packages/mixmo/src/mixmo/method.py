"""MixMo on the mixlab engine: its mixing plan, pixel MSDA and loss (spec §4.4) on the shared multi-input method.

Data, pairing, augmentation, optimizer, prediction and the evaluation summary live in `mixlab.mimo` (shared with
MixShare); this module adds what is MixMo's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mixlab.engine import StepOutput, TrainProgress
from mixlab.mimo import MultiInputMethod, predict, summarize
from mixlab.mimo import build_network as _build_network
from mixlab.mixing import binary_prob_schedule, sample_mixing
from mixlab.models import MultiHeadMIMO
from mixlab.transfer import to_device

from mixmo.config import MixMoConfig
from mixmo.loss import mixmo_loss
from mixmo.pixel_msda import pixel_msda

__all__ = ["MixMoMethod", "build_network", "predict", "summarize"]


def build_network(config: MixMoConfig, num_classes: int) -> MultiHeadMIMO:
    return _build_network(config, num_classes, num_heads=1 if config.head_mode == "single_soft" else None)


class MixMoMethod(MultiInputMethod):
    name = "mixmo"
    config: MixMoConfig

    def build_network(self, num_classes: int) -> MultiHeadMIMO:
        return build_network(self.config, num_classes)

    def train_step(self, batch: torch.Tensor, progress: TrainProgress) -> StepOutput:
        cfg, M = self.config, self.config.num_members
        x, targets = self.sample_inputs(batch)  # (B, M, 3, H, W), (B, M, K)
        B = x.shape[0]

        p = (
            0.0
            if cfg.block == "linear"
            else binary_prob_schedule(cfg.binary_prob, progress.epoch + 1, progress.epochs, cfg.binary_prob_decay_start)
        )
        plan = sample_mixing(
            B,
            M,
            *self.grid,
            alpha=cfg.alpha,
            binary_prob=p,
            block="cutmix" if cfg.block == "linear" else cfg.block,
            box=cfg.cutmix_box,
            role_swap_level=cfg.role_swap_level,
            binary_choice_level=cfg.binary_choice_level,
        )
        masks, kappa = plan.device_tensors(x.device, x.dtype, self.grid)

        logs: dict[str, torch.Tensor] = {}
        if cfg.pixel_msda != "none":
            partners = torch.randint(len(self.train_set), (B * M,))
            px = self.augment(partners).view_as(x)
            pt = (
                F.one_hot(self.labels[to_device(partners, self.labels.device)], self.num_classes)
                .float()
                .view_as(targets)
            )
            x, targets, lam = pixel_msda(
                x,
                targets,
                px,
                pt,
                masks,
                kind=cfg.pixel_msda,
                prob=cfg.pixel_msda_prob,
                alpha=cfg.pixel_msda_alpha,
                swap_if_minor=cfg.pixel_msda_swap_if_minor,
            )
            logs["pixel_lambda"] = lam.mean()

        logits = self.forward_module(x, masks, scale_by_M=cfg.scale_by_M)  # (B, heads, K)
        loss = mixmo_loss(logits, targets, kappa, weight_root=cfg.weight_root, head_mode=cfg.head_mode)
        logs["binary"] = plan.binary_samples.float().mean()
        return StepOutput(loss=loss, num_images=B * M, logs=logs)
