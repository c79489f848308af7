import json
import pickle

import pytest
import torch
from mixlab.engine import load_checkpoint, save_checkpoint
from mixlab.engine.rundir import append_jsonl, create_run_dir, resumable_run_dir, truncate_jsonl_after, write_json
from mixlab.engine.schedule import warmup_multistep_factor
from mixlab.errors import CheckpointError, RunDirError


def test_checkpoint_round_trip_and_method_tag(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"step": 3, "w": torch.arange(4.0)}, method="mixmo")
    state = load_checkpoint(path, method="mixmo")
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    with pytest.raises(CheckpointError, match="written by 'mixmo', not 'realmix'"):
        load_checkpoint(path, method="realmix")
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_corrupt_truncated_and_foreign_checkpoints_are_refused(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.ones(1000)}, method="mixmo")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, foreign)
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError, match="cannot be read"):
            load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not a mixlab checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_with_code_is_never_executed(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "mixlab-checkpoint/1", "method": "mixmo", "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="objects other than tensors") as error:
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out
    assert "weights_only" not in str(error.value) and "\x1b" not in str(error.value)  # never torch's advice


def test_a_failed_checkpoint_write_is_one_error_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(3)}, method="mixmo")

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 32")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match=r"could not write the checkpoint .*is the disk full"):
        save_checkpoint(path, {"w": torch.zeros(3)}, method="mixmo")
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))  # the previous checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_a_run_directory_stands_for_its_last_checkpoint(tmp_path):
    run = create_run_dir(tmp_path / "run", "mixmo", "digits")
    save_checkpoint(run / "checkpoints" / "last.pt", {"w": torch.ones(1)}, method="mixmo")
    assert torch.equal(load_checkpoint(run)["w"], torch.ones(1))


def test_run_dir_is_never_overwritten_but_an_abandoned_start_is_reused(tmp_path):
    run = create_run_dir(tmp_path / "run", "mixmo", "digits")
    (run / "config.json").write_text("{}")
    assert create_run_dir(tmp_path / "run", "mixmo", "digits") == run  # no checkpoint, no summary: start again
    assert not (run / "config.json").exists()
    save_checkpoint(run / "checkpoints" / "last.pt", {"w": torch.ones(1)}, method="mixmo")
    with pytest.raises(RunDirError, match="already exists"):
        create_run_dir(tmp_path / "run", "mixmo", "digits")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a run")
    with pytest.raises(RunDirError, match="already exists"):
        create_run_dir(tmp_path / "mine", "mixmo", "digits")
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirError, match="is a file"):
        create_run_dir(tmp_path / "file", "mixmo", "digits")


def test_resume_of_an_abandoned_start_says_to_start_again(tmp_path):
    run = create_run_dir(tmp_path / "run", "mixmo", "digits")
    (run / "config.json").write_text("{}")
    with pytest.raises(RunDirError, match="before its first checkpoint; start it again with --out"):
        resumable_run_dir(run)


def test_jsonl_truncation_on_resume_and_nan_safe_json(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for step in (10, 20, 30):
        append_jsonl(path, {"step": step, "top1": float("nan") if step == 30 else 1.0})
    truncate_jsonl_after(path, ["train"], 0, 20)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20]
    for phase, step in (("a", 5), ("a", 9), ("b", 3), ("b", 8)):
        append_jsonl(tmp_path / "phases.jsonl", {"phase": phase, "step": step})
    truncate_jsonl_after(tmp_path / "phases.jsonl", ["a", "b"], 1, 3)  # inside phase b: phase a's records stay
    assert [json.loads(line)["step"] for line in (tmp_path / "phases.jsonl").read_text().splitlines()] == [5, 9, 3]
    write_json(tmp_path / "s.json", {"x": float("inf"), "t": (1, 2)})
    assert json.loads((tmp_path / "s.json").read_text()) == {"x": None, "t": [1, 2]}


def test_warmup_then_milestones():
    kw = dict(steps_per_epoch=10, warmup_epochs=1, milestones=[2, 4], gamma=0.1)
    assert warmup_multistep_factor(0, **kw) == pytest.approx(0.1)
    assert warmup_multistep_factor(9, **kw) == pytest.approx(1.0)
    assert warmup_multistep_factor(19, **kw) == 1.0  # epoch index 1
    assert warmup_multistep_factor(20, **kw) == pytest.approx(0.1)  # after 2 completed epochs
    assert warmup_multistep_factor(45, **kw) == pytest.approx(0.01)
    # MixMo CIFAR b=4: base 0.0125, 3125 steps/epoch, milestones after 100/200/225 epochs
    kw = dict(steps_per_epoch=3125, warmup_epochs=1, milestones=[100, 200, 225], gamma=0.1)
    assert 0.0125 * warmup_multistep_factor(100 * 3125 - 1, **kw) == pytest.approx(0.0125)
    assert 0.0125 * warmup_multistep_factor(100 * 3125, **kw) == pytest.approx(0.00125)


def test_pickle_is_not_used_for_json(tmp_path):
    # metrics.jsonl lines are plain JSON (a reader needs no mixlab to parse them)
    append_jsonl(tmp_path / "m.jsonl", {"step": 1})
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads((tmp_path / "m.jsonl").read_bytes())
