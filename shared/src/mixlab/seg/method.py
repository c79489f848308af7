"""What every semi-supervised segmentation method shares, on the shared engine: `SegSSLMethod`.

The dataset and its labeled / unlabeled split (written into the run directory as ``labeled.txt`` and
``unlabeled.txt``), two step-indexed streams of augmented crops (batch t is a function of (seed, t): exact resume and
DDP need no sampler state), the dense network, SGD with the pretrained encoder at ``lr`` and the new modules at
``lr x head_lr_mult`` under the poly schedule, and the evaluation (one confusion matrix over the whole validation
set, whole-image / sliding-window / multi-scale + flip inference). A method subclasses it with its ``train_step``;
the base class's own step is the supervised baseline (cross-entropy on the labeled crops, ignore index 255).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mixlab.engine import Method, Runtime, StepOutput, TrainProgress, make_optimizer, poly_factor
from mixlab.errors import ConfigError
from mixlab.models import set_bn_momentum
from mixlab.seg.config import SegSSLConfig
from mixlab.seg.data import IGNORE_INDEX, SegDataset, build_seg_dataset
from mixlab.seg.inference import InferenceSpec, evaluate_segmentation
from mixlab.seg.loader import SegStream, eval_batches
from mixlab.seg.models import create_seg_model, encoder_parameters, new_module_parameters
from mixlab.seg.splits import SegSplit, resolve_split
from mixlab.seg.transforms import SegAugment


def parse_labels(labels: str) -> dict[str, Any]:
    """The ``labels`` field as `resolve_split` keywords: a count ("1464"), a fraction ("1/8", "0.125") or a named
    setting ("voc-aug-1464")."""
    text = str(labels).strip()
    if text.isdigit():
        return {"n_labeled": int(text)}
    try:
        fraction = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return {"setting": text}
    if not 0 < fraction < 1:
        raise ConfigError(f"labels={text}: a fraction of the train split must be in (0, 1)")
    return {"fraction": fraction}


def cross_entropy(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy averaged over the valid pixels (ignore 255); 0, not NaN, when none is valid."""
    loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss / (masks != IGNORE_INDEX).sum().clamp_min(1)


class SegSSLMethod(Method):
    """Data, network, optimizer and evaluation of a semi-supervised segmentation method; the supervised step."""

    name = "seg"
    best_metric = "miou"

    def __init__(self, config: SegSSLConfig, *, data_root: Path | None = None, download: bool = False):
        self.config = config.validate()
        self.data_root = data_root

    # -- set-up -------------------------------------------------------------------------------------------------
    @property
    def uses_unlabeled(self) -> bool:
        """Whether the step consumes the unlabeled stream (the supervised baseline does not)."""
        return self.config.variant != "supervised"

    def dataset_options(self) -> dict[str, Any]:
        """Loader options from the config: Cityscapes' ``scale``, the built-in scenes' canvas ``size``."""
        cfg, options = self.config, {}
        if cfg.dataset_scale:
            options["scale"] = cfg.dataset_scale
        if cfg.scene_size:
            options["size"] = cfg.scene_size
        return options

    def build_split(self, train: SegDataset) -> SegSplit:
        cfg = self.config
        if cfg.labeled_list is not None:
            return resolve_split(
                train, seed=cfg.split_seed, labeled_list=cfg.labeled_list, unlabeled_list=cfg.unlabeled_list
            )
        return resolve_split(train, seed=cfg.split_seed, **parse_labels(cfg.labels))

    def create_network(self, num_classes: int) -> nn.Module:
        cfg = self.config
        decoder = cfg.decoder_channels
        if cfg.arch == "deeplabv3plus" and decoder is not None:
            decoder = decoder[0]  # smp's DeepLabV3+ decoder has one width
        model = create_seg_model(
            cfg.arch, cfg.encoder, num_classes, pretrained=cfg.pretrained, output_stride=cfg.output_stride,
            use_mitrans=cfg.use_mitrans, mitrans_nl_stages=cfg.mitrans_nl_stages, nl_scale=cfg.nl_scale,
            nl_zero_init=cfg.nl_zero_init, psp_channels=cfg.psp_channels, decoder_channels=decoder,
        )  # fmt: skip
        return set_bn_momentum(model, cfg.bn_momentum)

    def build(self, runtime: Runtime) -> None:
        cfg, dev = self.config, runtime.device
        self.runtime = runtime
        options = self.dataset_options()
        train = build_seg_dataset(cfg.dataset, "train", self.data_root, **options)
        self.val = build_seg_dataset(cfg.dataset, "val", self.data_root, **options)
        if cfg.max_eval_images is not None and cfg.max_eval_images < len(self.val):
            self.val = self.val.subset(range(cfg.max_eval_images))
        self.split = self.build_split(train)
        self.set_classes(train)
        self.labeled = train.subset(train.index_of(self.split.labeled))
        self.unlabeled = train.subset(train.index_of(self.split.unlabeled)) if self.split.unlabeled else None
        rank, world = runtime.dist.rank, runtime.dist.world_size
        for name, subset, batch in (("labeled", self.labeled, cfg.batch_size), ("unlabeled", self.unlabeled, cfg.unlabeled_batch_size)):  # fmt: skip
            needed = name == "labeled" or self.uses_unlabeled
            if needed and (subset is None or batch * world > len(subset)):
                have = 0 if subset is None else len(subset)
                raise ConfigError(
                    f"the {name} batch is larger than the {name} set. A step takes {batch} x {world} process(es) "
                    f"images, the {name} set has {have}; lower the batch size or change the split"
                )

        self.build_network(runtime)
        self.augment = SegAugment(
            crop=cfg.crop_size, scale_range=tuple(cfg.scale_range), rotate_deg=cfg.rotate_deg, hflip=cfg.hflip,
            mean=train.mean, std=train.std,
        )  # fmt: skip
        self.labeled_stream = SegStream(
            self.labeled, cfg.batch_size, self.augment, cfg.seed, dev, rank, world, cfg.workers
        )
        self.unlabeled_stream = None
        if self.uses_unlabeled and cfg.unlabeled_batch_size > 0 and self.unlabeled is not None:
            self.unlabeled_stream = SegStream(
                self.unlabeled, cfg.unlabeled_batch_size, self.augment, cfg.seed + 1, dev, rank, world, cfg.workers
            )
        # An epoch is one pass over the unlabeled set (over the labeled set when the step uses no unlabeled image).
        stream = self.unlabeled_stream or self.labeled_stream
        self.steps_per_epoch = max(1, math.ceil(len(stream.dataset) / (stream.batch_size * world)))
        self.total_steps, self.eval_every = cfg.steps, cfg.eval_every
        self.optimizer = self.configure_optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: poly_factor(s, total=cfg.steps, power=cfg.poly_power, warmup=cfg.lr_warmup_steps),
        )
        self.clip_grad_norm = cfg.clip_grad_norm

    def set_classes(self, dataset: SegDataset | None = None, meta: dict[str, Any] | None = None) -> None:
        """What the network predicts and how its inputs are normalised: from the dataset, or from a checkpoint's
        ``extra["classes"]`` (``predict`` needs no dataset on disk)."""
        if dataset is not None:
            meta = {"names": list(dataset.class_names), "mean": list(dataset.mean), "std": list(dataset.std),
                    "palette": dataset.palette[: dataset.num_classes].tolist()}  # fmt: skip
        assert meta is not None
        self.class_meta = meta
        self.class_names = tuple(meta["names"])
        self.num_classes = len(self.class_names)
        self.mean, self.std = tuple(meta["mean"]), tuple(meta["std"])
        self.palette = torch.tensor(meta["palette"], dtype=torch.uint8)

    def build_network(self, runtime: Runtime) -> None:
        """The network on the runtime's device and the inference mode of the evaluation (after `set_classes`)."""
        cfg = self.config
        self.runtime = runtime
        self.model = self.create_network(self.num_classes).to(runtime.device)
        if runtime.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.trainable = self.model
        self.inference = InferenceSpec(
            mode="ms_flip" if cfg.tta == "ms_flip" else cfg.eval_mode, window=cfg.slide_window,
            stride=cfg.slide_stride, scales=tuple(cfg.tta_scales), flip=cfg.tta == "ms_flip",
        )  # fmt: skip

    def configure_optimizer(self) -> torch.optim.Optimizer:
        """SGD with the pretrained encoder at ``lr`` and the new modules at ``lr x head_lr_mult`` (spec §3.2)."""
        cfg = self.config
        encoder, heads = encoder_parameters(self.model), new_module_parameters(self.model)
        groups = [
            {"params": encoder, "lr": cfg.lr, "name": "encoder"},
            {"params": heads, "lr": cfg.lr * cfg.head_lr_mult, "name": "new"},
        ]
        return make_optimizer(
            torch.optim.SGD,
            groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
        )

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def split_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.config.dataset,
            "labels": self.config.labels,
            "labeled_list": self.config.labeled_list,
            "num_labeled": len(self.split.labeled),
            "num_unlabeled": len(self.split.unlabeled),
            "split_seed": self.config.split_seed,
            "files": ["labeled.txt", "unlabeled.txt"],
        }

    def run_files(self) -> dict[str, str]:
        return {
            "labeled.txt": "".join(f"{i}\n" for i in self.split.labeled),
            "unlabeled.txt": "".join(f"{i}\n" for i in self.split.unlabeled),
        }

    def extra_state(self) -> dict[str, Any]:
        return {"classes": self.class_meta}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the class facts are rebuilt from the dataset (and saved for `predict`)."""

    # -- data stream --------------------------------------------------------------------------------------------
    def train_batches(self, epoch: int, start_batch: int) -> Iterator[Any]:
        """``(step, labeled (images, masks, valid), unlabeled (images, masks, valid) or None)`` per step; file
        datasets are decoded and augmented ahead by DataLoader workers."""
        first = epoch * self.steps_per_epoch + start_batch
        stop = min((epoch + 1) * self.steps_per_epoch, self.total_steps)
        labeled = self.labeled_stream.iterate(first, stop)
        unlabeled = self.unlabeled_stream.iterate(first, stop) if self.unlabeled_stream is not None else None
        for step in range(first, stop):
            yield step, next(labeled), (next(unlabeled) if unlabeled is not None else None)

    # -- the supervised baseline ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The training forward (DDP / compiled wrapper): ``dict(logits, enc, cls)`` (``feature_mix=`` adds
        ``mix_logits``)."""
        return self.forward_module(self.runtime.to_input(x), **kwargs)

    def train_step(self, batch: Any, progress: TrainProgress) -> StepOutput:
        _, (images, masks, _valid), _ = batch
        loss = cross_entropy(self.forward(images)["logits"], masks)
        return StepOutput(loss, images.shape[0], {"ce": loss.detach()})

    # -- evaluation ---------------------------------------------------------------------------------------------
    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of the evaluated network for normalised images (eval mode, set by the caller)."""
        return self.model(self.runtime.to_input(images))["logits"]

    @torch.no_grad()
    def evaluate(self, progress: TrainProgress) -> dict[str, Any]:
        rt = self.runtime
        self.model.eval()
        start, stop = rt.shard(len(self.val))
        shard = self.val.subset(range(start, stop))
        batches = eval_batches(shard, self.config.eval_batch_size, rt.device)

        def model_fn(images: torch.Tensor) -> torch.Tensor:
            with rt.precision.autocast():
                return self.predict_logits(images).float()

        return evaluate_segmentation(
            model_fn, batches, self.num_classes, self.inference, rt.device, class_names=self.class_names
        )
