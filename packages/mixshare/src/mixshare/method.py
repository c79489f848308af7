"""MixShare on the mixlab engine (spec §5.6): Cut-MixMo mixing, unmixing heads, aligned encoders, raw ratios.

Data, pairing (with the 10% input repetition), augmentation, optimizer, prediction and the evaluation summary are
the shared multi-input method of `mixlab.mimo`. Unmixing runs inside the network's own ``forward`` (through its
``pool_fn`` hook), so DDP and torch.compile see the whole training computation.
"""

from __future__ import annotations

from typing import Any

import torch
from mixlab.engine import StepOutput, TrainProgress
from mixlab.mimo import MultiInputMethod, build_network, predict, summarize
from mixlab.mixing import binary_prob_schedule, reweight, sample_mixing, weighted_head_loss
from mixlab.models import MultiHeadMIMO

from mixshare.analysis import head_share_rate
from mixshare.config import MixShareConfig
from mixshare.unmix import UnmixPool, fadeout_rho

__all__ = ["MixShareMethod", "build_network", "predict", "unmix_settings"]


def unmix_settings(config: MixShareConfig, progress: TrainProgress) -> tuple[float, float] | None:
    """(fraction of unmixed channels, fadeout rho) at this point of training; None when nothing is unmixed."""
    if config.unmix == "none" or config.num_members == 1:
        return None
    if config.unmix == "full":
        return 1.0, 0.0
    if config.unmix == "partial":
        return config.unmix_fraction, 0.0
    rho = fadeout_rho(
        progress.epoch, progress.step, progress.steps_per_epoch, config.fadeout_epochs, config.fadeout_granularity
    )
    return (1.0, rho) if rho < 1.0 else None


class MixShareMethod(MultiInputMethod):
    name = "mixshare"
    config: MixShareConfig

    def train_step(self, batch: torch.Tensor, progress: TrainProgress) -> StepOutput:
        cfg, M = self.config, self.config.num_members
        x, targets = self.sample_inputs(batch)  # (B, M, 3, H, W), (B, M, K)
        B = x.shape[0]
        p = binary_prob_schedule(cfg.binary_prob, progress.epoch + 1, progress.epochs, cfg.binary_prob_decay_start)
        plan = sample_mixing(
            B,
            M,
            *self.grid,
            alpha=cfg.alpha,
            binary_prob=p,
            block=cfg.block,
            box=cfg.cutmix_box,
            role_swap_level=cfg.role_swap_level,
            binary_choice_level=cfg.binary_choice_level,
        )
        # Linear batches keep their constant masks (B, M, 1, 1, 1): unmixing broadcasts them as they are, where
        # masks spread over the grid would be thresholded by mask_downsample=area_threshold.
        masks, kappa = plan.device_tensors(x.device, x.dtype)
        settings = unmix_settings(cfg, progress)
        pool_fn = None
        logs: dict[str, torch.Tensor] = {"binary": plan.binary_samples.float().mean()}
        if settings is not None:
            fraction, rho = settings
            pool_fn = UnmixPool(
                masks, fraction=fraction, rho=rho, normalize=cfg.unmix_normalize, downsample=cfg.mask_downsample
            )
            logs["unmix_rho"] = kappa.new_tensor(rho)
        logits = self.forward_module(x, masks, scale_by_M=cfg.scale_by_M, pool_fn=pool_fn)  # (B, M, K)
        loss = weighted_head_loss(logits.float(), targets, reweight(kappa, cfg.weight_root))
        return StepOutput(loss=loss, num_images=B * M, logs=logs)

    def evaluate(self, progress: TrainProgress) -> dict[str, Any]:
        head_logits, targets = predict(self.model, self.test_set, self.runtime)
        metrics = summarize(head_logits, targets, self.config)
        metrics.update(head_share_rate(self.model))
        return metrics


def build(config: MixShareConfig, num_classes: int) -> MultiHeadMIMO:
    return build_network(config, num_classes)
