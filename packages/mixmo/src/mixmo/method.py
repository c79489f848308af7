"""MixMo on the mixlab engine: data stream, one training step (spec §4.4) and the test-time ensemble."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from mixlab.data import BatchRepetitionSampler, ImageDataset, build_dataset
from mixlab.data import transforms as T
from mixlab.engine import Method, Runtime, StepOutput, TrainProgress, warmup_multistep
from mixlab.metrics import classification_metrics, ensemble_logits
from mixlab.mixing import binary_prob_schedule, sample_mixing
from mixlab.mixing.pairing import pair_inputs
from mixlab.models import MultiHeadMIMO, create_model

from mixmo.config import MixMoConfig
from mixmo.loss import mixmo_loss
from mixmo.pixel_msda import pixel_msda


def build_network(config: MixMoConfig, num_classes: int) -> MultiHeadMIMO:
    backbone = create_model(config.model, num_classes=num_classes)
    return MultiHeadMIMO(
        backbone,
        config.num_members,
        encoder_init=config.encoder_init,
        shared_encoder=config.shared_encoder,
        num_heads=1 if config.head_mode == "single_soft" else None,
    )


@torch.no_grad()
def predict(
    model: MultiHeadMIMO, dataset: ImageDataset, runtime: Runtime, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's shard of the test-time head logits (N, heads, K) and targets, gathered over ranks."""
    start, stop = runtime.shard(len(dataset))
    mean = torch.tensor(dataset.mean, device=runtime.device).view(1, 3, 1, 1)
    std = torch.tensor(dataset.std, device=runtime.device).view(1, 3, 1, 1)
    outputs = []
    for i in range(start, stop, batch_size):
        x = dataset.images[i : min(i + batch_size, stop)].to(runtime.device, non_blocking=True)
        x = runtime.to_input((x.float() / 255 - mean) / std)
        with runtime.precision.autocast():
            outputs.append(model(x).float())
    logits = torch.cat(outputs) if outputs else torch.zeros(0, model.num_members, model.num_classes, device=runtime.device)
    targets = dataset.targets[start:stop].to(runtime.device)
    return runtime.gather(logits), runtime.gather(targets)


class MixMoMethod(Method):
    name = "mixmo"
    best_metric = "top1"

    def __init__(self, config: MixMoConfig, *, data_root: Path | None = None, download: bool = False):
        self.config = config.validate()
        self.data_root = data_root
        self.download = download

    # -- set-up -----------------------------------------------------------------------------------------------
    def build(self, runtime: Runtime) -> None:
        cfg = self.config
        self.runtime = runtime
        self.train_set = build_dataset(cfg.dataset, "train", self.data_root, download=self.download)
        self.test_set = build_dataset(cfg.dataset, "test", self.data_root, download=self.download)
        self.num_classes = self.train_set.num_classes
        self.model = build_network(cfg, self.num_classes).to(runtime.device)
        self.trainable = self.model
        self.sampler = BatchRepetitionSampler(
            len(self.train_set),
            cfg.batch_size,
            repetitions=cfg.batch_repetitions,
            seed=cfg.seed,
            rank=runtime.dist.rank,
            world_size=runtime.dist.world_size,
        )
        self.steps_per_epoch = len(self.sampler)  # the sampler refuses a batch larger than the data
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.optimizer_weight_decay,
        )
        self.scheduler = warmup_multistep(
            self.optimizer,
            steps_per_epoch=self.steps_per_epoch,
            warmup_epochs=cfg.warmup_epochs,
            milestones=cfg.milestones,
            gamma=cfg.gamma,
        )
        # The whole training set lives on the device as uint8; batches are gathered by index, augmented in batch.
        self.images = self.train_set.images.to(runtime.device)
        self.labels = self.train_set.targets.to(runtime.device)
        self.mean = torch.tensor(self.train_set.mean, device=runtime.device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.train_set.std, device=runtime.device).view(1, 3, 1, 1)
        self.grid = (self.images.shape[-2] // self.model.stem_stride, self.images.shape[-1] // self.model.stem_stride)

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    # -- training ---------------------------------------------------------------------------------------------
    def train_batches(self, epoch: int, start_batch: int) -> Iterator[torch.Tensor]:
        self.sampler.set_epoch(epoch)
        for i, batch in enumerate(self.sampler):
            if i >= start_batch:
                yield torch.as_tensor(batch, dtype=torch.long)

    def augment(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 images at these dataset indices -> augmented, normalised float batch."""
        cfg = self.config
        x = self.images[index.to(self.images.device)]
        if cfg.augmix:
            x = T.augmix(x)
        if cfg.crop_padding > 0:
            x = T.random_crop(x, cfg.crop_padding)
        if cfg.hflip:
            x = T.random_hflip(x)
        return (x.float() / 255 - self.mean) / self.std

    def train_step(self, batch: torch.Tensor, progress: TrainProgress) -> StepOutput:
        cfg, M = self.config, self.config.num_members
        index = pair_inputs(batch, M, cfg.input_repetition)  # (B, M)
        B = index.shape[0]
        x = self.augment(index.reshape(-1)).view(B, M, *self.images.shape[1:])
        targets = F.one_hot(self.labels[index.to(self.labels.device)], self.num_classes).float()  # (B, M, K)

        p = 0.0 if cfg.block == "linear" else binary_prob_schedule(
            cfg.binary_prob, progress.epoch + 1, progress.epochs, cfg.binary_prob_decay_start
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
        masks = plan.masks.to(x.device, x.dtype)
        kappa = plan.kappa.to(x.device)

        logs: dict[str, torch.Tensor] = {}
        if cfg.pixel_msda != "none":
            partners = torch.randint(len(self.train_set), (B * M,))
            px = self.augment(partners).view_as(x)
            pt = F.one_hot(self.labels[partners.to(self.labels.device)], self.num_classes).float().view_as(targets)
            x, targets, lam = pixel_msda(
                x, targets, px, pt, masks,
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

    # -- evaluation -------------------------------------------------------------------------------------------
    def evaluate(self, progress: TrainProgress) -> dict[str, Any]:
        head_logits, targets = predict(self.model, self.test_set, self.runtime)
        return summarize(head_logits, targets, self.config)


def summarize(head_logits: torch.Tensor, targets: torch.Tensor, config: MixMoConfig, calibrate: bool = True) -> dict:
    """The thesis's metrics from the M heads' logits (N, M, K): ensemble, calibrated, per head, diversity."""
    logits = ensemble_logits(head_logits, reduce=config.ensemble_reduce)
    per_head = head_logits if head_logits.shape[1] > 1 else None
    return classification_metrics(logits.cpu(), targets.cpu(), head_logits=per_head.cpu() if per_head is not None else None, calibrate=calibrate)
