"""Segmentation inference (spec guidedmix §3.4) and the validation loop that turns it into mIoU (§4.5).

A model is seen through ``model_fn(images) -> logits``: ``images`` is a normalised float batch (B, 3, H, W) and the
logits (B, C, h, w) may come at any resolution (stride-8/16/32 heads, PixelShuffle decoders); they are always
resized bilinearly (``align_corners=False``) to the size of the images that were fed. Wrap a model that returns a
dict as ``lambda x: model(x)["logits"]``; putting it in eval mode and choosing autocast is the caller's business.

Three modes, as an :class:`InferenceSpec`:

* ``"whole"`` (default): the whole image in one pass, padded bottom/right with 0 (the mean after normalisation) to a
  multiple of ``pad_multiple`` (the output stride of models that need it), the output cropped back.
* ``"slide"``: ``window`` x ``window`` crops every ``stride`` pixels (Cityscapes option: 513 / 342), the last row and
  column of windows flush with the image border; softmax probabilities of overlapping windows are averaged.
  Images smaller than the window are padded with 0 to the window first.
* ``"ms_flip"`` (Table 10 "+MS and Flip"): softmax probabilities averaged over ``scales`` x {identity, horizontal
  flip}, each resized back to the original size; each scaled image goes through ``base`` ("whole" or "slide").

Spec §4.5 takes the argmax at the label's resolution: when a mask's size differs from its image's,
:func:`evaluate_segmentation` resizes the logits (``whole``) or the averaged probabilities (``slide``, ``ms_flip``)
to the mask before the argmax.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from mixlab.errors import ConfigError
from mixlab.metrics.segmentation import ConfusionMatrix, segmentation_scores
from mixlab.seg.data.dataset import IGNORE_INDEX

ModelFn = Callable[[torch.Tensor], torch.Tensor]
#: ``base(model_fn, images) -> probabilities (B, C, H, W)`` at the size of ``images``
ProbabilityFn = Callable[[ModelFn, torch.Tensor], torch.Tensor]

MODES = ("whole", "slide", "ms_flip")
MS_BASES = ("whole", "slide")
#: Table 10 "+MS and Flip" scales
MS_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
#: Cityscapes sliding-window option of spec §3.4
CITYSCAPES_WINDOW, CITYSCAPES_STRIDE = 513, 342


def resize(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) maps to ``size`` (align_corners=False); the input itself when sizes match."""
    size = (int(size[0]), int(size[1]))
    if tuple(maps.shape[-2:]) == size:
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"Expected a float image batch (B, 3, H, W), got {images.dtype} {tuple(images.shape)}.")


def _logits(model_fn: ModelFn, images: torch.Tensor) -> torch.Tensor:
    """``model_fn(images)`` as float32 logits (B, C, H, W) at the images' size."""
    logits = model_fn(images)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or logits.shape[0] != images.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model_fn must return logits (B={images.shape[0]}, C, h, w), got {shape}.")
    return resize(logits.float(), images.shape[-2:])


def _pad_bottom_right(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    ph, pw = height - images.shape[-2], width - images.shape[-1]
    return F.pad(images, (0, pw, 0, ph), value=0.0) if ph or pw else images


def predict_whole(
    model_fn: ModelFn, images: torch.Tensor, pad_multiple: int = 1, *, probabilities: bool = False
) -> torch.Tensor:
    """Logits (or softmax probabilities) (B, C, H, W) of whole images.

    The batch is padded bottom/right with 0 (the dataset mean after normalisation) to multiples of ``pad_multiple``,
    the model's logits are resized to the padded size, and the top-left H x W is returned.
    """
    _check_images(images)
    if int(pad_multiple) < 1:
        raise ValueError(f"pad_multiple must be >= 1, got {pad_multiple}.")
    h, w = images.shape[-2:]
    m = int(pad_multiple)
    padded = _pad_bottom_right(images, math.ceil(h / m) * m, math.ceil(w / m) * m)
    out = _logits(model_fn, padded)[..., :h, :w]
    return out.softmax(1) if probabilities else out


def sliding_windows(height: int, width: int, window: int, stride: int) -> list[tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` of the windows covering a ``height`` x ``width`` image (at least ``window`` in both
    dimensions): one every ``stride`` pixels, the last one moved back to end exactly at the border."""
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(f"A sliding window needs window >= 1 and 1 <= stride <= window, got {window} / {stride}.")
    if height < window or width < window:
        raise ValueError(f"A {height} x {width} image is smaller than the {window} window: pad it first.")

    def starts(size: int) -> list[int]:
        count = math.ceil((size - window) / stride) + 1
        return [min(i * stride, size - window) for i in range(count)]

    return [(y, y + window, x, x + window) for y in starts(height) for x in starts(width)]


def predict_sliding(
    model_fn: ModelFn, images: torch.Tensor, window: int, stride: int, num_classes: int | None = None
) -> torch.Tensor:
    """Softmax probabilities (B, C, H, W) averaged over overlapping ``window`` x ``window`` crops taken every
    ``stride`` pixels (:func:`sliding_windows`). Images smaller than the window are padded bottom/right with 0 to it
    and the result cropped back. ``num_classes`` (if given) is checked against the model's output."""
    _check_images(images)
    h, w = images.shape[-2:]
    padded = _pad_bottom_right(images, max(h, window), max(w, window))
    boxes = sliding_windows(padded.shape[-2], padded.shape[-1], window, stride)
    total: torch.Tensor | None = None
    count = torch.zeros(padded.shape[-2:], dtype=torch.float32, device=images.device)
    for y0, y1, x0, x1 in boxes:
        probs = _logits(model_fn, padded[..., y0:y1, x0:x1]).softmax(1)
        if total is None:
            if num_classes is not None and probs.shape[1] != num_classes:
                raise ValueError(f"model_fn returned {probs.shape[1]} classes, expected {num_classes}.")
            total = probs.new_zeros((images.shape[0], probs.shape[1], *padded.shape[-2:]))
        total[..., y0:y1, x0:x1] += probs
        count[y0:y1, x0:x1] += 1
    assert total is not None  # at least one window
    return (total / count)[..., :h, :w]


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The size of an image resized by ``scale``: each side rounded half up, at least 1."""
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def _whole_probabilities(model_fn: ModelFn, images: torch.Tensor, pad_multiple: int = 1) -> torch.Tensor:
    return predict_whole(model_fn, images, pad_multiple, probabilities=True)


def predict_multiscale(
    model_fn: ModelFn,
    images: torch.Tensor,
    scales: Sequence[float] = MS_SCALES,
    flip: bool = True,
    base: ProbabilityFn | None = None,
    pad_multiple: int = 1,
) -> torch.Tensor:
    """Softmax probabilities (B, C, H, W) averaged over ``scales`` x {identity, horizontal flip} (only identity when
    ``flip`` is False). Each scaled image (bilinear, :func:`scaled_size`) goes through ``base(model_fn, images) ->
    probabilities`` (default: softmax of :func:`predict_whole` with ``pad_multiple``); flipped predictions are
    flipped back, and every map is resized bilinearly to the original size before averaging."""
    _check_images(images)
    if not scales or any(not float(s) > 0 for s in scales):
        raise ValueError(f"Scales must be a non-empty sequence of positive numbers, got {scales!r}.")
    if base is None:
        base = partial(_whole_probabilities, pad_multiple=pad_multiple)
    h, w = images.shape[-2:]
    total: torch.Tensor | None = None
    passes = 0
    for scale in scales:
        x = resize(images, scaled_size(h, w, float(scale)))
        for flipped in (False, True) if flip else (False,):
            probs = base(model_fn, x.flip(-1) if flipped else x)
            probs = resize(probs.float(), (h, w))
            probs = probs.flip(-1) if flipped else probs
            total = probs if total is None else total + probs
            passes += 1
    assert total is not None
    return total / passes


@dataclass(frozen=True)
class InferenceSpec:
    """How to predict a validation image (spec §3.4); see the module docstring. Bad values are a ConfigError.

    ``window`` / ``stride`` are used by ``mode="slide"`` and by ``mode="ms_flip"`` with ``base="slide"``;
    ``scales`` / ``flip`` by ``"ms_flip"``; ``pad_multiple`` by every whole-image pass.
    """

    mode: str = "whole"
    window: int = CITYSCAPES_WINDOW
    stride: int = CITYSCAPES_STRIDE
    scales: tuple[float, ...] = MS_SCALES
    flip: bool = True
    pad_multiple: int = 1
    base: str = "whole"

    def __post_init__(self) -> None:
        for name in ("window", "stride", "pad_multiple"):
            value = getattr(self, name)
            try:
                if isinstance(value, bool):
                    raise TypeError
                object.__setattr__(self, name, operator.index(value))
            except TypeError:
                raise ConfigError(f"Inference {name} must be an integer, got {value!r}.") from None
        try:
            object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        except (TypeError, ValueError):
            raise ConfigError(f"Inference scales must be a sequence of numbers, got {self.scales!r}.") from None
        if self.mode not in MODES:
            raise ConfigError(f"Unknown inference mode {self.mode!r}; choose one of {', '.join(MODES)}.")
        if self.base not in MS_BASES:
            raise ConfigError(f"Unknown multi-scale base {self.base!r}; choose one of {', '.join(MS_BASES)}.")
        if self.pad_multiple < 1:
            raise ConfigError(f"pad_multiple must be a positive integer, got {self.pad_multiple}.")
        if self.window < 1:
            raise ConfigError(f"The sliding window must be a positive integer, got {self.window}.")
        if not 1 <= self.stride <= self.window:
            raise ConfigError(f"The sliding stride must lie in [1, window={self.window}], got {self.stride}.")
        if not self.scales or any(not (math.isfinite(s) and s > 0) for s in self.scales):
            raise ConfigError(f"Inference scales must be positive numbers, got {self.scales!r}.")
        if not isinstance(self.flip, bool):
            raise ConfigError(f"flip must be a boolean, got {self.flip!r}.")

    def describe(self) -> str:
        """One line for logs and result tables."""
        pad = f", pad to x{self.pad_multiple}" if self.pad_multiple > 1 else ""
        slide = f"sliding {self.window} / stride {self.stride}"
        if self.mode == "whole":
            return f"whole image{pad}"
        if self.mode == "slide":
            return slide
        inner = slide if self.base == "slide" else f"whole image{pad}"
        scales = ", ".join(f"{s:g}" for s in self.scales)
        return f"multi-scale ({scales}){' + flip' if self.flip else ''} over {inner}"

    def _base(self) -> ProbabilityFn:
        if self.base == "slide":
            return partial(predict_sliding, window=self.window, stride=self.stride)
        return partial(_whole_probabilities, pad_multiple=self.pad_multiple)

    def predict(self, model_fn: ModelFn, images: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        """Class probabilities (B, C, H, W) of a normalised image batch, at ``size`` (default: the images' size).
        ``whole`` resizes its logits to ``size`` before the softmax, the other modes their averaged probabilities."""
        out_size = tuple(images.shape[-2:]) if size is None else (int(size[0]), int(size[1]))
        if self.mode == "whole":
            return resize(predict_whole(model_fn, images, self.pad_multiple), out_size).softmax(1)
        if self.mode == "slide":
            probs = predict_sliding(model_fn, images, self.window, self.stride)
        else:
            probs = predict_multiscale(model_fn, images, self.scales, self.flip, self._base())
        return resize(probs, out_size)


@torch.no_grad()
def evaluate_segmentation(
    model_fn: ModelFn,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    spec: InferenceSpec | None = None,
    device: torch.device | str = "cpu",
    class_names: Sequence[str] | None = None,
    *,
    ignore_index: int = IGNORE_INDEX,
    confusion: ConfusionMatrix | None = None,
) -> dict:
    """:func:`~mixlab.metrics.segmentation.segmentation_scores` of ``model_fn`` over ``batches`` of (normalised
    images (B, 3, H, W), masks (B, h, w) with class indices or ``ignore_index``).

    One confusion matrix is accumulated over all batches on ``device`` (pass ``confusion`` to keep it), the argmax
    taken at the masks' resolution, and the counts summed over DDP ranks (each rank evaluating its own shard) before
    the scores are computed; every rank returns the same scores. The ranks' shards must be disjoint and cover the set
    exactly once (:func:`mixlab.engine.distributed.shard_range`; a ``DistributedSampler`` pads with repeated images,
    which would be counted twice).
    """
    spec = spec or InferenceSpec()
    device = torch.device(device)
    if confusion is None:
        confusion = ConfusionMatrix(num_classes, ignore_index, device)
    elif confusion.num_classes != num_classes:
        raise ValueError(f"The confusion matrix has {confusion.num_classes} classes, expected {num_classes}.")
    for images, masks in batches:
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True)
        if masks.ndim == 4 and masks.shape[1] == 1:
            masks = masks[:, 0]
        if masks.ndim != 3 or masks.shape[0] != images.shape[0]:
            raise ValueError(f"Masks must be (B, h, w) for {images.shape[0]} images, got {tuple(masks.shape)}.")
        probs = spec.predict(model_fn, images, size=masks.shape[-2:])
        if probs.shape[1] != num_classes:
            raise ValueError(f"model_fn returned {probs.shape[1]} classes, expected {num_classes}.")
        confusion.update(probs.argmax(1), masks)
    confusion.all_reduce()
    return segmentation_scores(confusion.matrix, class_names)
