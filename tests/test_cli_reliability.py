"""What a new user does wrong, in every package: each gets one line on stderr and exit code 2, nothing is left
half-written, and nothing that exists is overwritten or lost."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch
from mixlab.testing import cli_invoker, one_line_error

PACKAGES = ("mixmo", "mixshare", "mixvit", "realmix", "samosa", "scimix")

# Tiny runs on the built-in digits, one per family (multi-input / semi-supervised).
MIXMO = ["--model", "smallcnn-1", "--batch-size", "128", "-b", "2", "--epochs", "1", "--no-progress", "--device", "cpu"]
REALMIX = ["--steps", "4", "--eval-every", "2", "--batch-size", "8", "--set", "extend_copies=2", "--no-progress",
           "--device", "cpu"]  # fmt: skip


def invoke(package: str):
    return cli_invoker(importlib.import_module(f"{package}.cli").app)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One finished mixmo run and one finished realmix run."""
    root = tmp_path_factory.mktemp("runs")
    assert invoke("mixmo")("train", *MIXMO, "--out", root / "mixmo").exit_code == 0
    assert invoke("realmix")("train", *REALMIX, "--out", root / "realmix").exit_code == 0
    return root


@pytest.mark.parametrize("package", PACKAGES)
def test_a_wrong_type_in_set_is_one_line_naming_the_field(package, tmp_path):
    error = one_line_error(invoke(package)("train", "--set", "seed=abc", "--out", tmp_path / "x"))
    assert "seed expects an integer, got 'abc'" in error
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("package", PACKAGES)
def test_out_naming_a_file_and_an_unwritable_place_are_one_line(package, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("mine")
    assert "is a file" in one_line_error(invoke(package)("train", "--out", tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "mine"

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)  # as a read-only parent directory would (root ignores chmod)
    error = one_line_error(invoke(package)("train", "--out", tmp_path / "ro" / "run"))
    assert "cannot create the run directory" in error and "Permission denied" in error


@pytest.mark.parametrize("package", PACKAGES)
def test_eval_refuses_a_zero_batch_and_a_missing_checkpoint(package, tmp_path):
    run = invoke(package)
    assert "--batch-size must be at least 1" in one_line_error(run("eval", "-c", tmp_path, "--batch-size", "0"))
    assert "without checkpoints/last.pt" in one_line_error(run("eval", "-c", tmp_path))


def test_eval_takes_a_run_directory_and_another_dataset(runs, tmp_path):
    report = tmp_path / "report.json"
    result = invoke("mixmo")("eval", "-c", runs / "mixmo", "--device", "cpu", "--json", report)
    assert result.exit_code == 0, result.output
    written = json.loads(report.read_text())
    assert written["checkpoints"] == [str(runs / "mixmo" / "checkpoints" / "last.pt")]
    assert any(
        note.startswith("brier: ") and "divides it by the number of classes" in note for note in written["notes"]
    )
    result = invoke("realmix")("eval", "-c", runs / "realmix", "--device", "cpu")
    assert result.exit_code == 0 and "error" in result.output
    mismatch = one_line_error(invoke("mixmo")("eval", "-c", runs / "mixmo", "--dataset", "nosuchdata"))
    assert "unknown dataset" in mismatch


def test_eval_of_a_network_whose_classes_do_not_fit_the_dataset(runs, tmp_path):
    """A checkpoint saying cifar100 with 10-class heads: one line, not a shape error from inside the metrics."""
    from mixlab.engine import load_checkpoint, save_checkpoint
    from mixlab.testing import write_cifar100

    state = load_checkpoint(runs / "mixmo" / "checkpoints" / "last.pt")
    state["config"]["dataset"] = "cifar100"
    save_checkpoint(
        tmp_path / "odd.pt", {k: v for k, v in state.items() if k not in ("format", "method")}, method="mixmo"
    )
    write_cifar100(tmp_path / "data", n_train=20, n_test=10)
    error = one_line_error(
        invoke("mixmo")("eval", "-c", tmp_path / "odd.pt", "--data-root", tmp_path / "data", "--device", "cpu")
    )
    assert "the network has 10 classes, cifar100 has 100" in error


def test_resuming_another_packages_run_names_that_package(runs):
    error = one_line_error(invoke("mixshare")("train", "--resume", runs / "mixmo"))
    assert "is a run of `mixmo`, not `mixshare`" in error and "mixmo train --resume" in error


def test_resuming_a_finished_run_keeps_its_summary(runs, tmp_path):
    import shutil

    copy = tmp_path / "done"
    shutil.copytree(runs / "realmix", copy)
    before = json.loads((copy / "summary.json").read_text())
    result = invoke("realmix")("train", "--resume", copy, "--no-progress", "--device", "cpu")
    assert result.exit_code == 0, result.output
    after = json.loads((copy / "summary.json").read_text())
    assert after["final"] == before["final"] and after["final"] is not None and after["best"] == before["best"]
    assert after["steps"] == before["steps"] == 4


def test_a_failed_start_leaves_nothing_and_a_killed_start_can_start_again(tmp_path):
    run = invoke("mixmo")
    error = one_line_error(
        run("train", "--dataset", "cifar10", "--data-root", tmp_path / "empty", "--out", tmp_path / "a")
    )
    assert "CIFAR-10" in error or "cifar10" in error
    assert not (tmp_path / "a").exists()  # the same --out can be used again
    killed = tmp_path / "b"  # what a run killed before its first checkpoint leaves
    (killed / "checkpoints").mkdir(parents=True)
    (killed / "config.json").write_text("{}")
    assert "start it again with --out" in one_line_error(run("train", "--resume", killed))
    assert run("train", *MIXMO, "--out", killed).exit_code == 0
    assert (killed / "summary.json").is_file()


def test_a_batch_larger_than_the_data_is_refused_by_every_family(tmp_path):
    assert "larger than" in one_line_error(invoke("realmix")("train", "--batch-size", "6000", "--out", tmp_path / "r"))
    error = one_line_error(invoke("mixmo")("train", "--batch-size", "6000", "-b", "1", "--out", tmp_path / "m"))
    assert "cannot fill one batch of 6000" in error


def test_a_checkpoint_with_code_in_it_is_refused_without_torchs_advice(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "mixlab-checkpoint/1", "method": "mixmo", "x": Evil()}, tmp_path / "evil.pt")
    error = one_line_error(invoke("mixmo")("eval", "-c", tmp_path / "evil.pt"))
    assert "not loaded" in error and "weights_only" not in error and "\x1b" not in error
