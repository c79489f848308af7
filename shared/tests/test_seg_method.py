"""The semi-supervised segmentation loop's pieces (spec guidedmix §8 items 10, 14): cross-entropy with the ignore
index, the poly schedule with the encoder / new-module learning rates, the labels field, the supervised step."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from mixlab.engine import TrainProgress, poly_factor
from mixlab.errors import ConfigError
from mixlab.seg.config import SegSSLConfig
from mixlab.seg.method import SegSSLMethod, cross_entropy, parse_labels
from mixlab.testing import build_on_cpu, torch_threads


def test_cross_entropy_ignores_255_and_is_zero_when_nothing_is_labeled():
    logits = torch.randn(2, 4, 3, 3)
    masks = torch.randint(0, 4, (2, 3, 3))
    base = cross_entropy(logits, masks)
    assert torch.isclose(base, torch.nn.functional.cross_entropy(logits, masks))
    padded_logits = torch.cat([logits, torch.randn(2, 4, 3, 2) * 50], dim=3)
    padded_masks = torch.cat([masks, torch.full((2, 3, 2), 255)], dim=2)
    assert torch.isclose(cross_entropy(padded_logits, padded_masks), base)
    empty = cross_entropy(logits, torch.full((2, 3, 3), 255))
    assert float(empty) == 0.0 and not torch.isnan(empty)


def test_poly_schedule_values():
    total = 1000
    assert poly_factor(0, total=total, power=0.9) == 1.0
    assert math.isclose(poly_factor(500, total=total, power=0.9), 0.5**0.9, rel_tol=1e-12)
    assert math.isclose(0.5**0.9, 0.5359, abs_tol=1e-4)
    assert poly_factor(total, total=total, power=0.9) == 0.0
    assert poly_factor(0, total=total, power=0.9, warmup=10) == 0.1  # linear warm-up, then the poly decay
    assert math.isclose(poly_factor(20, total=total, power=0.9, warmup=10), (1 - 20 / total) ** 0.9)


def test_labels_field_forms():
    assert parse_labels("1464") == {"n_labeled": 1464}
    assert parse_labels("1/8") == {"fraction": Fraction(1, 8)}
    assert parse_labels("voc-aug-1464") == {"setting": "voc-aug-1464"}
    with pytest.raises(ConfigError):
        parse_labels("3/2")


TINY = SegSSLConfig(labels="20", batch_size=2, crop_size=32, steps=10, eval_every=5, max_eval_images=8, workers=0)


def test_new_modules_get_head_lr_mult_times_the_encoder_lr_at_every_step():
    with torch_threads(1):
        method = build_on_cpu(SegSSLMethod(TINY))
    groups = {g["name"]: g for g in method.optimizer.param_groups}
    assert groups["encoder"]["lr"] == TINY.lr and groups["new"]["lr"] == TINY.lr * TINY.head_lr_mult
    encoder_ids = {id(p) for p in method.model.encoder.parameters()}
    assert {id(p) for p in groups["encoder"]["params"]} == encoder_ids
    assert len(groups["encoder"]["params"]) + len(groups["new"]["params"]) == len(list(method.model.parameters()))
    for step in range(5):
        method.optimizer.step()
        method.scheduler.step()
        ratio = groups["new"]["lr"] / groups["encoder"]["lr"]
        assert math.isclose(ratio, TINY.head_lr_mult)
        assert math.isclose(groups["encoder"]["lr"], TINY.lr * (1 - (step + 1) / TINY.steps) ** 0.9)


def test_supervised_step_and_split_files():
    with torch_threads(1):
        method = build_on_cpu(SegSSLMethod(TINY))
        batch = next(method.train_batches(0, 0))
        out = method.train_step(batch, TrainProgress(0, 0, 1, method.steps_per_epoch, method.total_steps))
    step, (images, masks, valid), unlabeled = batch
    assert step == 0 and unlabeled is None and images.shape == (2, 3, 32, 32) and masks.dtype == torch.int64
    assert torch.isfinite(out.loss) and set(out.logs) == {"ce"}
    files = method.run_files()
    labeled, rest = files["labeled.txt"].split(), files["unlabeled.txt"].split()
    assert len(labeled) == 20 and len(labeled) + len(rest) == 2000 and not set(labeled) & set(rest)


def test_batch_larger_than_the_labeled_set_is_a_config_error():
    with pytest.raises(ConfigError, match="labeled batch is larger"), torch_threads(1):
        build_on_cpu(SegSSLMethod(SegSSLConfig(labels="2", batch_size=4, crop_size=32, workers=0)))


def test_scene_size_reaches_the_built_in_scenes():
    import dataclasses

    with torch_threads(1):
        method = build_on_cpu(SegSSLMethod(dataclasses.replace(TINY, scene_size=32)))
    assert method.dataset_options() == {"size": 32}
    assert method.labeled.tensors[0].shape[-2:] == (32, 32) and method.val.tensors[1].shape[-2:] == (32, 32)
