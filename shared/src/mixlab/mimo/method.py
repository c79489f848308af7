"""The part of a multi-input classification method that does not depend on how the inputs are mixed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mixlab.data import BatchRepetitionSampler, EpochBatchSampler, ImageDataset, build_dataset
from mixlab.data import transforms as T
from mixlab.data.dataset import require_rgb
from mixlab.engine import DistInfo, Method, Runtime, TrainProgress, budget_steps, warmup_multistep
from mixlab.engine.optimization import make_optimizer
from mixlab.metrics import classification_metrics, ensemble_logits
from mixlab.mimo.config import MultiInputConfig
from mixlab.mixing.pairing import pair_inputs
from mixlab.models import MultiHeadMIMO, create_model
from mixlab.transfer import to_device


def build_network(config: MultiInputConfig, num_classes: int, *, num_heads: int | None = None) -> MultiHeadMIMO:
    """M encoders, the config's backbone as the shared core, M heads (or one shared head with ``num_heads=1``)."""
    backbone = create_model(config.model, num_classes=num_classes)
    kwargs: dict[str, Any] = {}
    scale_range = getattr(config, "colinear_scale_range", None)
    if scale_range is not None:
        kwargs["colinear_scale_range"] = tuple(scale_range)
    return MultiHeadMIMO(
        backbone,
        config.num_members,
        encoder_init=config.encoder_init,
        shared_encoder=config.shared_encoder,
        num_heads=num_heads,
        **kwargs,
    )


@torch.no_grad()
def predict(
    model: nn.Module, dataset: ImageDataset, runtime: Runtime, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's shard of the test-time head logits (N, heads, K) and targets, gathered over ranks.

    ``model`` is a :class:`MultiHeadMIMO` or any network with its test contract: ``model(x)`` gives the head
    logits (B, M, K), and ``num_members`` / ``num_classes`` say M and K.
    """
    require_rgb(dataset, "the multi-input networks")
    start, stop = runtime.shard(len(dataset))
    mean = torch.tensor(dataset.mean, device=runtime.device).view(1, 3, 1, 1)
    std = torch.tensor(dataset.std, device=runtime.device).view(1, 3, 1, 1)
    outputs = []
    for i in range(start, stop, batch_size):
        x = dataset.images[i : min(i + batch_size, stop)].to(runtime.device, non_blocking=True)
        x = runtime.to_input((x.float() / 255 - mean) / std)
        with runtime.precision.autocast():
            outputs.append(model(x).float())
    logits = (
        torch.cat(outputs) if outputs else torch.zeros(0, model.num_members, model.num_classes, device=runtime.device)
    )
    targets = dataset.targets[start:stop].to(runtime.device)
    return runtime.gather(logits), runtime.gather(targets)


def summarize(
    head_logits: torch.Tensor, targets: torch.Tensor, config: MultiInputConfig, calibrate: bool = True
) -> dict[str, Any]:
    """The thesis's metrics from the M heads' logits (N, M, K): ensemble, calibrated, per head, diversity."""
    logits = ensemble_logits(head_logits, reduce=config.ensemble_reduce)
    per_head = head_logits.cpu() if head_logits.shape[1] > 1 else None
    return classification_metrics(logits.cpu(), targets.cpu(), head_logits=per_head, calibrate=calibrate)


class MultiInputMethod(Method):
    """Data, network, optimizer and evaluation of a multi-input multi-output classifier.

    Subclasses set ``name`` and implement ``train_step``; ``sample_inputs`` gives them the paired, augmented
    inputs (B, M, 3, H, W) and their one-hot targets (B, M, K), and ``self.grid`` is the mixing-space size.
    """

    best_metric = "top1"

    def __init__(self, config: MultiInputConfig, *, data_root: Path | None = None, download: bool = False):
        self.config = config.validate()
        self.data_root = data_root
        self.download = download

    def build_network(self, num_classes: int) -> MultiHeadMIMO:
        return build_network(self.config, num_classes)

    # -- set-up -----------------------------------------------------------------------------------------------
    def build(self, runtime: Runtime) -> None:
        """Datasets, network, sampler, optimizer and the training images; the hooks below let a method change one
        of them (MixViT: the sampler of ``repetition_mode`` and file-backed training images)."""
        cfg = self.config
        self.runtime = runtime
        options = cfg.dataset_options()  # the configured image size, if any
        self.train_set = build_dataset(cfg.dataset, "train", self.data_root, download=self.download, **options)
        self.test_set = build_dataset(cfg.dataset, "test", self.data_root, download=self.download, **options)
        require_rgb(self.train_set, "the multi-input networks")
        self.num_classes = self.train_set.num_classes
        self.model = self.build_network(self.num_classes).to(runtime.device)
        self.trainable = self.model
        self.sampler = self.build_sampler(len(self.train_set), runtime.dist)
        self.steps_per_epoch = len(self.sampler)  # the sampler refuses a batch larger than the data
        self.total_steps = budget_steps(self.steps_per_epoch, epochs=cfg.epochs, steps=cfg.steps)
        self.eval_every = cfg.eval_every or self.steps_per_epoch
        self.optimizer, self.scheduler = self.configure_optimizers()
        self.labels = self.train_set.targets.to(runtime.device)
        self.mean = torch.tensor(self.train_set.mean, device=runtime.device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.train_set.std, device=runtime.device).view(1, 3, 1, 1)
        self.image_hw = tuple(self.train_set.image_size)
        self.grid = (self.image_hw[0] // self.model.stem_stride, self.image_hw[1] // self.model.stem_stride)
        self.attach_training_images()

    def build_sampler(self, num_samples: int, dist: DistInfo) -> EpochBatchSampler:
        """MixMo's batch repetition: b copies of each index in a batch, b times the steps per epoch."""
        cfg = self.config
        return BatchRepetitionSampler(
            num_samples,
            cfg.batch_size,
            repetitions=cfg.batch_repetitions,
            seed=cfg.seed,
            rank=dist.rank,
            world_size=dist.world_size,
        )

    def attach_training_images(self) -> None:
        """The whole training set lives on the device as uint8; batches are gathered by index, augmented in batch."""
        self.images = self.train_set.images.to(self.runtime.device)

    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """The thesis's CNN recipe: SGD with Nesterov momentum and the per-step warm-up multistep schedule.

        Called by ``build`` once the model and ``steps_per_epoch`` exist; a method with another optimizer (MixViT:
        AdamW) overrides it.
        """
        cfg = self.config
        optimizer = make_optimizer(
            torch.optim.SGD,
            self.model.parameters(),
            lr=cfg.lr_for(self.runtime.dist.world_size),
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.optimizer_weight_decay,
        )
        scheduler = warmup_multistep(
            optimizer,
            steps_per_epoch=self.steps_per_epoch,
            warmup_epochs=cfg.warmup_epochs,
            milestones=cfg.milestones,
            gamma=cfg.gamma,
        )
        return optimizer, scheduler

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    # -- training data ----------------------------------------------------------------------------------------
    def train_batches(self, epoch: int, start_batch: int) -> Iterator[torch.Tensor]:
        self.sampler.set_epoch(epoch, start_batch=start_batch)  # a resumed run skips the consumed batches
        for batch in self.sampler:
            yield torch.as_tensor(batch, dtype=torch.long)

    def augment(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 images at these dataset indices -> augmented, normalised float batch."""
        cfg = self.config
        x = self.images[to_device(index, self.images.device)]
        if cfg.augmix:
            x = T.augmix(x)
        if cfg.crop_padding > 0:
            x = T.random_crop(x, cfg.crop_padding)
        if cfg.hflip:
            x = T.random_hflip(x)
        return (x.float() / 255 - self.mean) / self.std

    def sample_inputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampler indices (bs,) -> inputs (B, M, 3, H, W) paired as in spec §3.8 and one-hot targets (B, M, K)."""
        M = self.config.num_members
        index = pair_inputs(batch, M, self.config.input_repetition)  # (B, M)
        B = index.shape[0]
        x = self.augment(index.reshape(-1)).view(B, M, *self.images.shape[1:])
        targets = F.one_hot(self.labels[to_device(index, self.labels.device)], self.num_classes).float()
        return x, targets

    # -- evaluation -------------------------------------------------------------------------------------------
    def evaluate(self, progress: TrainProgress) -> dict[str, Any]:
        head_logits, targets = predict(self.model, self.test_set, self.runtime)
        return summarize(head_logits, targets, self.config)
