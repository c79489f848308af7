"""SAMOSA's losses, gradient routing, hybridize and the three integrations (spec samosa-scimix §2.12, 4-10)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mixlab.engine import Precision, TrainProgress
from mixlab.engine.optimization import Optimization
from mixlab.errors import ConfigError
from mixlab.testing import build_on_cpu, torch_threads
from samosa.hybrids import hybridize
from samosa.losses import reverse_gradient
from samosa.method import SamosaFixMatch, SamosaMeanTeacher, SamosaMixMatch, samosa_method
from samosa.recipes import BOOK, DIGITS_FIXMATCH, DIGITS_MIXMATCH, DIGITS_MT

TINY_MT = dataclasses.replace(DIGITS_MT, num_labeled=50, batch_size=8, unlabeled_batch_size=16, num_gates=16)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def built(config):
    method = build_on_cpu(samosa_method(config))
    method.optim = Optimization(method.optimizers(), Precision("off", torch.device("cpu")), one_backward=True)
    if config.use_reconstruction:
        method.gates_forward, method.decoder_forward = method.gates, method.decoder
    return method


def progress(method, step):
    return TrainProgress(step, step // method.steps_per_epoch, 1, method.steps_per_epoch, method.total_steps)


def _grads(module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


@pytest.mark.parametrize("term", ["L_0", "loss_rec", "loss_omega"])
def test_gradient_routing_of_each_term(term):
    """L_0 reaches E_c and C only; lambda_rec L_rec reaches E_r and D only; Omega_rec reaches E_c's stem and blocks
    1..11, not block 12, C, E_r or D (spec §2.3, §2.12 item 4)."""
    method = built(TINY_MT)
    out = method.train_step(1, progress(method, 1))
    terms = method.last_terms
    part = out.loss - terms["loss_rec"] - terms["loss_omega"] if term == "L_0" else terms[term]
    part.backward()
    net = method.model
    if term == "L_0":
        assert _grads(net.encoder) and _grads(net.classifier)
        assert not _grads(method.gates) and not _grads(method.decoder)
    elif term == "loss_rec":
        assert _grads(method.gates) and _grads(method.decoder)
        assert not _grads(net.encoder) and not _grads(net.classifier)
    else:
        assert _grads(net.encoder.stem) and _grads(net.encoder.blocks[-2])
        assert not _grads(net.encoder.blocks[-1]) and not _grads(net.classifier)
        assert not _grads(method.gates) and not _grads(method.decoder)


@pytest.fixture(autouse=True)
def _keep_terms(monkeypatch):
    """Keep the (graph-carrying) extra terms of the last step so a test can backpropagate one alone."""
    original = SamosaMeanTeacher.extra_losses

    def keep(self, ctx):
        terms = original(self, ctx)
        self.last_terms = terms
        return terms

    for cls in (SamosaMeanTeacher, SamosaMixMatch, SamosaFixMatch):
        monkeypatch.setattr(cls, "extra_losses", keep)


def test_hybridize_keeps_labels_filters_and_reconstructs():
    method = built(TINY_MT)
    modules = (method.model, method.gates, method.decoder)
    x1, x2 = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    y1 = torch.tensor([0, 1, 2, 3])
    out = hybridize(*modules, x1, y1, x2, filter=False)
    assert not out.x.requires_grad and out.y is y1 and out.kept.all()
    for m in modules:
        m.eval()
    with torch.no_grad():
        assert torch.allclose(out.x, method.decoder(method.model.encoder(x1)[0], method.gates(x2)), atol=1e-6)
        reconstruction = method.decoder(method.model.encoder(x1)[0], method.gates(x1))
        assert torch.allclose(hybridize(*modules, x1, y1, x1, filter=False).x, reconstruction, atol=1e-6)
        predicted = method.model(out.x)[:, 0].argmax(1)  # what the classifier says of the raw hybrids
    always_wrong = hybridize(*modules, x1, (predicted + 1) % 10, x2, filter=True)
    assert not always_wrong.kept.any() and torch.equal(always_wrong.x, x1)  # every hybrid -> its semantic parent
    always_right = hybridize(*modules, x1, predicted, x2, filter=True)
    assert always_right.kept.all() and torch.allclose(always_right.x, out.x)
    soft = torch.softmax(torch.randn(4, 10), 1)
    assert hybridize(*modules, x1, soft, x2).y is soft  # soft targets pass unchanged
    for m in modules:
        m.train()
    hybridize(*modules, x1, y1, x2)
    assert all(m.training for m in modules)  # eval mode only while hybridizing


def test_mean_teacher_cycle_bookkeeping_and_stored_hybrids():
    method = built(TINY_MT)
    cycle, spe = method.cycle_steps, method.steps_per_epoch
    assert cycle * 3 == method.total_steps
    assert not method.hybrids_in_use(int(1.5 * spe))  # cycle 1: never
    method.after_step(progress(method, cycle))  # the end of cycle 1 stores D_h
    stored = method.stored
    assert stored is not None and len(stored.x) == 10 * 50 and stored.x.dtype == torch.float16
    assert sorted(torch.bincount(stored.y).tolist()) == [50] * 10  # every labeled image 10 times
    assert len(method.data.labeled) == 50  # D_l0 unchanged
    start, stop = method.config.hybrid_window
    assert not method.hybrids_in_use(cycle + int((start - 0.5) * spe))
    assert method.hybrids_in_use(cycle + int(start * spe))
    assert not method.hybrids_in_use(cycle + int(stop * spe) + 1)
    (view,), targets = method.labeled_views(cycle + int(start * spe), 1)
    assert view.shape == (8, 3, 32, 32) and targets.shape == (8,)
    # the LR restarts at every cycle
    assert method.scheduler.lr_lambdas[0](0) == method.scheduler.lr_lambdas[0](cycle) == 1.0


@pytest.mark.parametrize(
    ("base", "change", "message"),
    [
        (TINY_MT, {"hybrid_window": (4.0, 5.0)}, "each cycle's"),  # 12 epochs in 3 cycles: a cycle spans [0, 4)
        (TINY_MT, {"lr_cycles": 1, "epochs": 4}, "lr_cycles=1"),
        (DIGITS_MIXMATCH, {"num_labeled": 50, "hybrid_window": (12.0, 20.0)}, "the run's"),  # the run spans [0, 12)
    ],
)
def test_a_hybrid_window_no_step_reaches_is_refused(base, change, message):
    """Such a run would silently be the reconstruction-only ablation, not SAMOSA: one line, naming the span."""
    method = build_on_cpu(samosa_method(dataclasses.replace(base, **change)))  # a finished run stays readable
    with pytest.raises(ConfigError, match=message) as error:
        method.check_training()  # what the trainer calls before the first step
    assert "\n" not in str(error.value)


def test_the_last_step_of_a_window_is_reachable():
    """A window whose start is the cycle's last step is accepted, and that step uses the stored hybrids."""
    probe = build_on_cpu(samosa_method(dataclasses.replace(TINY_MT, use_hybrid_aug=False)))
    last = (probe.cycle_steps - 1) / probe.steps_per_epoch
    method = built(dataclasses.replace(TINY_MT, hybrid_window=(last, last + 1.0)))
    method.check_training()
    method.stored = method.store_hybrids()
    assert method.hybrids_in_use(2 * method.cycle_steps - 1)
    assert not method.hybrids_in_use(2 * method.cycle_steps - 2)


def test_each_step_logs_whether_its_batch_held_hybrids():
    """``hybrid_step`` is 1 exactly on the steps whose batch holds hybrids (MT: stored ones inside the window)."""
    method = built(TINY_MT)
    cycle, spe = method.cycle_steps, method.steps_per_epoch
    method.after_step(progress(method, cycle))  # stores D_h
    start, _ = method.config.hybrid_window
    inside, before = cycle + int(start * spe) + 1, cycle + 1
    assert float(method.train_step(inside, progress(method, inside)).logs["hybrid_step"]) == 1.0
    assert float(method.train_step(before, progress(method, before)).logs["hybrid_step"]) == 0.0
    mixmatch = built(dataclasses.replace(DIGITS_MIXMATCH, num_labeled=50, batch_size=8, num_gates=16,
                                         hybrid_prob=1.0, hybrid_window=(0.0, 1e9)))  # fmt: skip
    assert float(mixmatch.train_step(0, progress(mixmatch, 0)).logs["hybrid_step"]) == 1.0
    plain = built(dataclasses.replace(TINY_MT, use_hybrid_aug=False))
    assert "hybrid_step" not in plain.train_step(1, progress(plain, 1)).logs


def test_mixmatch_switch_uses_hybrids_unmixed_targets_and_records_the_mixed_batch():
    config = dataclasses.replace(DIGITS_MIXMATCH, num_labeled=50, batch_size=8, num_gates=16, hybrid_prob=1.0,
                                 hybrid_window=(0.0, 1e9))  # fmt: skip
    method = built(config)
    rows, targets = torch.randn(24, 3, 32, 32), torch.softmax(torch.randn(24, 10), 1)
    mixed = method.mix(rows, targets, progress(method, 0))
    assert torch.equal(mixed.y, targets) and (mixed.lam == 1).all()  # no MixUp: the semantic parents' targets
    off = dataclasses.replace(config, hybrid_prob=0.0)
    plain = built(off).mix(rows, targets, progress(method, 0))
    assert (plain.lam >= 0.5).all() and not torch.equal(plain.y, targets)
    outside = built(dataclasses.replace(config, hybrid_window=(5.0, 6.0))).mix(rows, targets, progress(method, 0))
    assert not torch.equal(outside.y, targets)  # outside the window: MixUp even with hybrid_prob 1
    out = method.train_step(0, progress(method, 0))
    assert {"loss_rec", "loss_omega"} <= set(out.logs) and torch.isfinite(out.loss)


def test_fixmatch_hybrids_keep_the_weak_views_order_and_labels():
    config = dataclasses.replace(DIGITS_FIXMATCH, num_labeled=50, batch_size=4, unlabeled_batch_size=8,
                                 num_gates=16, hybrid_prob=1.0, filter_hybrids=False)  # fmt: skip
    method = built(config)
    weak, strong = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    logits = torch.randn(8, 10)
    torch.manual_seed(0)
    hybrid = method.strong_view(strong, weak, logits, progress(method, 0))
    torch.manual_seed(0)
    perm = torch.randperm(8)
    expected = hybridize(method.model, method.gates, method.decoder, weak, logits.argmax(1), strong[perm],
                         filter=False)  # fmt: skip
    assert torch.allclose(hybrid, expected.x)  # hybrid i: the content of weak view i, its pseudo-label stays
    out = method.train_step(0, progress(method, 0))
    assert torch.isfinite(out.loss) and "loss_rec" in out.logs


def test_baselines_are_the_same_code_without_the_branch():
    baseline = BOOK.get("cifar10-500-mt").config
    samosa = BOOK.get("cifar10-500-mt-samosa").config
    assert dataclasses.replace(baseline, use_reconstruction=True, use_omega_rec=True, use_hybrid_aug=True) == samosa
    method = built(dataclasses.replace(TINY_MT, use_reconstruction=False, use_omega_rec=False, use_hybrid_aug=False))
    out = method.train_step(0, progress(method, 0))
    assert set(out.logs) == {"loss_x", "loss_u", "loss_logit", "w_u"} and list(method.optimizers()) == ["main"]


def test_gradient_reversal_flips_only_the_backward():
    x = torch.ones(3, requires_grad=True)
    y = reverse_gradient(x, 0.1)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -0.1))


def test_learning_sanity_reconstruction_alone():
    """100 Adam steps on L_rec alone on 8 fixed images reduce it by at least half (spec §2.12 item 10)."""
    method = built(TINY_MT)
    x = torch.randn(8, 3, 32, 32)
    params = list(method.gates.parameters()) + list(method.decoder.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    with torch.no_grad():
        z_c, _ = method.model.encoder(x)
    losses = []
    for _ in range(100):
        loss = torch.nn.functional.mse_loss(method.decoder(z_c, method.gates(x)), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
