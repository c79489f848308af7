"""The engine's wave-2 features on a toy method: two phases, two optimizers stepped by the method, an EMA, exact
resume (also inside the second phase), a resumed finished run, --init-from, loss scalers per optimizer, clipping."""

from __future__ import annotations

import json

import pytest
import torch
from mixlab.engine import (
    Method,
    Optimization,
    OptimizerSpec,
    Phase,
    Precision,
    RunOptions,
    StepOutput,
    Trainer,
    load_checkpoint,
)
from mixlab.errors import CheckpointError, RunDirError
from mixlab.ssl import ModelEMA
from torch import nn
from torch.nn import functional as F


class TwoPhaseToy(Method):
    """Phase ``pretrain``: a generator and a discriminator, each with its own optimizer and scheduler, stepped by
    the method in the GAN order (D, then G). Phase ``classify``: the generator frozen in eval mode, a classifier
    trained on its features by the engine's automatic single-optimizer path, with an EMA of the classifier."""

    name = "toy2"

    def __init__(self, pretrain_steps: int = 7, classify_steps: int = 9, skip_pretrain: bool = False):
        self.pretrain_steps, self.classify_steps, self.skip_pretrain = pretrain_steps, classify_steps, skip_pretrain

    def build(self, runtime):
        self.runtime = runtime
        g = torch.Generator().manual_seed(5)
        self.x = torch.randn(60, 6, generator=g)
        self.y = (self.x[:, 0] - self.x[:, 2] > 0).long()
        self.trainable = nn.ModuleDict(
            {
                "gen": nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh()),
                "disc": nn.Linear(8, 1),
                "cls": nn.Linear(8, 2),
            }
        )
        self.ema = ModelEMA(self.trainable["cls"], 0.9)
        self.steps_per_epoch = 4  # 60 images, batches of 15

    def phases(self):
        phases = [Phase("pretrain", self.pretrain_steps, 3, self.steps_per_epoch, "loss_d", "min")]
        phases.append(Phase("classify", self.classify_steps, 4, self.steps_per_epoch))
        return phases[1:] if self.skip_pretrain else phases

    def start_phase(self, phase):
        net = self.trainable
        self.phase = phase.name
        self.manual_optimization = phase.name == "pretrain"
        net["gen"].requires_grad_(phase.name == "pretrain")
        if phase.name == "pretrain":
            opt_g = torch.optim.SGD(net["gen"].parameters(), lr=0.05, momentum=0.9)
            opt_d = torch.optim.Adam(net["disc"].parameters(), lr=0.01)
            self.specs = {
                "disc": OptimizerSpec(opt_d, torch.optim.lr_scheduler.StepLR(opt_d, 2, 0.5), clip_grad_norm=0.5),
                "gen": OptimizerSpec(opt_g, torch.optim.lr_scheduler.LambdaLR(opt_g, lambda k: 1 / (1 + k))),
            }
        else:
            opt = torch.optim.SGD(net["cls"].parameters(), lr=0.2, momentum=0.9)
            self.specs = {"main": OptimizerSpec(opt, torch.optim.lr_scheduler.StepLR(opt, 3, 0.7))}

    def optimizers(self):
        return self.specs

    def wrap(self, wrapper):
        self.forward = {
            k: wrapper(v) for k, v in self.trainable.items() if any(p.requires_grad for p in v.parameters())
        }

    def set_mode(self, training):
        self.trainable.train(training)
        if self.phase == "classify":
            self.trainable["gen"].eval()

    def train_batches(self, epoch, start_batch):
        order = torch.randperm(60, generator=torch.Generator().manual_seed(epoch))
        for i in range(start_batch, self.steps_per_epoch):
            yield order[15 * i : 15 * (i + 1)]

    def train_step(self, batch, progress):
        x = self.x[batch] + 0.05 * torch.randn(len(batch), 6)  # global-RNG noise: resume must restore it
        if self.phase == "pretrain":
            fake = self.forward["gen"](x)
            real = torch.tanh(F.pad(x, (0, 2)))
            loss_d = (
                F.softplus(-self.forward["disc"](real)).mean() + F.softplus(self.forward["disc"](fake.detach())).mean()
            )
            self.optim.backward(loss_d, "disc")
            self.optim.step("disc")
            loss_g = F.softplus(-self.trainable["disc"](fake)).mean()
            self.optim.backward(loss_g, "gen")
            self.optim.step("gen")
            return StepOutput((loss_d + loss_g).detach(), len(batch), {"loss_d": loss_d.detach()})
        with torch.no_grad():
            z = self.trainable["gen"](x)
        loss = F.cross_entropy(self.forward["cls"](z), self.y[batch])
        return StepOutput(loss, len(batch))

    def after_step(self, progress):
        if self.phase == "classify":
            self.ema.update(self.trainable["cls"])

    def evaluate(self, progress):
        z = self.trainable["gen"](self.x)
        if self.phase == "pretrain":
            real = torch.tanh(F.pad(self.x, (0, 2)))
            loss_d = F.softplus(-self.trainable["disc"](real)).mean() + F.softplus(self.trainable["disc"](z)).mean()
            return {"loss_d": float(loss_d)}
        logits = self.ema.module(z)
        return {"top1": 100.0 * float((logits.argmax(1) == self.y).float().mean())}

    def extra_state(self):
        return {"ema": self.ema.state_dict()}

    def load_extra_state(self, state):
        self.ema.load_state_dict(state["ema"])

    def config_dict(self):
        return {"pretrain_steps": self.pretrain_steps, "classify_steps": self.classify_steps}


def _run(tmp_path, name, method=None, **options):
    opts = RunOptions(package="toy2", dataset="toy", device="cpu", progress=False, **options)
    if "resume" not in options:
        opts.out = tmp_path / name
    method = method or TwoPhaseToy()
    return Trainer(method, opts).fit(), method


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_phases_run_in_order_with_their_own_cadence_and_best(tmp_path):
    summary, method = _run(tmp_path, "full")
    run = tmp_path / "full"
    assert summary["status"] == "completed" and summary["steps"] == 16 and summary["phase"] == "classify"
    assert [(r["phase"], r["step"]) for r in _records(run)] == [
        ("pretrain", 3),
        ("pretrain", 6),
        ("pretrain", 7),
        ("classify", 4),
        ("classify", 8),
        ("classify", 9),
    ]
    assert set(summary["phases"]) == {"pretrain", "classify"}
    assert summary["phases"]["pretrain"]["best"]["metrics"]["loss_d"] == min(
        r["loss_d"] for r in _records(run) if r["phase"] == "pretrain"
    )
    assert (run / "checkpoints" / "best-pretrain.pt").is_file() and (run / "checkpoints" / "best-classify.pt").is_file()
    # the frozen generator did not move in the second phase; the pretrain records log both learning rates
    first = _records(run)[0]
    assert set(first["lrs"]) == {"disc", "gen"} and "loss_d" in first["train"]
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["phase_name"] == "classify" and set(last["optim"]["optimizers"]) == {"main"}
    assert "ema" in last["extra"] and last["records"]["pretrain"]["final"]["step"] == 7


def test_checkpoint_of_the_first_phase_holds_every_optimizer_scheduler_and_scaler(tmp_path):
    _run(tmp_path, "stop", stop_after_steps=5)
    state = load_checkpoint(tmp_path / "stop" / "checkpoints" / "last.pt")
    assert state["phase_name"] == "pretrain" and state["step"] == 5
    assert set(state["optim"]["optimizers"]) == set(state["optim"]["schedulers"]) == {"disc", "gen"}
    assert set(state["optim"]["scalers"]) == {"disc", "gen"}
    assert state["optim"]["schedulers"]["disc"]["last_epoch"] == 5


@pytest.mark.parametrize("stops", [(5,), (11,), (5, 7, 12)], ids=["in-phase-1", "in-phase-2", "three-kills"])
def test_resume_is_bit_identical_across_and_inside_phases(tmp_path, stops):
    full, full_method = _run(tmp_path, "full")
    _run(tmp_path, "split", stop_after_steps=stops[0])
    for stop in (*stops[1:], None):
        summary, method = _run(tmp_path, "", resume=tmp_path / "split", stop_after_steps=stop)
    assert summary["status"] == "completed"
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(
        torch.equal(x, y)
        for x, y in zip(full_method.ema.module.state_dict().values(), method.ema.module.state_dict().values())
    )
    assert _records(tmp_path / "full") == _records(tmp_path / "split")  # training-loss averages included
    for key in ("final", "best", "phases", "steps"):
        assert summary[key] == full[key], key


def test_resuming_a_finished_run_keeps_its_results(tmp_path):
    full, _ = _run(tmp_path, "done")
    again, _ = _run(tmp_path, "", resume=tmp_path / "done")
    assert again["status"] == "completed" and again["final"] == full["final"] and again["final"] is not None
    assert again["phases"] == full["phases"]
    assert json.loads((tmp_path / "done" / "summary.json").read_text())["final"] == full["final"]
    assert len(_records(tmp_path / "done")) == 6


def test_init_from_starts_a_later_phase_from_another_runs_weights(tmp_path):
    _run(tmp_path, "pre")
    summary, method = _run(tmp_path, "cls", TwoPhaseToy(skip_pretrain=True), init_from=tmp_path / "pre")
    assert summary["status"] == "completed" and summary["steps"] == 9 and "phases" not in summary
    pre = load_checkpoint(tmp_path / "pre" / "checkpoints" / "last.pt")["model"]
    gen = method.trainable["gen"].state_dict()
    assert all(torch.equal(gen[k], pre[f"gen.{k}"]) for k in gen)  # the generator came from the other run
    config = json.loads((tmp_path / "cls" / "config.json").read_text())
    assert config["run"]["init_from"] == str(tmp_path / "pre")
    with pytest.raises(RunDirError, match="without checkpoints/last.pt"):
        _run(tmp_path, "bad", TwoPhaseToy(skip_pretrain=True), init_from=tmp_path / "cls" / "checkpoints")
    with pytest.raises(CheckpointError, match="does not exist"):
        _run(tmp_path, "bad2", TwoPhaseToy(skip_pretrain=True), init_from=tmp_path / "nowhere.pt")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()


def test_fp16_gives_each_optimizer_its_own_loss_scaler():
    a, b = nn.Linear(3, 1), nn.Linear(3, 1)
    specs = {
        "a": OptimizerSpec(torch.optim.SGD(a.parameters(), lr=0.1)),
        "b": OptimizerSpec(torch.optim.SGD(b.parameters(), lr=0.1)),
    }
    optim = Optimization(specs, Precision("fp16", torch.device("cpu")))
    before_a, before_b = a.weight.detach().clone(), b.weight.detach().clone()
    x = torch.ones(2, 3)
    optim.backward(a(x).sum() * float("inf"), "a")  # overflow in a's gradients only
    optim.step("a")
    optim.backward(b(x).sum(), "b")
    optim.step("b")
    losses = optim.end_iteration()
    assert len(losses) == 2 and not torch.isfinite(losses[0]) and torch.isfinite(losses[1])
    assert torch.equal(a.weight, before_a) and not torch.equal(b.weight, before_b)  # a's step skipped, b's taken
    assert optim.scalers["a"].get_scale() < optim.scalers["b"].get_scale()  # only a's scale backed off


def test_a_shared_scaler_serves_one_backward_feeding_two_optimizers():
    a, b = nn.Linear(3, 1), nn.Linear(3, 1)
    specs = {
        "a": OptimizerSpec(torch.optim.SGD(a.parameters(), lr=0.1)),
        "b": OptimizerSpec(torch.optim.SGD(b.parameters(), lr=0.1), scaler="a"),
    }
    optim = Optimization(specs, Precision("fp16", torch.device("cpu")))
    assert set(optim.scalers) == {"a"}
    before_a, before_b = a.weight.detach().clone(), b.weight.detach().clone()
    x = torch.ones(2, 3)
    optim.backward(a(x).sum() + b(x).sum(), "a")
    optim.step("a")
    optim.step("b")
    optim.end_iteration()
    # both took the unscaled step -lr * grad (grad of sum over 2 rows of ones = 2)
    assert torch.allclose(a.weight, before_a - 0.2) and torch.allclose(b.weight, before_b - 0.2)
    assert a.weight.grad is None and b.weight.grad is None  # zeroed after the steps


def test_clipping_bounds_each_optimizers_gradient_norm():
    w = nn.Parameter(torch.zeros(4))
    optim = Optimization(
        {"main": OptimizerSpec(torch.optim.SGD([w], lr=1.0), clip_grad_norm=0.5)}, Precision("off", torch.device("cpu"))
    )
    optim.backward((w * torch.tensor([3.0, 4.0, 0.0, 0.0])).sum())
    optim.step()
    assert torch.allclose(w.detach(), -torch.tensor([0.3, 0.4, 0.0, 0.0]))  # (3, 4) clipped to norm 0.5


class DisjointPair(Method):
    """Two networks with their own optimizers, fed by one loss whose terms reach disjoint parameters (SAMOSA's
    classifier and reconstruction branches): the engine's automatic path backpropagates once and steps both."""

    name = "pair"

    def build(self, runtime):
        torch.manual_seed(0)
        self.trainable = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 1)})
        self.opt_a = torch.optim.SGD(self.trainable["a"].parameters(), lr=0.1)
        self.opt_b = torch.optim.SGD(self.trainable["b"].parameters(), lr=0.5)
        self.steps_per_epoch, self.total_steps, self.eval_every = 2, 2, 2
        self.x = torch.ones(4, 3)

    def optimizers(self):
        return {"a": OptimizerSpec(self.opt_a), "b": OptimizerSpec(self.opt_b, clip_grad_norm=1e-3)}

    def train_batches(self, epoch, start_batch):
        yield from range(start_batch, 2)

    def train_step(self, batch, progress):
        loss = self.forward_module["a"](self.x).sum() + self.forward_module["b"](self.x).sum()
        return StepOutput(loss, 4)

    def evaluate(self, progress):
        return {}


def test_the_automatic_path_steps_every_optimizer_after_one_backward(tmp_path):
    summary, method = _run(tmp_path, "pair", DisjointPair())
    torch.manual_seed(0)
    a0, b0 = nn.Linear(3, 1), nn.Linear(3, 1)
    a, b = method.trainable["a"], method.trainable["b"]
    # a: two plain SGD steps of lr 0.1 on a gradient of 4 per weight; b: its gradient clipped to norm 1e-3
    assert torch.allclose(a.weight, a0.weight - 2 * 0.1 * 4, atol=1e-3)
    assert torch.allclose(
        (b.weight - b0.weight).norm(), torch.tensor(2 * 0.5 * 1e-3 * 3**0.5 / 2), rtol=1e-3
    )  # weight share of the norm
    assert set(load_checkpoint(tmp_path / "pair" / "checkpoints" / "last.pt")["optim"]["scalers"]) == {"a"}  # shared
