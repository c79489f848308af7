"""SciMix's losses, frozen criterion, step isolation and L_contradict (spec samosa-scimix §3.12, 4-10)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mixlab.engine import Precision, StepOutput, TrainProgress
from mixlab.engine.optimization import Optimization
from mixlab.errors import ConfigError
from mixlab.ssl import StepContext
from mixlab.testing import build_on_cpu, torch_threads
from scimix.config import ScimixConfig
from scimix.method import distance, generator_loss, scimix_method
from scimix.recipes import DIGITS_MT

TINY = dataclasses.replace(DIGITS_MT, num_labeled=50, batch_size=4, unlabeled_batch_size=8, gen_batch_size=4,
                           gen_unlabeled_batch_size=8, g_widths=(8, 8, 16, 8, 8))  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def started(config: ScimixConfig, phase_index: int):
    method = build_on_cpu(scimix_method(config))
    phase = method.phases()[phase_index]
    method.start_phase(phase)
    method.optim = Optimization(method.optimizers(), Precision("off", torch.device("cpu")),
                                one_backward=not method.manual_optimization)  # fmt: skip
    method.wrap(lambda module: module)
    method.set_mode(True)
    return method, phase


def test_negative_terms_are_subtracted_and_the_objective_stays_bounded():
    names = ("loss_s", "loss_rec", "loss_adv_r", "class_pos", "cont_pos", "class_neg", "cont_neg", "loss_adv_h")
    terms = {n: torch.tensor(1.0, requires_grad=True) for n in names}
    generator_loss(terms, TINY, cont_weight=1.0).backward()
    assert float(terms["class_neg"].grad) == pytest.approx(-0.05) and float(terms["cont_neg"].grad) == pytest.approx(
        -0.05
    )
    assert float(terms["class_pos"].grad) == pytest.approx(0.5) and float(terms["loss_rec"].grad) == 1.0
    for n in names:
        terms[n].grad = None
    generator_loss(terms, TINY, cont_weight=0.0).backward()
    assert float(terms["cont_pos"].grad) == 0.0 and float(terms["cont_neg"].grad) == 0.0  # before cont_start_epoch
    # lambda+ ||a - p|| - lambda- ||b - p|| is minimised at p = a (non-squared norms, lambda+ > lambda-)
    a, b = torch.randn(1, 5), torch.randn(1, 5)
    p = torch.zeros(1, 5, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.01)
    for _ in range(3000):
        loss = 0.5 * distance(a, p, "l2") - 0.05 * distance(b, p, "l2")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(p.detach(), a, atol=0.02)


def test_frozen_criterion_reaches_the_hybrid_not_its_parameters():
    method, _ = started(TINY, 0)
    x_h = torch.randn(4, 3, 32, 32, requires_grad=True)
    stats = [b.clone() for b in method.gen_net.buffers()]
    logits, code = method._criterion(x_h)
    (logits.square().sum() + code.square().sum()).backward()
    assert x_h.grad is not None and x_h.grad.abs().sum() > 0
    for module in (method.gen_net, method.context):
        assert all(p.grad is None for p in module.parameters())
    assert all(torch.equal(a, b) for a, b in zip(stats, method.gen_net.buffers()))  # BN statistics kept
    assert all(p.requires_grad for p in method.gen_net.parameters())  # restored after the pass
    loose, _ = started(dataclasses.replace(TINY, frozen_criterion=False), 0)
    logits, code = loose._criterion(x_h.detach())
    (logits.square().sum() + code.square().sum()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in loose.gen_net.parameters())


def test_the_discriminator_and_generator_steps_touch_only_their_own_parameters():
    method, phase = started(TINY, 0)
    snapshots = {}
    step = method.optim.step

    def recording(name):
        step(name)
        snapshots[name] = ({k: v.clone() for k, v in method.disc.state_dict().items()},
                           {k: v.clone() for k, v in method.generator.state_dict().items()})  # fmt: skip

    method.optim.step = recording
    d0 = {k: v.clone() for k, v in method.disc.state_dict().items()}
    g0 = {k: v.clone() for k, v in method.generator.state_dict().items()}
    out = method.train_step(0, TrainProgress(0, 0, 1, phase.steps_per_epoch, phase.steps, phase.name))
    assert isinstance(out, StepOutput) and {"loss_d", "loss_rec", "class_neg"} <= set(out.logs)
    d_after_d, g_after_d = snapshots["disc"]
    d_after_g, g_after_g = snapshots["gen"]
    assert any(not torch.equal(d0[k], d_after_d[k]) for k in d0)  # D learned...
    assert all(torch.equal(g0[k], g_after_d[k]) for k in g0)  # ... alone
    assert all(torch.equal(d_after_d[k], d_after_g[k]) for k in d0)  # the G step leaves D bit-identical
    assert any(not torch.equal(g0[k], g_after_g[k]) for k in g0)
    ema = {k: v.clone() for k, v in method.gen_ema.module.state_dict().items()}
    method.after_step(TrainProgress(1, 0, 1, phase.steps_per_epoch, phase.steps, phase.name))
    assert any(not torch.equal(ema[k], v) for k, v in method.gen_ema.module.state_dict().items())
    assert set(method.gen_ema.module.state_dict()) == set(method.gen_net.state_dict())  # tracks E_c and C only


def test_hybrids_pair_semantics_of_row_i_with_the_context_of_its_partner():
    method, _ = started(TINY, 1)

    class Ids(torch.nn.Module):
        def forward(self, style, spatial):
            return torch.stack([style[:, 0], spatial.flatten(1)[:, 0]], 1)

    method.generator = Ids()
    x1, x2 = torch.randn(5, 3, 32, 32), torch.randn(5, 3, 32, 32)
    out = method.hybridize(x1, x2)
    with torch.no_grad():
        assert torch.allclose(out[:, 0], method.gen_net.encoder(x1)[:, 0])
        assert torch.allclose(out[:, 1], method.context(x2).flatten(1)[:, 0])
    assert not out.requires_grad


def test_contradict_identities():
    method, phase = started(dataclasses.replace(TINY, alpha=1.0), 1)
    rows = torch.randn(6, 3, 32, 32)
    reference = torch.randn(6, 10)
    method.hybridize = lambda x1, x2: x1  # hybrids replaced by their semantic parents
    with torch.no_grad():
        own = method.model.eval()(rows)[:, 0]
    method.forward_frozen_bn = lambda x: method.model.eval()(x)
    assert float(method._hybrid_loss(rows, own, torch.tensor([0, 1])).detach()) == pytest.approx(0.0, abs=1e-12)
    consistency = dataclasses.replace(method.config, hybrid_loss="consistency")
    at_one = method._hybrid_loss(rows, reference, torch.tensor([0, 1]))
    method.config = consistency
    assert torch.allclose(method._hybrid_loss(rows, reference, torch.tensor([0, 1])), at_one)


def test_a_contradict_window_no_classifier_step_reaches_is_refused():
    """TINY's classifier phase spans 4 epochs: a window from epoch 4 would silently train the baseline."""
    method = build_on_cpu(scimix_method(dataclasses.replace(TINY, hybrid_window=(4.0, 6.0))))
    with pytest.raises(ConfigError, match=r"hybrid_window=\[4, 6\) epochs is never reached: the classifier phase's"):
        method.check_training()
    build_on_cpu(
        scimix_method(dataclasses.replace(TINY, hybrid_window=(4.0, 6.0), num_hybrid_batches=0))
    ).check_training()


def test_contradict_only_inside_its_window():
    method, phase = started(dataclasses.replace(TINY, hybrid_window=(1.0, 2.0)), 1)
    logits = method.model(torch.randn(12, 3, 32, 32))
    teacher = torch.randn(12, 10)

    def ctx(epoch: float) -> StepContext:
        step = int(epoch * phase.steps_per_epoch)
        progress = TrainProgress(step, int(epoch), 4, phase.steps_per_epoch, phase.steps, phase.name)
        return StepContext(step, progress, torch.randn(12, 3, 32, 32), logits, 4, torch.arange(4), {"teacher": teacher})

    assert "loss_contradict" not in method.extra_losses(ctx(0.5))
    assert "loss_contradict" in method.extra_losses(ctx(1.5))
    assert "loss_contradict" not in method.extra_losses(ctx(2.5))


def test_generator_labels_all_trains_the_generator_on_every_label_and_keeps_the_classifier_split():
    method, _ = started(dataclasses.replace(TINY, generator_labels_all=True), 0)
    total = len(method.data.labeled) + int(method.data.unlabeled_images.shape[0])
    assert len(method.gen_targets) == total and len(method.data.labeled) == 50
    labeled_part = method.gen_targets[: len(method.labeled_targets)]
    assert torch.equal(labeled_part, method.labeled_targets)
    assert torch.equal(method.gen_targets[50:].cpu(), method.data.unlabeled_targets)
    _, _, targets, index = method._gen_batch(0)
    assert torch.equal(targets, method.gen_targets[index])
    plain, _ = started(TINY, 0)
    assert len(plain.gen_targets) == 50


def test_both_generator_phase_optimizers_clip_their_gradients():
    method, _ = started(TINY, 0)
    specs = method.optimizers()
    assert specs["disc"].clip_grad_norm == 1.0 and specs["gen"].clip_grad_norm == 1.0
    method, _ = started(dataclasses.replace(TINY, disc_clip_grad_norm=None), 0)
    assert method.optimizers()["disc"].clip_grad_norm is None
    with pytest.raises(Exception, match="disc_clip_grad_norm must be positive"):
        dataclasses.replace(TINY, disc_clip_grad_norm=0.0).validate()
