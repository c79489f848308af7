"""Core-network feature influence of MIMO subnetworks (thesis App. A.6.3, Fig. A.8; spec §5.1).

The weights of the shared core cannot say which subnetwork a channel serves, so the thesis measures it by varying
one input: for subnetwork i, input i runs over the test images while every other input holds one fixed image d;
the encodings are summed in the mixing space as at test time (``z = sum_j c_j(x_j)``, no mask, no x M factor);
``M_int`` (N, C, H, W) is a stage's output, and the importance of its channels for subnetwork i is
``Mean(Var(M_int, dim=0), dim=(1, 2))`` (unbiased variance over the images, mean over space).

The stages are the core's residual groups (WRN: ``layer1..3``, PreActResNet: ``layer1..4``, smallcnn:
``block1..2``), read with forward hooks. The variance is accumulated batch by batch (Chan's parallel update, in
float64), so the test set is never held as feature maps in memory.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from mixlab.data.transforms import normalize
from mixlab.errors import ConfigError, MixlabError
from mixlab.metrics.analysis import SHARE_VARIANTS
from mixlab.models import MultiHeadMIMO
from mixlab.visual import save_png_atomically
from torch import Tensor, nn

from mixshare.analysis import COLOURS, bars, pairwise_share

STAGE_NAME = re.compile(r"(layer|block|stage)\d+")
FIXED_INPUT_HELP = (
    "The fixed image d on the other inputs (A.6.3): 'first' (the first test image, default: a real image keeps "
    "the summed mixing space in its usual range; the mean image standardises to about 0, so the other inputs "
    "would add almost nothing), 'mean' (the mean of the analysed test images) or a test-set index."
)


def core_stages(model: MultiHeadMIMO) -> dict[str, nn.Module]:
    """The core's residual stages in forward order, by name (``layer1``, ``block1``, ...); an error when none."""
    stages = {name: m for name, m in model.core.named_children() if STAGE_NAME.fullmatch(name)}
    if not stages:
        raise ConfigError(
            f"{type(model.core).__name__} has no residual stages named layerN / blockN / stageN: the core-network "
            "feature influence (A.6.3) cannot be measured on it; pass --no-core"
        )
    return dict(sorted(stages.items(), key=lambda item: int(re.sub(r"\D", "", item[0]))))


class RunningVariance:
    """Per-position mean and unbiased variance over the batch dimension, fed batch by batch.

    Values are shifted by the first row seen (so a position that never changes has exactly zero variance, and
    large means cost no precision), then accumulated in float64 on the CPU with Chan's parallel update.
    """

    def __init__(self) -> None:
        self.count = 0
        self.shift: Tensor | None = None
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def update(self, batch: Tensor) -> None:
        if self.shift is None:
            self.shift = batch[:1].clone()
        wide = torch.float32 if batch.device.type == "mps" else torch.float64  # MPS has no float64
        shifted = (batch - self.shift).to(wide)
        n = shifted.shape[0]
        batch_mean = shifted.mean(0)
        batch_m2 = (shifted - batch_mean).square().sum(0).to("cpu", torch.float64)
        batch_mean = batch_mean.to("cpu", torch.float64)
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n, batch_mean, batch_m2
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + batch_m2 + delta.square() * (self.count * n / total)
        self.count = total

    def variance(self) -> Tensor:
        if self.m2 is None or self.count < 2:
            raise MixlabError("the core-network feature influence needs at least 2 test images")
        return self.m2 / (self.count - 1)


def mixed_encodings(model: MultiHeadMIMO, varied: Tensor, fixed: Tensor) -> Tensor:
    """The test-time mixing space for every member at once, (M * B, C0, H0, W0).

    Rows ``i * B .. (i + 1) * B`` hold ``c_i(varied) + sum_{j != i} c_j(fixed)``: member i sees the batch, the
    others the fixed image d (``fixed`` is (1, 3, H, W), encoded once and broadcast).
    """
    M = model.num_members
    fixed_codes = [model.member_encoder(j)(fixed) for j in range(M)]
    fixed_sum = torch.stack(fixed_codes).sum(0)
    return torch.cat([model.member_encoder(i)(varied) + (fixed_sum - fixed_codes[i]) for i in range(M)])


@contextlib.contextmanager
def _recording(stages: dict[str, nn.Module], stats: dict[str, list[RunningVariance]]) -> Iterator[None]:
    """Forward hooks that split each stage's output (M * B, ...) into the M members' chunks and accumulate them."""

    def hook(name: str):
        def record(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
            for member, chunk in zip(stats[name], output.detach().float().chunk(len(stats[name]))):
                member.update(chunk)

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in stages.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def core_feature_influence(model: MultiHeadMIMO, batches: Iterable[Tensor], fixed: Tensor) -> dict[str, Tensor]:
    """Stage name -> (M, C) importances ``Mean(Var(M_int, dim=0), dim=(1, 2))`` of every channel for every member.

    ``batches`` are standardised test images (B, 3, H, W), ``fixed`` the standardised image d (3, H, W) or
    (1, 3, H, W). The model runs in eval mode (BatchNorm on its running statistics, so images do not interact).
    """
    stages = core_stages(model)
    stats = {name: [RunningVariance() for _ in range(model.num_members)] for name in stages}
    fixed = fixed.reshape(1, *fixed.shape[-3:])
    was_training = model.training
    model.eval()
    try:
        with _recording(stages, stats):
            for x in batches:
                model.features(mixed_encodings(model, x, fixed.to(x)))
    finally:
        model.train(was_training)
    return {
        name: torch.stack([s.variance().flatten(1).mean(1) for s in members]).float() for name, members in stats.items()
    }


def standardized_batches(dataset, batch_size: int, device: torch.device, limit: int | None = None) -> Iterator[Tensor]:
    """The first ``limit`` (default: all) test images, standardised as at evaluation, ``batch_size`` at a time."""
    stop = len(dataset) if limit is None else min(limit, len(dataset))
    for start in range(0, stop, batch_size):
        images = dataset.images[start : min(start + batch_size, stop)].to(device)
        yield normalize(images, dataset.mean, dataset.std)


def fixed_image(dataset, choice: str, batch_size: int, device: torch.device, limit: int | None = None) -> Tensor:
    """The standardised image d (3, H, W): ``first``, ``mean`` (over the analysed images) or a test-set index."""
    if choice == "mean":
        total = sum(x.sum(0) for x in standardized_batches(dataset, batch_size, device, limit))
        return total / min(len(dataset), limit or len(dataset))
    index = 0 if choice == "first" else _index(choice, len(dataset))
    return normalize(dataset.images[index : index + 1].to(device), dataset.mean, dataset.std)[0]


def _index(choice: str, size: int) -> int:
    if not choice.isdigit() or int(choice) >= size:
        raise ConfigError(f"--fixed-input must be 'first', 'mean' or a test-set index below {size}, not {choice!r}")
    return int(choice)


def _shares(importance: Tensor) -> dict[str, float | None]:
    """The analysis's share rates (in %) between the members' importances; None where a member's row is all 0."""
    shares: dict[str, float | None] = {}
    for variant in SHARE_VARIANTS:
        key = "share_rate" if variant == "normalized" else f"share_rate_{variant}"
        try:
            shares[key] = pairwise_share(importance, variant) if importance.shape[0] >= 2 else None
        except MixlabError:
            shares[key] = None
    return shares


def summarize(influence: dict[str, Tensor], fixed_input: str, images: int) -> dict[str, Any]:
    """The ``core_features`` block of analysis.json: importances, share rates and dominant members per stage."""
    stages = []
    for name, importance in influence.items():
        dominant = importance.argmax(0)
        stages.append(
            {
                "stage": name,
                "channels": importance.shape[1],
                "importance": importance.tolist(),
                **_shares(importance),
                "dominant_member": dominant.tolist(),
                "dominant_counts": torch.bincount(dominant, minlength=importance.shape[0]).tolist(),
            }
        )
    return {"fixed_input": fixed_input, "images": images, "stages": stages}


def channel_order(importance: Tensor) -> list[int]:
    """One order for every member's bars: channels grouped by dominant member, most exclusive first in a group and
    least exclusive first in the last group, so that with M = 2 the bars run from channels used by subnetwork 0
    only, through the shared ones, to channels used by subnetwork 1 only."""
    total = importance.sum(0).clamp_min(1e-30)
    dominant = importance.argmax(0)
    exclusivity = importance.max(0).values / total
    last = importance.shape[0] - 1

    def key(c: int) -> tuple[int, float]:
        member = int(dominant[c])
        return member, float(exclusivity[c]) if member == last and last > 0 else -float(exclusivity[c])

    return sorted(range(importance.shape[1]), key=key)


def write_core_plot(block: dict[str, Any], path: Path, title: str = "") -> Path:
    """Fig. A.8: per stage, every member's channel importances as grouped bars on a common scale."""
    from PIL import Image, ImageDraw

    stages = block["stages"]
    width, panel = 1000, 220
    image = Image.new("RGB", (width, 44 + panel * len(stages)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 6), title, fill=(0, 0, 0))
    members = len(stages[0]["importance"]) if stages else 0
    for i in range(members):
        draw.rectangle([10 + 110 * i, 24, 20 + 110 * i, 34], fill=COLOURS[i % len(COLOURS)])
        draw.text((24 + 110 * i, 24), f"subnetwork {i}", fill=(0, 0, 0))
    for k, stage in enumerate(stages):
        importance = torch.tensor(stage["importance"])
        rows = importance[:, channel_order(importance)].tolist()
        share = stage.get("share_rate")
        label = f"after {stage['stage']}: Mean(Var(M_int, dim=0), dim=(1, 2)), d = {block['fixed_input']}"
        label += f"  (share rate {share:.1f}%)" if share is not None else ""
        top = 44 + panel * k
        bars(draw, (10, top, width - 10, top + panel - 10), rows, label, common_scale=True)
    return save_png_atomically(image, path)
