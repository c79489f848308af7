import json
import subprocess
import sys

import pytest
from mixlab.engine import load_checkpoint, save_checkpoint
from mixlab.testing import assert_resume_is_exact, one_line_error


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny Cut-MixMo run on digits shared by the eval tests."""
    from mixmo.cli import app
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("runs") / "cut"
    args = [
        "train",
        "--recipe",
        "digits-wrn16-1-cut-mixmo-b2",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--model",
        "smallcnn-1",
        "--batch-size",
        "128",
        "-b",
        "2",
        "--no-progress",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_a_complete_run_directory(trained):
    out, output = trained
    assert "top1" in output and "nll" in output and "ece" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["num_members"] == 2 and config["config"]["model"] == "smallcnn-1"
    assert config["config"]["batch_repetitions"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"top1", "nll", "ece", "nll_c", "ece_c", "head_top1", "diversity"} <= set(records[-1])
    assert len(records[-1]["head_top1"]) == 2
    state = load_checkpoint(out / "checkpoints" / "last.pt", method="mixmo")
    assert state["step"] == summary["steps"] == 2 * (1437 * 2 // 128)


def test_eval_reports_the_thesis_metrics(trained, run_cli, tmp_path):
    out, _ = trained
    report_path = tmp_path / "report.json"
    diagram = tmp_path / "reliability.png"
    result = run_cli("eval", "-c", out / "checkpoints" / "last.pt", "--device", "cpu", "--json", report_path,
                     "--reliability", diagram)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert diagram.stat().st_size > 0 and "reliability diagram" in result.output
    metrics = json.loads(report_path.read_text())["metrics"]
    for key in ("top1", "top5", "nll", "ece", "brier", "nll_c", "ece_c", "head_top1", "top1_individual", "diversity"):
        assert key in metrics
    final = json.loads((out / "summary.json").read_text())["final"]
    assert metrics["top1"] == pytest.approx(final["top1"])  # the same network, the same test set
    assert "nll_c" in result.output


def test_eval_of_several_checkpoints_is_a_deep_ensemble(trained, run_cli, tmp_path):
    out, _ = trained
    ckpt = out / "checkpoints"
    report_path = tmp_path / "de.json"
    result = run_cli("eval", "-c", ckpt / "last.pt", "-c", ckpt / "best.pt", "--device", "cpu", "--json", report_path)
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["title"].startswith("ensemble of 2") and len(report["metrics"]["head_top1"]) == 2


def test_recipes_lists_paper_numbers(run_cli):
    result = run_cli("recipes", "--dataset", "cifar100")
    assert result.exit_code == 0
    assert "cifar100-wrn28-10-cut-mixmo-b4" in result.output and "85.40" in result.output
    shown = run_cli("recipes", "--show", "tinyimagenet-preactresnet18-3-cut-mixmo-b4")
    assert shown.exit_code == 0 and "70.24" in shown.output and "preactresnet18-3" in shown.output


def test_resume_continues_exactly(run_cli, fast_options, tmp_path):
    assert_resume_is_exact(run_cli, ["train", "--epochs", "2", *fast_options], tmp_path, stop_after=15)


def test_unknown_dataset(run_cli, fast_options, tmp_path):
    assert "unknown dataset" in one_line_error(
        run_cli("train", "--dataset", "imagenet42", *fast_options, "--out", tmp_path / "x")
    )


def test_missing_dataset_directory_names_the_path_and_download(run_cli, fast_options, tmp_path):
    line = one_line_error(
        run_cli(
            "train", "--dataset", "cifar100", "--data-root", tmp_path / "empty", *fast_options, "--out", tmp_path / "x"
        )
    )
    assert str(tmp_path / "empty") in line and "--download" in line
    assert not (tmp_path / "x" / "summary.json").exists()


def test_impossible_options(run_cli, fast_options, tmp_path):
    assert "divisible" in one_line_error(run_cli("train", *fast_options, "-b", "3", "--out", tmp_path / "a"))
    assert "binary_prob" in one_line_error(run_cli("train", *fast_options, "-p", "2", "--out", tmp_path / "b"))
    assert "epochs" in one_line_error(run_cli("train", *fast_options, "--epochs", "0", "--out", tmp_path / "c"))
    assert "unknown recipe" in one_line_error(run_cli("train", "--recipe", "nope", "--out", tmp_path / "d"))
    assert "--device" in one_line_error(run_cli("train", *fast_options, "--device", "tpu9", "--out", tmp_path / "e"))


def test_existing_run_directory_is_not_overwritten(run_cli, fast_options, tmp_path, trained):
    out, _ = trained
    assert "already exists" in one_line_error(run_cli("train", *fast_options, "--epochs", "1", "--out", out))
    assert "drop" in one_line_error(run_cli("train", "--resume", out, "--epochs", "5"))


def test_corrupt_and_foreign_checkpoints(run_cli, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    assert "cannot be read" in one_line_error(run_cli("eval", "-c", corrupt, "--device", "cpu"))
    foreign = save_checkpoint(tmp_path / "foreign.pt", {"model": {}}, method="realmix")
    assert "written by 'realmix'" in one_line_error(run_cli("eval", "-c", foreign, "--device", "cpu"))
    assert "does not exist" in one_line_error(run_cli("eval", "-c", tmp_path / "missing.pt", "--device", "cpu"))


def test_installs_and_runs_without_timm_or_smp():
    code = (
        "import sys, mixmo.cli, mixmo.method, mixmo.evaluation; "
        "bad = [m for m in ('timm', 'segmentation_models_pytorch', 'mixshare', 'mixvit') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    subprocess.run([sys.executable, "-m", "mixmo", "--help"], check=True, capture_output=True)


def test_train_and_eval_at_another_image_size(run_cli, fast_options, tmp_path):
    out = tmp_path / "small"
    assert run_cli("train", "--steps", "2", "--set", "image_size=16", *fast_options, "--out", out).exit_code == 0
    assert json.loads((out / "config.json").read_text())["config"]["image_size"] == 16
    report = tmp_path / "report.json"
    shown = run_cli("eval", "-c", out / "checkpoints" / "last.pt", "--device", "cpu", "--json", report)
    assert shown.exit_code == 0, shown.output
    final = json.loads((out / "summary.json").read_text())["final"]
    assert json.loads(report.read_text())["metrics"]["nll"] == pytest.approx(final["nll"])  # the test set at 16 px
