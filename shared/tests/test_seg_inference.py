"""Segmentation inference modes (spec guidedmix §3.4) and the validation loop (§4.5)."""

import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.metrics.segmentation import ConfusionMatrix
from mixlab.seg.inference import (
    InferenceSpec,
    evaluate_segmentation,
    predict_multiscale,
    predict_sliding,
    predict_whole,
    scaled_size,
    sliding_windows,
)
from torch import nn


def images(b=2, h=65, w=65, seed=0):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def pointwise(num_classes=4, seed=0):
    """A 1x1 convolution: translation-equivariant and pointwise, so crops, pads and windows cannot change it."""
    torch.manual_seed(seed)
    return nn.Conv2d(3, num_classes, 1).eval()


def conv3x3(num_classes=4, seed=0):
    """One zero-padded 3x3 convolution: its border sees zeros, exactly like a 0-padded image."""
    torch.manual_seed(seed)
    return nn.Conv2d(3, num_classes, 3, padding=1).eval()


class Stride32(nn.Module):
    """Logits at 1/32 of the input, refusing inputs that are not multiples of 32 (like smp's encoders)."""

    def __init__(self, num_classes=4):
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Conv2d(3, num_classes, 1)
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        assert x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0
        return self.head(F.avg_pool2d(x, 32))


@torch.no_grad()
def test_whole_pads_to_a_multiple_and_crops_back():
    x = images()
    model = pointwise()
    plain = predict_whole(model, x)
    assert plain.shape == (2, 4, 65, 65) and torch.equal(plain, model(x))
    assert torch.equal(predict_whole(model, x, pad_multiple=32), plain)  # equivariant model: padding is invisible
    strided = Stride32()
    out = predict_whole(strided, x, pad_multiple=32)
    assert strided.seen == [(96, 96)] and out.shape == (2, 4, 65, 65)
    expected = F.interpolate(strided.head(F.avg_pool2d(F.pad(x, (0, 31, 0, 31)), 32)), size=(96, 96), mode="bilinear")
    assert torch.equal(out, expected[..., :65, :65])
    probs = predict_whole(model, x, probabilities=True)
    assert torch.allclose(probs.sum(1), torch.ones(2, 65, 65))
    with pytest.raises(ValueError, match="float image batch"):
        predict_whole(model, x[0])
    with pytest.raises(ValueError, match="logits"):
        predict_whole(lambda t: t[:1], x)


def test_sliding_windows_cover_every_pixel_and_end_at_the_border():
    for h, w, window, stride in [(65, 65, 32, 20), (100, 37, 37, 12), (1024, 2048, 513, 342), (9, 9, 9, 1)]:
        boxes = sliding_windows(h, w, window, stride)
        count = torch.zeros(h, w)
        for y0, y1, x0, x1 in boxes:
            assert y1 - y0 == window and x1 - x0 == window and y0 >= 0 and x0 >= 0
            count[y0:y1, x0:x1] += 1
        assert int(count.min()) >= 1
        assert max(b[1] for b in boxes) == h and max(b[3] for b in boxes) == w
    assert len(sliding_windows(1024, 2048, 513, 342)) == 3 * 6  # Cityscapes option
    with pytest.raises(ValueError, match="stride <= window"):
        sliding_windows(65, 65, 32, 33)
    with pytest.raises(ValueError, match="pad it"):
        sliding_windows(20, 65, 32, 16)


@torch.no_grad()
def test_sliding_equals_whole_for_a_pointwise_model_for_any_window():
    x = images(h=37, w=53)
    model = pointwise()
    whole = predict_whole(model, x, probabilities=True)
    for window, stride in [(16, 5), (20, 20), (7, 1), (37, 30), (64, 64)]:
        out = predict_sliding(model, x, window, stride, num_classes=4)
        assert out.shape == whole.shape
        assert torch.allclose(out, whole, atol=1e-6), (window, stride)
    with pytest.raises(ValueError, match="expected 5"):
        predict_sliding(model, x, 16, 8, num_classes=5)


@torch.no_grad()
def test_sliding_with_one_window_equals_whole():
    x = images(h=40, w=56)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 5, 3, stride=2, padding=1)).eval()
    assert torch.allclose(  # window = image: one window, any model; logits at half resolution are resized
        predict_sliding(model, x[..., :40, :40], 40, 13), predict_whole(model, x[..., :40, :40], probabilities=True)
    )
    conv = conv3x3()  # window > image: padded with 0, which a zero-padded convolution cannot tell from its border
    assert torch.allclose(predict_sliding(conv, x, 64, 32), predict_whole(conv, x, probabilities=True), atol=1e-6)


@torch.no_grad()
def test_multiscale_single_scale_without_flip_is_softmax_of_whole():
    x = images()
    model = conv3x3()
    out = predict_multiscale(model, x, scales=(1.0,), flip=False)
    assert torch.equal(out, predict_whole(model, x).softmax(1))


@torch.no_grad()
def test_multiscale_resizes_each_scale_back_and_averages_probabilities():
    x = images(b=1)
    seen = []

    def model_fn(t):
        seen.append(tuple(t.shape[-2:]))
        return torch.zeros(t.shape[0], 3, t.shape[-2] // 2 + 1, t.shape[-1] // 2 + 1)

    out = predict_multiscale(model_fn, x, scales=(0.5, 1.25), flip=True)
    assert seen == [(33, 33), (33, 33), (81, 81), (81, 81)]
    assert scaled_size(65, 65, 0.5) == (33, 33) and scaled_size(1024, 2048, 0.75) == (768, 1536)
    assert out.shape == (1, 3, 65, 65) and torch.allclose(out, torch.full_like(out, 1 / 3))
    with pytest.raises(ValueError, match="positive"):
        predict_multiscale(model_fn, x, scales=())


@torch.no_grad()
def test_flip_averaging():
    x = images(b=1, h=24, w=30)
    # a flip-equivariant model (kernel symmetric left-right): flipping adds nothing
    symmetric = conv3x3()
    symmetric.weight.copy_((symmetric.weight + symmetric.weight.flip(-1)) / 2)
    plain = predict_multiscale(symmetric, x, scales=(1.0, 0.75), flip=False)
    assert torch.allclose(predict_multiscale(symmetric, x, scales=(1.0, 0.75), flip=True), plain, atol=1e-6)

    # a model that sees only positions: with the flipped pass flipped back, the average is mirror-symmetric
    def ramp(t):
        u = torch.linspace(-2, 2, t.shape[-1]).expand(t.shape[0], 1, t.shape[-2], -1)
        return torch.cat([u, -u, 0 * u], 1)

    p = predict_multiscale(ramp, x, scales=(1.0,), flip=False)
    both = predict_multiscale(ramp, x, scales=(1.0,), flip=True)
    assert torch.allclose(both, (p + p.flip(-1)) / 2) and torch.allclose(both, both.flip(-1))


def test_inference_spec_validation_and_description():
    for bad in [
        dict(mode="tta"),
        dict(mode="ms_flip", base="crop"),
        dict(window=0),
        dict(window=32, stride=33),
        dict(stride=0),
        dict(window=32.5),
        dict(pad_multiple=0),
        dict(pad_multiple=True),
        dict(scales=()),
        dict(scales=(1.0, -0.5)),
        dict(scales=(float("nan"),)),
        dict(flip="yes"),
    ]:
        with pytest.raises(ConfigError):
            InferenceSpec(**bad)
    assert InferenceSpec().describe() == "whole image"
    assert InferenceSpec(pad_multiple=32).describe() == "whole image, pad to x32"
    assert InferenceSpec(mode="slide").describe() == "sliding 513 / stride 342"
    ms = InferenceSpec(mode="ms_flip", base="slide", window=64, stride=48)
    assert ms.describe() == "multi-scale (0.5, 0.75, 1, 1.25, 1.5, 1.75) + flip over sliding 64 / stride 48"


@torch.no_grad()
def test_inference_spec_predicts_probabilities_at_the_requested_size():
    x = images(b=1, h=40, w=48)
    model = pointwise()
    whole = InferenceSpec(pad_multiple=16)
    assert torch.allclose(whole.predict(model, x), predict_whole(model, x, probabilities=True))
    big = whole.predict(model, x, size=(80, 96))  # logits resized before the softmax
    expected = F.interpolate(model(x), size=(80, 96), mode="bilinear").softmax(1)
    assert torch.allclose(big, expected, atol=1e-6)
    slide = InferenceSpec(mode="slide", window=24, stride=16)
    assert torch.allclose(slide.predict(model, x), predict_whole(model, x, probabilities=True), atol=1e-6)
    ms = InferenceSpec(mode="ms_flip", scales=(0.5, 1.0), base="slide", window=24, stride=16)
    reference = predict_multiscale(
        model, x, (0.5, 1.0), True, base=lambda fn, t: predict_sliding(fn, t, window=24, stride=16)
    )
    assert torch.allclose(ms.predict(model, x), reference)


def class_map_model(num_classes):
    """Predicts the class written in channel 0 of the image, whatever the size it is asked for."""

    def model_fn(t):
        return 10.0 * F.one_hot(t[:, 0].round().long(), num_classes).permute(0, 3, 1, 2).float()

    return model_fn


def test_evaluate_reproduces_a_known_confusion_matrix():
    gt = torch.tensor([[[0, 0, 1], [1, 255, 2]]], dtype=torch.uint8)
    pred = torch.tensor([[[0, 1, 1], [1, 2, 2]]])
    batches = [
        (pred[:, None, :1].float().expand(-1, 3, -1, -1), gt[:, :1]),  # the golden case in two batches
        (pred[:, None, 1:].float().expand(-1, 3, -1, -1), gt[:, 1:]),
    ]
    for spec in [InferenceSpec(), InferenceSpec(mode="slide", window=2, stride=1)]:
        confusion = ConfusionMatrix(4)
        scores = evaluate_segmentation(
            class_map_model(4), batches, 4, spec, class_names=list("abcd"), confusion=confusion
        )
        assert confusion.matrix.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
        assert round(scores["miou"], 2) == 72.22 and math.isnan(scores["iou_by_class"]["d"])


def test_evaluate_takes_the_argmax_at_the_mask_resolution():
    # constant predictions on 3x3 images, masks of 5x7: every mask pixel is counted
    x = torch.stack([torch.full((3, 3, 3), float(k)) for k in (0, 2)])
    masks = torch.zeros(2, 5, 7, dtype=torch.long)
    masks[1] = 2
    masks[1, 0, :3] = 1
    masks[0, -1, -1] = 255
    scores = evaluate_segmentation(class_map_model(3), [(x, masks)], 3, InferenceSpec(mode="ms_flip", scales=(1, 2)))
    assert scores["pixels"] == 2 * 35 - 1
    assert scores["per_class_iou"] == pytest.approx([100.0, 0.0, 100 * 32 / 35])
    with pytest.raises(ValueError, match="expected 4"):
        evaluate_segmentation(class_map_model(3), [(x, masks)], 4)
    with pytest.raises(ValueError, match="Masks"):
        evaluate_segmentation(class_map_model(3), [(x, masks[0])], 3)


@torch.no_grad()
def test_evaluate_scores_a_model_against_its_own_whole_predictions():
    x = images(b=3, h=33, w=45, seed=3)
    model = pointwise(5, seed=1)
    masks = model(x).argmax(1)
    masks[:, :4] = 255
    batches = list(zip(x.split(2), masks.split(2)))
    for spec in [InferenceSpec(pad_multiple=8), InferenceSpec(mode="slide", window=16, stride=10)]:
        scores = evaluate_segmentation(model, batches, 5, spec)
        assert scores["miou"] == pytest.approx(100.0) and scores["pixels"] == 3 * 29 * 45
