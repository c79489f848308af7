"""mixlab.ssl building blocks against spec realmix §10 (items 1-13, 27-32) and samosa-scimix §1.4-1.6."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from mixlab.errors import ConfigError
from mixlab.ssl import (
    ModelEMA,
    biased_mixup,
    bn_stats_frozen,
    cosine_rampdown,
    fixmatch_unlabeled_loss,
    guess_labels,
    interleave,
    interleave_offsets,
    linear_ramp,
    logit_distance,
    mean_teacher_decay,
    probability_mse,
    sharpen,
    sigmoid_ramp,
    softmax_mse,
)
from scipy import stats
from torch import nn


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
        nn.BatchNorm1d(5),
    )


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


# -- sharpen (items 1-4) --------------------------------------------------------------------------------------
def test_sharpen_reference_value_item_2():
    out = sharpen(torch.tensor([[0.6, 0.4]]), 0.5)
    assert torch.allclose(out, torch.tensor([[0.692308, 0.307692]]), atol=1e-6)


def test_sharpen_rows_sum_to_one_keep_argmax_and_lose_entropy_item_1_4():
    p = torch.softmax(torch.randn(64, 10, generator=_gen(1)) * 2, dim=-1)
    out = sharpen(p, 0.5)
    assert torch.allclose(out.sum(-1), torch.ones(64), atol=1e-6)
    assert torch.equal(out.argmax(-1), p.argmax(-1))
    assert (_entropy(out) <= _entropy(p) + 1e-6).all()
    assert (_entropy(out) < _entropy(p) - 1e-3).all()  # strictly sharper on non-uniform rows
    # Hand formula p^2 / sum p^2 for T = 0.5.
    assert torch.allclose(out, p.square() / p.square().sum(-1, keepdim=True), atol=1e-6)


def test_sharpen_identity_at_t1_and_uniform_stays_uniform_items_3_4():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    assert torch.equal(sharpen(p, 1.0), p)
    uniform = torch.full((3, 7), 1 / 7)
    assert torch.allclose(sharpen(uniform, 0.5), uniform, atol=1e-7)
    assert torch.allclose(sharpen(uniform, 0.05), uniform, atol=1e-7)


def test_sharpen_small_temperature_does_not_underflow():
    # 0.6^1000 underflows float32 to 0; the row must still come out as a valid one-hot, not NaN.
    out = sharpen(torch.tensor([[0.6, 0.4]]), 0.001)
    assert torch.equal(out, torch.tensor([[1.0, 0.0]]))
    with pytest.raises(ConfigError):
        sharpen(torch.tensor([[0.6, 0.4]]), 0.0)


# -- label guessing (items 5-7) -------------------------------------------------------------------------------
def test_guess_is_sharpened_mean_of_softmaxes_and_detached_items_5_6():
    logits = [torch.randn(8, 4, generator=_gen(s)) for s in (2, 3)]
    weight = torch.ones((), requires_grad=True)  # the "model" has a trainable parameter

    def forward(view: torch.Tensor) -> torch.Tensor:
        return view * weight

    guess = guess_labels(forward, logits, 0.5)
    mean = (torch.softmax(logits[0], -1) + torch.softmax(logits[1], -1)) / 2
    expected = mean.square() / mean.square().sum(-1, keepdim=True)
    assert torch.allclose(guess, expected, atol=1e-6)
    assert guess.shape == (8, 4) and guess.dtype == torch.float32
    assert not guess.requires_grad and guess.grad_fn is None
    # One forward per view (BN must see batches of B): a three-view guess calls forward three times on B rows.
    seen: list[int] = []
    guess_labels(lambda v: seen.append(v.shape[0]) or v, logits + [logits[0]], 0.5)
    assert seen == [8, 8, 8]
    with pytest.raises(ConfigError):
        guess_labels(forward, [], 0.5)


def test_guess_under_bn_stats_frozen_leaves_running_stats_bit_identical_item_7():
    model = _bn_net().train()
    views = [torch.randn(6, 3, 4, 4, generator=_gen(s)) for s in (4, 5)]
    model(torch.randn(6, 3, 4, 4, generator=_gen(6)))  # non-trivial running stats before the guess
    before = _buffers(model)
    reference = copy.deepcopy(model)
    with bn_stats_frozen(model):
        guess = guess_labels(model, views, 0.5)
    after = _buffers(model)
    assert before.keys() == after.keys() and any("num_batches_tracked" in k for k in after)
    assert all(torch.equal(before[k], after[k]) for k in before)
    # It still normalised with the batch statistics (train-mode BN), exactly like an unfrozen forward.
    with torch.no_grad():
        mean = sum(torch.softmax(reference(v), -1) for v in views) / 2
    assert torch.allclose(guess, sharpen(mean, 0.5), atol=1e-6)
    # Without the context manager the same pass moves every statistic.
    guess_labels(model, views, 0.5)
    changed = _buffers(model)
    assert all(not torch.equal(before[k], changed[k]) for k in before)


def test_bn_stats_frozen_keeps_eval_mode_and_restores_flags_after_an_exception():
    model = _bn_net()
    model(torch.randn(6, 3, 4, 4, generator=_gen(7)))
    model.eval()
    untracked = nn.BatchNorm1d(5, track_running_stats=False)
    sync = nn.SyncBatchNorm(4)
    holder = nn.ModuleList([model, untracked, sync])
    x = torch.randn(3, 3, 4, 4, generator=_gen(8))
    with torch.no_grad():
        expected = model(x)
        with bn_stats_frozen(holder):
            assert not sync.track_running_stats and not model[1].track_running_stats
            assert torch.equal(model(x), expected)  # eval mode still uses the running statistics
    with pytest.raises(RuntimeError, match="boom"), bn_stats_frozen(holder):
        raise RuntimeError("boom")
    assert model[1].track_running_stats and model[5].track_running_stats and sync.track_running_stats
    assert untracked.track_running_stats is False
    with bn_stats_frozen(holder), bn_stats_frozen(holder):  # nesting restores the outer state
        pass
    assert model[1].track_running_stats and sync.track_running_stats


# -- biased MixUp (items 8-13) --------------------------------------------------------------------------------
def test_biased_mixup_formula_and_invariants_items_8_to_13():
    B = 16
    x = torch.randn(3 * B, 3, 8, 8, generator=_gen(9))
    y = torch.softmax(torch.randn(3 * B, 10, generator=_gen(10)), -1)
    out = biased_mixup(x, y, 0.75, generator=_gen(11))
    lam, perm = out.lam, out.perm
    assert lam.shape == (3 * B,) and (lam >= 0.5).all() and (lam <= 1).all()
    assert torch.equal(torch.sort(perm).values, torch.arange(3 * B))
    lx = lam.view(-1, 1, 1, 1)
    assert torch.equal(out.x, lx * x + (1 - lx) * x[perm])
    ly = lam.view(-1, 1)
    assert torch.equal(out.y, ly * y + (1 - ly) * y[perm])
    assert torch.allclose(out.y.sum(-1), torch.ones(3 * B), atol=1e-6)
    assert lam.unique().numel() > 1  # drawn per sample
    x_l, x_u = out.x.split([B, 2 * B])
    assert x_l.shape[0] == B and x_u.shape[0] == 2 * B
    # Seeded: same generator seed, same draw; the global RNG is not touched when a generator is given.
    state = torch.get_rng_state()
    again = biased_mixup(x, y, 0.75, generator=_gen(11))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(again.x, out.x) and torch.equal(again.perm, perm)


def test_biased_mixup_lambda_is_max_of_a_beta_draw():
    lam = biased_mixup(torch.zeros(20000, 1), torch.zeros(20000, 2), 0.75, generator=_gen(0)).lam.double()
    # max(l, 1 - l) of a symmetric Beta has CDF 2 F(t) - 1 on [0.5, 1].
    result = stats.kstest(lam.numpy(), lambda t: 2 * stats.beta.cdf(t, 0.75, 0.75) - 1)
    assert result.pvalue > 1e-3
    wrong = stats.kstest(lam.numpy(), lambda t: 2 * stats.beta.cdf(t, 2.0, 2.0) - 1)
    assert wrong.pvalue < 1e-6  # the test can tell alpha apart


def test_biased_mixup_batch_lambda_tiny_and_zero_alpha_item_12():
    x = torch.randn(12, 5, generator=_gen(13))
    y = F.one_hot(torch.arange(12) % 3, 3).float()
    shared = biased_mixup(x, y, 0.75, per_sample=False, generator=_gen(14)).lam
    assert shared.unique().numel() == 1 and shared[0] >= 0.5
    tiny = biased_mixup(x, y, 1e-4, generator=_gen(15))
    assert (tiny.lam > 0.999).all() and torch.allclose(tiny.x, x, atol=1e-2)
    off = biased_mixup(x, y, 0.0, generator=_gen(16))
    assert torch.equal(off.lam, torch.ones(12)) and torch.equal(off.x, x) and torch.equal(off.y, y)
    with pytest.raises(ConfigError):
        biased_mixup(x.to(torch.uint8), y, 0.75)
    with pytest.raises(ConfigError):
        biased_mixup(x, y[:5], 0.75)


# -- interleave (spec §3.6) -----------------------------------------------------------------------------------
def test_interleave_offsets_follow_the_official_code():
    assert interleave_offsets(64, 3) == [0, 21, 42, 64]
    assert interleave_offsets(65, 3) == [0, 21, 43, 65]
    assert interleave_offsets(10, 4) == [0, 2, 4, 7, 10]
    assert interleave_offsets(64, 1) == [0, 64]
    with pytest.raises(ConfigError):
        interleave_offsets(64, 0)


def test_interleave_swaps_chunks_and_is_an_involution():
    xs = [torch.full((64, 2), float(i)) + torch.arange(64.0)[:, None] / 100 for i in range(3)]
    out = interleave(xs, 64)
    assert [o.shape for o in out] == [(64, 2)] * 3
    assert torch.equal(out[0][:21], xs[0][:21])
    assert torch.equal(out[0][21:42], xs[1][21:42]) and torch.equal(out[1][21:42], xs[0][21:42])
    assert torch.equal(out[0][42:], xs[2][42:]) and torch.equal(out[2][42:], xs[0][42:])
    assert torch.equal(out[1][:21], xs[1][:21]) and torch.equal(out[2][:42], xs[2][:42])
    assert set(out[0][:, 0].floor().tolist()) == {0.0, 1.0, 2.0}  # the first forward sees every batch
    back = interleave(out, 64)
    assert all(torch.equal(a, b) for a, b in zip(back, xs, strict=True))
    with pytest.raises(ConfigError):
        interleave([xs[0], xs[1][:10]], 64)


# -- EMA (items 31-32, samosa §1.4) ---------------------------------------------------------------------------
def _perturb(model: nn.Module, seed: int) -> None:
    g = _gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))


def test_ema_one_update_is_the_convex_combination_item_31():
    model = _bn_net()
    ema = ModelEMA(model, 0.999)
    theta0 = [p.detach().clone() for p in model.parameters()]
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in model.parameters())
    _perturb(model, 17)
    ema.update(model)
    for e, t0, t1 in zip(ema.module.parameters(), theta0, model.parameters(), strict=True):
        assert torch.allclose(e, 0.999 * t0 + 0.001 * t1, rtol=1e-6, atol=1e-7)
        assert e.data_ptr() != t1.data_ptr()
    ema.update(model, decay=0.0)  # a per-call decay overrides the default
    assert all(torch.equal(e, p) for e, p in zip(ema.module.parameters(), model.parameters(), strict=True))
    with pytest.raises(ConfigError):
        ema.update(model, decay=1.5)
    with pytest.raises(ConfigError):
        ema.update(nn.Linear(2, 2))


def test_ema_buffers_copied_or_averaged_item_32():
    model = _bn_net().train()
    copied, averaged = ModelEMA(model, 0.9), ModelEMA(model, 0.9, buffers="average")
    before = _buffers(model)
    model(torch.randn(6, 3, 4, 4, generator=_gen(18)))
    live = _buffers(model)
    copied.update(model)
    averaged.update(model)
    for name, buf in copied.module.named_buffers():
        assert torch.equal(buf, live[name])
    for name, buf in averaged.module.named_buffers():
        if buf.is_floating_point():
            assert torch.allclose(buf, 0.9 * before[name] + 0.1 * live[name], atol=1e-6)
            assert not torch.equal(buf, live[name])
        else:
            assert torch.equal(buf, live[name])  # num_batches_tracked is copied, not averaged
    with pytest.raises(ConfigError):
        ModelEMA(model, 0.9, buffers="mean")  # type: ignore[arg-type]


def test_ema_state_dict_round_trip():
    model = _bn_net()
    ema = ModelEMA(model, 0.99, buffers="average")
    _perturb(model, 19)
    ema.update(model)
    other = ModelEMA(_bn_net(), 0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.99 and other.buffers == "average"
    for a, b in zip(other.module.state_dict().values(), ema.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_mean_teacher_decay_values():
    assert mean_teacher_decay(0, 0.97) == 0.0
    assert mean_teacher_decay(1, 0.97) == 0.5
    assert mean_teacher_decay(9, 0.97) == pytest.approx(0.9)
    assert mean_teacher_decay(32, 0.97) == pytest.approx(1 - 1 / 33)
    assert mean_teacher_decay(33, 0.97) == 0.97
    assert mean_teacher_decay(10**6, 0.97) == 0.97


# -- ramps (items 28-29, samosa §1.4) -------------------------------------------------------------------------
def test_ramps_values_items_28_29():
    assert linear_ramp(0, 16384) == 0.0
    assert linear_ramp(8192, 16384) == 0.5
    assert linear_ramp(16384, 16384) == 1.0 and linear_ramp(1e6, 16384) == 1.0
    assert linear_ramp(-3, 16384) == 0.0 and linear_ramp(5, 0) == 1.0
    assert 75 * linear_ramp(8192, 16384) == 37.5
    assert sigmoid_ramp(0, 5) == pytest.approx(math.exp(-5))
    assert sigmoid_ramp(2.5, 5) == pytest.approx(math.exp(-1.25))
    assert sigmoid_ramp(5, 5) == 1.0 and sigmoid_ramp(50, 5) == 1.0 and sigmoid_ramp(0, 0) == 1.0
    assert cosine_rampdown(0, 10) == 1.0
    assert cosine_rampdown(5, 10) == pytest.approx(0.5)
    assert cosine_rampdown(10, 10) == 0.0 and cosine_rampdown(20, 10) == 0.0
    with pytest.raises(ConfigError):
        linear_ramp(float("nan"), 10)


# -- losses (items 25-27, samosa §1.4-1.6) --------------------------------------------------------------------
def test_probability_mse_plain_and_masked():
    logits = torch.randn(8, 5, generator=_gen(20)).requires_grad_()
    targets = torch.softmax(torch.randn(8, 5, generator=_gen(21)), -1)
    plain = probability_mse(logits, targets)
    assert torch.allclose(plain, F.mse_loss(torch.softmax(logits, -1), targets), atol=1e-7)
    mask = torch.tensor([1, 0, 1, 1, 0, 0, 1, 1], dtype=torch.float32, requires_grad=True)
    keep = mask.detach().bool()
    masked = probability_mse(logits, targets, mask)
    expected = F.mse_loss(torch.softmax(logits[keep], -1), targets[keep])
    assert torch.allclose(masked, expected, atol=1e-7)
    masked.backward()
    assert (logits.grad[~keep] == 0).all() and (logits.grad[keep].abs().sum(-1) > 0).all()
    assert mask.grad is None  # the mask is a constant
    nothing = probability_mse(logits, targets, torch.zeros(8))
    assert nothing.item() == 0.0
    with pytest.raises(ConfigError):
        probability_mse(logits, targets[:, :4])


def test_losses_compute_in_float32_from_half_logits():
    logits = torch.randn(4, 3, generator=_gen(22)).to(torch.bfloat16)
    targets = torch.full((4, 3), 1 / 3)
    assert probability_mse(logits, targets).dtype == torch.float32
    assert softmax_mse(logits, logits).dtype == torch.float32
    loss, mask = fixmatch_unlabeled_loss(logits, logits, 0.5)
    assert loss.dtype == torch.float32 and mask.dtype == torch.float32


def test_softmax_mse_sends_no_gradient_to_the_teacher():
    student = torch.randn(6, 4, generator=_gen(23)).requires_grad_()
    teacher = torch.randn(6, 4, generator=_gen(24)).requires_grad_()
    loss = softmax_mse(student, teacher)
    diff = torch.softmax(student, -1) - torch.softmax(teacher, -1)
    assert torch.allclose(loss, diff.square().sum(-1).mean() / 4, atol=1e-7)
    loss.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0


def test_logit_distance_sends_gradient_to_both_sides():
    a = torch.randn(6, 4, generator=_gen(25)).requires_grad_()
    b = torch.randn(6, 4, generator=_gen(26)).requires_grad_()
    loss = logit_distance(a, b)
    assert torch.allclose(loss, (a - b).square().sum(-1).mean() / 4, atol=1e-6)
    loss.backward()
    expected = 2 * (a - b).detach() / 24
    assert torch.allclose(a.grad, expected, atol=1e-7) and torch.allclose(b.grad, -expected, atol=1e-7)


def test_fixmatch_loss_and_mask_on_hand_made_logits():
    weak = torch.tensor(
        [[10.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 3.0]], requires_grad=True
    )  # confidences ~1, 1/3, ~1, 0.91
    strong = torch.randn(4, 3, generator=_gen(27)).requires_grad_()
    loss, mask = fixmatch_unlabeled_loss(weak, strong, 0.95)
    assert torch.equal(mask, torch.tensor([1.0, 0.0, 1.0, 0.0]))
    expected = (F.cross_entropy(strong[0:1], torch.tensor([0])) + F.cross_entropy(strong[2:3], torch.tensor([1]))) / 4
    assert torch.allclose(loss, expected, atol=1e-6)  # mean over ALL rows: masked rows add 0 to the sum
    loss.backward()
    assert weak.grad is None
    assert (strong.grad[[1, 3]] == 0).all() and (strong.grad[[0, 2]].abs().sum(-1) > 0).all()
    # The threshold is inclusive: a confidence of exactly 0.5 passes 0.5.
    _, tie = fixmatch_unlabeled_loss(torch.zeros(1, 2), torch.zeros(1, 2), 0.5)
    assert tie.item() == 1.0
