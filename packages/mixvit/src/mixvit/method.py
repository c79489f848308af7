"""MixViT on the mixlab engine: the shared multi-input data stream, a transformer, AdamW and the MixViT step.

From `mixlab.mimo` come pairing the M inputs, crop/flip, prediction and the evaluation summary. This module adds
the transformer recipe (AutoAugment, RandErase, label smoothing, the simultaneous pixel MSDA, AdamW with its
schedule), the training sampler of ``repetition_mode`` (MixMo's batch repetition or DeiT's repeated
augmentation), file-backed datasets (ImageNet-100: DataLoader workers decode, crop, flip and AutoAugment every
input image; normalisation, RandErase and the MSDA stay batched on the device) and the two training steps:
MixViT's token masks and source attribution, or MixMo's mixing block for the naive multi-encoder transformers of
Table 4.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from mixlab.data import (
    BatchRepetitionSampler,
    EpochBatchSampler,
    FileBatchLoader,
    FileImageDataset,
    RepeatAugSampler,
    SeededBatchSampler,
    dataset_info,
)
from mixlab.data import transforms as T
from mixlab.engine import DistInfo, StepOutput, TrainProgress
from mixlab.errors import ConfigError
from mixlab.mimo import MultiInputMethod
from mixlab.mixing import binary_prob_schedule, reweight, sample_mixing, weighted_head_loss
from mixlab.mixing.pairing import pair_inputs
from mixlab.models import create_model
from torch import nn

from mixvit.augment import apply_msda, msda_mask, random_erasing, smooth_labels
from mixvit.baselines import MultiEncoderViT
from mixvit.config import MixViTConfig
from mixvit.loss import head_weights
from mixvit.masks import TokenMasks, binarized_cutmix, whole_input, whole_input_prob
from mixvit.network import MixViT
from mixvit.optim import adamw, warmup_step_schedule

__all__ = ["MixViTMethod", "build_network"]


def image_side(config: MixViTConfig) -> int:
    """The side of the training and test images: ``image_size`` when set, else the dataset's own."""
    return config.image_size or dataset_info(config.dataset).image_size


def build_network(config: MixViTConfig, num_classes: int) -> MixViT | MultiEncoderViT:
    """The untrained network a config describes, sized for its dataset's images."""
    options: dict[str, Any] = {
        "img_size": image_side(config),
        "patch_size": config.patch_size,
        "drop_path_rate": config.drop_path_rate,
    }
    if config.model.startswith("convit"):
        options["head_block"] = config.head_block
    elif config.head_block != "ca":
        raise ConfigError(f"head_block={config.head_block!r} applies to the ConViT variant; CaiT has class attention")
    backbone = create_model(config.model, num_classes, **options)
    if config.network == "multi_encoder":
        return MultiEncoderViT(
            backbone,
            config.num_members,
            encoder_init=config.encoder_init,
            inference=config.inference,
            scale_by_M=config.scale_by_M,
        )
    return MixViT(
        backbone,
        config.num_members,
        attribution=config.source_attribution,
        attribution_layer=config.attribution_layer,
        inference=config.inference,
        alternating_pattern=config.alternating_pattern,
        single_index=config.single_index,
    )


def train_sampler(config: MixViTConfig, num_samples: int, dist: DistInfo) -> EpochBatchSampler:
    """The b batch augmentations: MixMo's batch repetition (b copies in a batch, b times the steps per epoch) or,
    with ``repetition_mode="deit_ra"``, DeiT's repeated augmentation (samples per epoch about N)."""
    kind = RepeatAugSampler if config.repetition_mode == "deit_ra" else BatchRepetitionSampler
    return kind(
        num_samples,
        config.batch_size,
        repetitions=config.batch_repetitions,
        seed=config.seed,
        rank=dist.rank,
        world_size=dist.world_size,
    )


def paired_indices(
    index: torch.Tensor, generator: torch.Generator, *, members: int, input_repetition: float
) -> torch.Tensor:
    """A batch of sampler indices -> the M inputs' dataset indices, row by row (B*M), paired as in memory."""
    return pair_inputs(index, members, input_repetition, generator=generator).reshape(-1)


class MixViTMethod(MultiInputMethod):
    name = "mixvit"
    config: MixViTConfig
    model: nn.Module
    images: torch.Tensor | None  # the in-memory training images on the device (None for a file-backed dataset)
    file_batches: FileBatchLoader | None  # the decoded training batches of a file-backed dataset

    def build_network(self, num_classes: int) -> nn.Module:
        return build_network(self.config, num_classes)

    # -- set-up (hooks of `mixlab.mimo.MultiInputMethod.build`) ----------------------------------------------------
    def build_sampler(self, num_samples: int, dist: DistInfo) -> EpochBatchSampler:
        return train_sampler(self.config, num_samples, dist)

    def attach_training_images(self) -> None:
        """In-memory images on the device, or, for a file-backed dataset, training images decoded by DataLoader
        workers."""
        if isinstance(self.train_set, FileImageDataset):
            self.images, self.file_batches = None, self.file_loader(self.train_set)
        else:
            super().attach_training_images()
            self.file_batches = None

    def file_loader(self, train_set: FileImageDataset) -> FileBatchLoader:
        """Workers decode each of a batch's B*M input images and apply RandomResizedCrop, flip and AutoAugment;
        pairing and every crop are seeded per batch (`SeededBatchSampler`), so a resumed run sees the same."""
        cfg = self.config
        if cfg.msda != "none" and cfg.msda_partner == "dataset":
            raise ConfigError(
                f"msda_partner=dataset draws partners from images held in memory; {cfg.dataset} is "
                "read from files: use msda_partner=batch"
            )
        dataset = train_set.with_transform(
            T.random_resized_crop(train_set.side, hflip=cfg.hflip, autoaugment=cfg.autoaugment)
        )
        arrange = partial(paired_indices, members=cfg.num_members, input_repetition=cfg.input_repetition)
        keys = SeededBatchSampler(self.sampler, cfg.seed, arrange)
        return FileBatchLoader(dataset, keys, self.runtime.device, workers=cfg.data_workers)

    def configure_optimizers(self):
        cfg = self.config
        lr = cfg.lr_for(self.runtime.dist.world_size)
        optimizer = adamw(self.model, lr, cfg.weight_decay)
        scheduler = warmup_step_schedule(
            optimizer,
            lr=lr,
            warmup_lr=cfg.warmup_lr,
            steps_per_epoch=self.steps_per_epoch,
            warmup_epochs=cfg.warmup,
            milestones=cfg.milestones,
            gamma=cfg.gamma,
        )
        return optimizer, scheduler

    # -- input pipeline ---------------------------------------------------------------------------------------
    def train_batches(self, epoch: int, start_batch: int) -> Iterator[Any]:
        """Sampler indices (in memory), or decoded (images, labels) of the B*M inputs (file-backed)."""
        if self.file_batches is None:
            yield from super().train_batches(epoch, start_batch)
            return
        self.sampler.set_epoch(epoch, start_batch=start_batch)
        yield from self.file_batches

    def sample_inputs(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, M, 3, H, W) and one-hot targets (B, M, K): paired and augmented from the in-memory images,
        or from a decoded batch whose B*M images are already paired row by row, cropped and AutoAugmented."""
        if self.file_batches is None:
            return super().sample_inputs(batch)
        images, labels = batch
        M = self.config.num_members
        x = self.normalize_and_erase(images).view(-1, M, *images.shape[1:])
        return x, F.one_hot(labels.view(-1, M), self.num_classes).float()

    def augment(self, index: torch.Tensor) -> torch.Tensor:
        """In-memory uint8 images -> crop, flip, AutoAugment, normalise, RandErase (the DeiT order)."""
        cfg = self.config
        x = self.images[index.to(self.images.device)]
        if cfg.crop_padding > 0:
            x = T.random_crop(x, cfg.crop_padding)
        if cfg.hflip:
            x = T.random_hflip(x)
        if cfg.autoaugment != "none":
            x = T.autoaugment(x, policy=cfg.autoaugment)
        return self.normalize_and_erase(x)

    def normalize_and_erase(self, x: torch.Tensor) -> torch.Tensor:
        """Cropped uint8 images -> normalised float images with RandErase (the end of the DeiT pipeline)."""
        x = (x.float() / 255 - self.mean) / self.std
        return random_erasing(x, self.config.random_erasing)

    def pixel_msda(
        self, x: torch.Tensor, targets: torch.Tensor, visible: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CutMix + MixUp on all B*M input images at once; ``visible`` (B*M, 1, h|1, w|1) their token masks."""
        cfg = self.config
        shape, n = x.shape, x.shape[0] * x.shape[1]
        flat_x, flat_t = x.flatten(0, 1), targets.flatten(0, 1)
        if cfg.msda_partner == "dataset":  # MixMo's partner: any training image, freshly augmented
            picks = torch.randint(len(self.train_set), (n,))
            partner_x = self.augment(picks)
            partner_t = smooth_labels(
                F.one_hot(self.labels[picks.to(self.labels.device)], self.num_classes).float(), cfg.label_smoothing
            )
        else:
            perm = torch.randperm(n, device=flat_x.device)
            partner_x, partner_t = flat_x[perm], flat_t[perm]
        mask = msda_mask(
            n,
            shape[-2],
            shape[-1],
            kind=cfg.msda,
            cutmix_alpha=cfg.cutmix_alpha,
            mixup_alpha=cfg.mixup_alpha,
            soft_mask=cfg.msda_soft_mask,
            device=flat_x.device,
        )
        mixed, mixed_t, lam = apply_msda(
            flat_x,
            flat_t,
            partner_x,
            partner_t,
            mask,
            visible=visible if cfg.msda_label_correction else None,
            primary_dominant=cfg.msda_primary_dominant,
        )
        return mixed.view(shape), mixed_t.view_as(targets), lam

    # -- MixViT's mixing --------------------------------------------------------------------------------------
    def token_masks(self, batch: int, progress: TrainProgress) -> TokenMasks:
        """This batch's token masks: whole-input (end of training), all tokens visible (ablation), or CutMix."""
        cfg, M, device = self.config, self.config.num_members, self.runtime.device
        p_whole = whole_input_prob(progress.fraction, cfg.whole_input_start, cfg.whole_input_pmax)
        if M > 1 and p_whole > 0 and float(torch.rand(())) < p_whole:  # one draw per batch
            return whole_input(batch, M, self.grid, device=device)
        if cfg.input_mixing == "all_tokens" and M > 1:
            ones = torch.ones(batch, M, *self.grid, device=device)
            return TokenMasks(ones, torch.full((batch, M), 1.0 / M, device=device))
        return binarized_cutmix(
            batch,
            M,
            self.image_hw,
            self.model.stem_stride,
            cfg.mix_alpha,
            box_owner=cfg.box_owner,
            tie_break=cfg.tie_break,
            device=device,
        )

    def train_step(self, batch: Any, progress: TrainProgress) -> StepOutput:
        x, one_hot = self.sample_inputs(batch)  # (B, M, 3, H, W), (B, M, K)
        targets = smooth_labels(one_hot, self.config.label_smoothing)
        if self.config.network == "multi_encoder":
            return self.multi_encoder_step(x, targets, progress)
        return self.mixvit_step(x, targets, progress)

    def mixvit_step(self, x: torch.Tensor, targets: torch.Tensor, progress: TrainProgress) -> StepOutput:
        cfg, (B, M) = self.config, x.shape[:2]
        mixing = self.token_masks(B, progress)
        masks = mixing.masks
        logs: dict[str, torch.Tensor] = {"whole_input": masks.new_tensor(float(mixing.whole))}
        if cfg.msda != "none":
            x, targets, lam = self.pixel_msda(x, targets, masks.reshape(B * M, 1, *masks.shape[2:]))
            logs["msda_lambda"] = lam.mean()
        concat = cfg.input_mixing == "all_tokens" and not mixing.whole and M > 1
        logits = self.forward_module(x, masks.to(x.dtype), concat=concat)  # (B, M, K)
        weights = head_weights(
            mixing.lam,
            weighting="uniform" if concat else cfg.loss_weighting,
            total=cfg.loss_weight_sum,
            root=cfg.weight_root,
            whole=mixing.whole,
        )
        loss = weighted_head_loss(logits.float(), targets, weights)
        return StepOutput(loss=loss, num_images=B * M, logs=logs)

    # -- the naive transformers of Table 4.1 ------------------------------------------------------------------
    def multi_encoder_step(self, x: torch.Tensor, targets: torch.Tensor, progress: TrainProgress) -> StepOutput:
        """MixMo's step on the token grid: linear or CutMix mixing of M embeddings (x M), w_r-weighted heads."""
        cfg, (B, M) = self.config, x.shape[:2]
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
            device=x.device,
        )
        masks = plan.masks.to(x.dtype)
        logs: dict[str, torch.Tensor] = {"binary": plan.binary_samples.float().mean()}
        if cfg.msda != "none":
            x, targets, lam = self.pixel_msda(x, targets, masks.reshape(B * M, 1, *masks.shape[3:]))
            logs["msda_lambda"] = lam.mean()
        logits = self.forward_module(x, masks, scale_by_M=cfg.scale_by_M)
        loss = weighted_head_loss(logits.float(), targets, reweight(plan.kappa, cfg.weight_root))
        return StepOutput(loss=loss, num_images=B * M, logs=logs)
