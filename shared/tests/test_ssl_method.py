"""The step-based SSL method: streams, split data, the four base algorithms' steps, decay, EMA, BN handling."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mixlab.engine import RunOptions, Trainer, TrainProgress
from mixlab.errors import ConfigError
from mixlab.ssl import InfiniteIndexStream, SSLConfig, SSLMethod, algorithm_for, build_ssl_data, with_variant
from mixlab.testing import build_on_cpu

TINY = SSLConfig(
    dataset="digits",
    model="wrnmm10-1",
    num_labeled=50,
    batch_size=8,
    steps=4,
    eval_every=2,
    report_last=2,
    rampup_steps=4,
    crop_padding=2,
    hflip=False,
)


def built(config: SSLConfig) -> SSLMethod:
    return build_on_cpu(algorithm_for(config)(config))


def progress(step: int, config: SSLConfig) -> TrainProgress:
    return TrainProgress(step, 0, 1, config.steps, config.steps)


def test_index_stream_is_a_function_of_the_step_and_ranks_split_the_global_batch():
    a = InfiniteIndexStream(10, 4, seed=3)
    first_pass = torch.cat([a.batch(0), a.batch(1), a.batch(2)])[:10]
    assert sorted(first_pass.tolist()) == list(range(10))  # one permutation per pass
    assert torch.equal(InfiniteIndexStream(10, 4, seed=3).batch(7), a.batch(7))  # no state: resume-safe
    assert not torch.equal(InfiniteIndexStream(10, 4, seed=4).batch(0), a.batch(0))
    ranks = [InfiniteIndexStream(10, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    assert torch.equal(torch.cat([r.batch(1) for r in ranks]), a.batch(1))
    small = InfiniteIndexStream(3, 8, seed=0)  # a batch larger than the set spans several passes
    assert torch.bincount(small.batch(0), minlength=3).tolist() in ([3, 3, 2], [3, 2, 3], [2, 3, 3])


def test_with_variant_keeps_data_and_budget_and_takes_the_algorithms_hyperparameters():
    base = dataclasses.replace(TINY, lambda_u=250.0, num_labeled=60, steps=1000, eval_every=100)
    fix = with_variant(base, "fixmatch")
    assert (fix.optimizer, fix.lr, fix.unlabeled_ratio, fix.threshold, fix.lr_schedule) == (
        "sgd",
        0.03,
        7,
        0.95,
        "cosine",
    )
    assert (fix.num_labeled, fix.steps, fix.dataset, fix.model) == (60, 1000, "digits", "wrnmm10-1")
    assert fix.lambda_u == 1.0 and fix.unlabeled_includes_labeled
    mt = with_variant(base, "mean-teacher")
    assert mt.lambda_u == 50.0 and mt.rampup_steps == 400  # ramp over the first 40% of training
    assert with_variant(base, "mixmatch").lambda_u == 75.0  # back to MixMatch's CIFAR-10 default
    with pytest.raises(ConfigError):
        with_variant(base, "pi-model")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(variant="vat"), "variant"),
        (dict(steps=None, epochs=None), "give the budget"),
        (dict(temperature=0.0), "temperature"),
        (dict(mismatch=120.0), "percentage"),
    ],
)
def test_config_refuses_impossible_values(change, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TINY, **change).validate()


def test_split_is_class_balanced_disjoint_and_auditable():
    data = build_ssl_data(TINY)
    labeled, unlabeled = set(data.split.labeled.tolist()), set(data.split.unlabeled.tolist())
    assert len(labeled) == 50 and not labeled & unlabeled and len(labeled | unlabeled) == 1437
    assert torch.bincount(data.labeled.targets, minlength=10).tolist() == [5] * 10
    record = data.split_dict()
    assert record["num_unlabeled_total"] == 1387 and record["eval_classes"] is None and record["num_eval"] == 360
    mismatch = build_ssl_data(
        dataclasses.replace(TINY, num_labeled=60, labeled_classes=(2, 3, 4, 5, 6, 7), mismatch=50.0)
    )
    assert sorted(set(mismatch.labeled.targets.tolist())) == [2, 3, 4, 5, 6, 7]
    ood = ~torch.isin(mismatch.unlabeled_targets, torch.tensor([2, 3, 4, 5, 6, 7]))
    assert sorted(set(mismatch.unlabeled_targets.tolist())) == [0, 1, 6, 7]
    assert abs(ood.float().mean().item() - 0.5) < 0.02  # 2 of the 4 unlabeled classes are out of distribution
    assert set(mismatch.evaluation.targets.tolist()) == {2, 3, 4, 5, 6, 7}  # scored on the labeled classes


def test_impossible_label_counts_are_one_paragraph_config_errors():
    with pytest.raises(ConfigError, match="cannot be split evenly"):
        build_ssl_data(dataclasses.replace(TINY, num_labeled=55))
    with pytest.raises(ConfigError, match="fewer than"):
        build_ssl_data(dataclasses.replace(TINY, num_labeled=1500))


def test_decoupled_weight_decay_and_ema_after_a_step():
    cfg = dataclasses.replace(TINY, ema_decay=0.999)
    method = built(cfg)
    kernel_name = next(n for n, p in method.model.named_parameters() if p.ndim > 1)
    bias_name = next(n for n, p in method.model.named_parameters() if p.ndim == 1)
    params = dict(method.model.named_parameters())
    ema0 = {k: v.clone() for k, v in method.ema.module.state_dict().items()}
    with torch.no_grad():
        params[kernel_name].add_(1.0)  # pretend the optimizer moved the weights
    theta1 = {k: v.detach().clone() for k, v in params.items()}
    method.after_step(progress(1, cfg))
    factor = 1 - 0.02 * 0.002  # wd x lr of the MixMatch code
    assert torch.allclose(params[kernel_name], theta1[kernel_name] * factor, rtol=0, atol=1e-7)
    assert torch.equal(params[bias_name], theta1[bias_name])  # biases and BN are not decayed
    ema_kernel = method.ema.module.state_dict()[kernel_name]
    expected = 0.999 * ema0[kernel_name] + 0.001 * theta1[kernel_name] * factor
    assert torch.allclose(ema_kernel, expected, atol=1e-6)


def _bn_updates(method: SSLMethod) -> int:
    bn = next(m for m in method.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    return int(bn.num_batches_tracked)


@pytest.mark.parametrize(
    "bn_mode, guess_updates_bn, expected", [("interleave", False, 1), ("concat", False, 1), ("interleave", True, 3)]
)
def test_mixmatch_step_updates_batchnorm_only_from_the_first_training_pass(bn_mode, guess_updates_bn, expected):
    cfg = dataclasses.replace(TINY, bn_mode=bn_mode, guess_updates_bn=guess_updates_bn)
    method = built(cfg)
    out = method.train_step(0, progress(0, cfg))
    assert torch.isfinite(out.loss) and out.num_images == 8 + 2 * 8
    assert _bn_updates(method) == expected
    out.loss.backward()
    assert all(p.grad is not None for p in method.model.parameters())


def test_interleaving_changes_only_batchnorm_statistics_not_the_loss_definition():
    """With BN in eval mode (fixed statistics), interleaved and concatenated forwards give the same logits."""
    cfg = dataclasses.replace(TINY, bn_mode="interleave")
    method = built(cfg)
    method.model.eval()
    x = torch.randn(24, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(method.mixed_forward(x, 8), method.model(x), atol=1e-5)


@pytest.mark.parametrize("variant", ["supervised", "mean-teacher", "fixmatch"])
def test_base_algorithms_take_a_finite_step_with_their_logs(variant):
    cfg = with_variant(dataclasses.replace(TINY, randaugment_ops=1, steps=100, eval_every=50), variant)
    method = built(dataclasses.replace(cfg, unlabeled_ratio=2 if variant == "fixmatch" else 1))
    out = method.train_step(3, progress(3, method.config))
    assert torch.isfinite(out.loss)
    expected_logs = {
        "supervised": {"loss_x"},
        "mean-teacher": {"loss_x", "loss_u", "w_u"},
        "fixmatch": {"loss_x", "loss_u", "mask"},
    }[variant]
    assert set(out.logs) == expected_logs
    if variant == "mean-teacher":
        assert float(out.logs["w_u"]) == pytest.approx(50.0 * 3 / 40)  # linear over 40% of 100 steps


def test_the_engine_runs_an_ssl_method_and_reports_the_median_of_the_last_evaluations(tmp_path):
    cfg = dataclasses.replace(TINY, steps=4, eval_every=2, report_last=2)
    summary = Trainer(
        algorithm_for(cfg)(cfg),
        RunOptions(package="ssl", dataset="digits", device="cpu", progress=False, out=tmp_path / "run"),
    ).fit()
    assert summary["status"] == "completed" and summary["steps"] == 4
    final = summary["final"]
    assert final["error"] == pytest.approx(100 - final["top1"])
    assert final["evaluations_in_median"] == 2
    assert (tmp_path / "run" / "split.json").is_file()
