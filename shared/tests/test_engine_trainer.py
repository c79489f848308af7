import json

import pytest
import torch
from mixlab.engine import RunOptions, Trainer, TrainingDiverged, load_checkpoint
from mixlab.errors import ConfigError, RunDirError


def _fit(ToyMethod, tmp_path, name, **kw):
    method_kw = {k: kw.pop(k) for k in list(kw) if k in ("nan_at_step", "epochs")}
    options = RunOptions(
        package="toy",
        dataset="toy",
        device="cpu",
        progress=False,
        out=tmp_path / name,
        **kw,
    )
    method = ToyMethod(**method_kw)
    return Trainer(method, options).fit(), method


def test_run_directory_contents(toy_method, tmp_path):
    summary, method = _fit(toy_method, tmp_path, "run")
    run = tmp_path / "run"
    assert summary["status"] == "completed" and summary["steps"] == 3 * method.steps_per_epoch
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == "toy" and config["config"] == {"n": 96, "batch": 16}
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    assert lines[-1]["top1"] > 70  # it learns
    assert json.loads((run / "summary.json").read_text())["final"]["top1"] == lines[-1]["top1"]
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()


def test_resume_after_interruption_equals_uninterrupted_run(toy_method, tmp_path):
    _, full = _fit(toy_method, tmp_path, "full", epochs=3)
    # 6 steps/epoch: stop mid-epoch 2 (step 8), as a crash after the last checkpoint would leave it
    stopped, _ = _fit(toy_method, tmp_path, "split", epochs=3, stop_after_steps=8)
    assert stopped["status"] == "stopped"
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")["step"] == 8
    options = RunOptions(package="toy", dataset="toy", device="cpu", progress=False, resume=tmp_path / "split")
    resumed = toy_method()
    summary = Trainer(resumed, options).fit()
    assert summary["status"] == "completed"
    for a, b in zip(full.trainable.state_dict().values(), resumed.trainable.state_dict().values()):
        assert torch.equal(a, b)
    full_lines = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    resumed_lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(x).items()} for x in lines]  # noqa: E731
    assert [x["top1"] for x in strip(full_lines)] == [x["top1"] for x in strip(resumed_lines)]


def test_nan_stops_with_step_and_last_good_checkpoint(toy_method, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at step 9 \(epoch 2\).*last good checkpoint"):
        _fit(toy_method, tmp_path, "nan", nan_at_step=9, log_every=1)
    summary = json.loads((tmp_path / "nan" / "summary.json").read_text())
    assert summary["status"] == "diverged"
    last = load_checkpoint(tmp_path / "nan" / "checkpoints" / "last.pt")
    assert last["step"] == 6 and all(torch.isfinite(v).all() for v in last["model"].values())


def test_refuses_to_overwrite_and_bad_options(toy_method, tmp_path):
    _fit(toy_method, tmp_path, "once", epochs=1)
    with pytest.raises(RunDirError, match="already exists"):
        _fit(toy_method, tmp_path, "once", epochs=1)
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        _fit(toy_method, tmp_path, "bad", epochs=0)
    assert not (tmp_path / "bad").exists()  # a start that failed before its first checkpoint leaves nothing
    with pytest.raises(ConfigError, match="--amp"):
        _fit(toy_method, tmp_path, "bad2", amp="fp8")


def test_bf16_autocast_runs_on_cpu(toy_method, tmp_path):
    summary, _ = _fit(toy_method, tmp_path, "amp", epochs=1, amp="bf16")
    assert summary["status"] == "completed" and summary["amp"] == "bf16"


def test_compile_mode_reaches_torch_compile_and_bad_modes_are_refused(toy_method, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="--compile-mode must be one of"):
        _fit(toy_method, tmp_path, "bad", compile_mode="fastest")
    modes = []

    def fake_compile(module, mode=None):  # records the call; the run goes on uncompiled
        modes.append(mode)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    summary, _ = _fit(toy_method, tmp_path, "graphs", epochs=1, compile_mode="reduce-overhead")
    assert summary["status"] == "completed" and modes == ["reduce-overhead"]  # the mode implies --compile
    _fit(toy_method, tmp_path, "plain", epochs=1, compile=True)
    assert modes == ["reduce-overhead", None]
    _fit(toy_method, tmp_path, "none", epochs=1)
    assert len(modes) == 2
