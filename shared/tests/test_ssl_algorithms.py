"""The SSL algorithms as classes: registry, hook points, Mean Teacher's dual head, the EMA warm-up, cosine horizon."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.engine import TrainProgress, cosine_horizon_factor
from mixlab.models import create_model
from mixlab.ssl import (
    ALGORITHMS,
    DualHead,
    FixMatch,
    MeanTeacher,
    MixMatch,
    SSLConfig,
    Supervised,
    algorithm_for,
    mean_teacher_decay,
    with_variant,
)
from mixlab.ssl.mixup import MixUpResult
from mixlab.testing import build_on_cpu, torch_threads

TINY = SSLConfig(
    dataset="digits", model="wrnmm10-1", num_labeled=50, batch_size=8, steps=40, eval_every=20, rampup_steps=4,
    crop_padding=2, hflip=False, randaugment_ops=1,
)  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def built(cls, config: SSLConfig):
    return build_on_cpu(cls(config))


def progress(step: int, config: SSLConfig) -> TrainProgress:
    return TrainProgress(step, 0, 1, config.steps, config.steps)


def test_registry_picks_the_class_of_the_variant():
    assert ALGORITHMS == {"supervised": Supervised, "mean-teacher": MeanTeacher, "mixmatch": MixMatch,
                          "fixmatch": FixMatch}  # fmt: skip
    assert algorithm_for(with_variant(TINY, "fixmatch")) is FixMatch
    assert with_variant(TINY, "fixmatch").unlabeled_ratio == FixMatch.defaults["unlabeled_ratio"] == 7


def test_an_epoch_is_one_pass_over_the_unlabeled_set():
    method = built(MixMatch, TINY)
    assert method.steps_per_epoch == math.ceil(1387 / 8)  # 1,437 digits - 50 labeled, 8 unlabeled per step
    assert (method.total_steps, method.eval_every) == (40, 20)


class IdentityMix(MixMatch):
    """A MixMatch whose mixing operation is replaced (as SAMOSA-MixMatch does on some batches) and which adds a
    loss term (as SAMOSA / SciMix do)."""

    mixed_rows: torch.Tensor | None = None

    def mix(self, rows, targets, progress):
        self.mixed_rows = rows
        return MixUpResult(rows, targets, torch.ones(len(rows)), torch.arange(len(rows)))

    def extra_losses(self, ctx):
        assert ctx.inputs is self.mixed_rows and ctx.num_labeled == 8 and ctx.targets.shape == (24, 10)
        return {"loss_extra": 0.5 * ctx.logits.float().square().mean()}


def test_mixmatch_hooks_replace_the_mixing_and_add_a_loss_term():
    method = built(IdentityMix, TINY)
    torch.manual_seed(3)
    out = method.train_step(2, progress(2, TINY))
    assert set(out.logs) >= {"loss_x", "loss_u", "w_u", "loss_extra"}
    base = out.logs["loss_x"] + method.unlabeled_weight(2) * out.logs["loss_u"]
    assert torch.allclose(out.loss.detach(), base + out.logs["loss_extra"], atol=1e-6)
    # unmixed rows: the first 8 are the labeled view itself (weakly augmented labeled images)
    assert method.mixed_rows.shape == (24, 3, 32, 32)


class HybridStrong(FixMatch):
    seen: dict = {}

    def strong_view(self, strong, weak, weak_logits, progress):
        self.seen = {"strong": strong.shape, "weak": weak.shape, "logits": weak_logits.shape}
        return torch.zeros_like(strong)  # a perturbation another method would make


def test_fixmatch_strong_view_hook_sees_the_weak_predictions_and_its_views_are_used():
    config = dataclasses.replace(with_variant(TINY, "fixmatch"), unlabeled_ratio=2)
    method = built(HybridStrong, config)
    torch.manual_seed(4)
    out = method.train_step(1, progress(1, config))
    assert method.seen == {"strong": (16, 3, 32, 32), "weak": (16, 3, 32, 32), "logits": (16, 10)}
    assert torch.isfinite(out.loss) and out.num_images == 8 + 2 * 16
    out.loss.backward()
    assert all(p.grad is not None for p in method.model.parameters())


class LabeledPool(Supervised):
    def labeled_views(self, step, n=1):
        views, targets = super().labeled_views(step, n)
        return [torch.cat([v, v.flip(-1)]) for v in views], torch.cat([targets, targets])  # a pool twice as large


def test_the_labeled_pool_hook_changes_what_the_supervised_loss_sees():
    method = built(LabeledPool, with_variant(TINY, "supervised"))
    out = method.train_step(0, progress(0, TINY))
    assert out.num_images == 16


def test_dual_head_network_gives_primary_and_stability_logits():
    backbone = create_model("wrnmm10-1", num_classes=10)
    net = DualHead(backbone)
    out = net(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 2, 10)
    features = backbone.pool(backbone.forward_features(backbone.stem(torch.randn(1, 3, 32, 32))))
    assert net.stability_head.weight.shape == backbone.head.weight.shape == (10, features.shape[1])
    assert not torch.equal(net.stability_head.weight, backbone.head.weight)  # two distinct heads


def test_dual_head_mean_teacher_loss_follows_spec_1_4():
    config = dataclasses.replace(
        with_variant(TINY, "mean-teacher"), dual_head=True, logit_distance_weight=0.01, label_smoothing=0.0
    )
    method = built(MeanTeacher, config)
    y_pred = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.0]], requires_grad=True)
    y_cons = y_pred.detach().clone().requires_grad_(True)
    teacher = y_pred.detach().clone()
    logits = torch.stack([y_pred, y_cons], dim=1)
    targets = torch.tensor([0])  # one labeled row among N = 4
    loss, logs = method.dual_head_loss(logits, teacher, targets, 4, weight=300.0)
    # equal heads and teacher: no consistency, no logit distance; CE summed over labeled rows / N
    assert float(logs["loss_u"]) == 0.0 and float(logs["loss_logit"]) == 0.0
    expected = F.cross_entropy(y_pred[:1], targets, reduction="sum") / 4
    assert torch.allclose(loss, expected)
    moved = torch.stack([y_pred, y_cons + 1.0], dim=1)  # shift the stability head by 1 on every logit
    loss2, logs2 = method.dual_head_loss(moved, teacher, targets, 4, weight=300.0)
    assert float(logs2["loss_logit"]) == pytest.approx(1.0)  # ||y_pred - y_cons||^2 / K = 2 / 2, mean over rows
    assert float(logs2["loss_u"]) == pytest.approx(0.0, abs=1e-7)  # softmax is shift-invariant
    loss2.backward()
    assert y_pred.grad.abs().sum() > 0 and y_cons.grad.abs().sum() > 0  # the logit term reaches both heads


def test_dual_head_mean_teacher_step_runs_with_teacher_views_of_every_row():
    config = dataclasses.replace(with_variant(TINY, "mean-teacher"), dual_head=True, ema_warmup=True, ema_decay=0.97)
    method = built(MeanTeacher, config)
    out = method.train_step(0, progress(0, config))
    assert set(out.logs) == {"loss_x", "loss_u", "loss_logit", "w_u"} and out.num_images == 16
    out.loss.backward()
    assert method.model.stability_head.weight.grad is not None
    logits, _ = method.predict(method.ema.module)
    assert logits.shape == (360, 10)  # evaluation scores the primary head


def test_the_first_mean_teacher_update_averages_half_and_half():
    """The Mean Teacher code increments global_step before its first update: alpha = 1 - 1/(1+1) = 0.5."""
    config = dataclasses.replace(
        with_variant(TINY, "mean-teacher"), ema_warmup=True, ema_decay=0.97, ema_buffers="average"
    )
    method = built(MeanTeacher, config)
    before = [p.detach().clone() for p in method.ema.module.parameters()]
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(1.0)
    method.after_step(progress(1, config))  # after the first optimizer step
    kernel_decay = 1 - config.weight_decay * config.lr  # decoupled decay of the kernels first
    for (name, p), ema, b in zip(method.model.named_parameters(), method.ema.module.parameters(), before):
        assert torch.allclose(ema, 0.5 * b + 0.5 * p, atol=1e-6), name
    assert mean_teacher_decay(1, 0.97) == 0.5 and mean_teacher_decay(1000, 0.97) == 0.97
    assert kernel_decay < 1


def test_cosine_with_horizon_and_restarts():
    # E = 300 epochs with "fully decreasing over 350": lr(300) = 0.5 (1 + cos(pi 300/350)) = 0.0495 base
    assert cosine_horizon_factor(300, cycle_steps=300, horizon=350 / 300) == pytest.approx(1.0, abs=0)  # restart
    assert cosine_horizon_factor(299, cycle_steps=300, horizon=350 / 300) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 299 / 350))
    )
    assert 0.5 * (1 + math.cos(math.pi * 300 / 350)) == pytest.approx(0.0495, abs=1e-4)
    assert cosine_horizon_factor(0, cycle_steps=300, horizon=1.0) == 1.0
    config = dataclasses.replace(TINY, optimizer="sgd", lr=0.2, lr_schedule="cosine_horizon", lr_horizon=1.5,
                                 lr_cycles=2, steps=40)  # fmt: skip
    method = built(MixMatch, config)
    lrs = []
    for _ in range(40):
        lrs.append(method.optimizer.param_groups[0]["lr"])
        method.optimizer.step()
        method.scheduler.step()
    assert lrs[0] == lrs[20] == pytest.approx(0.2)  # the second cycle restarts the schedule
    assert lrs[19] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 19 / 30)))


def test_gradient_clipping_reaches_the_engine():
    method = built(MixMatch, dataclasses.replace(TINY, clip_grad_norm=1.0))
    assert method.optimizers()["main"].clip_grad_norm == 1.0
