import json
import subprocess
import sys

import pytest
from mixlab.engine import load_checkpoint, save_checkpoint
from mixlab.testing import assert_resume_is_exact, one_line_error
from PIL import Image


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny MixShare run (partial unmixing) on digits, shared by the eval/analyze tests."""
    from mixshare.cli import app
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("runs") / "partial"
    args = [
        "train",
        "--recipe",
        "digits-wrn16-1-mixshare-partial",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--model",
        "smallcnn-1",
        "--batch-size",
        "256",
        "--no-progress",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_a_complete_run_directory(trained):
    out, output = trained
    assert "share_rate" in output and "top1" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 1
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["unmix"], config["unmix_fraction"], config["encoder_init"], config["model"]) == (
        "partial",
        0.25,
        "identical",
        "smallcnn-1",
    )
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"top1", "top1_individual", "share_rate", "nll", "ece", "head_top1"} <= set(record)
    assert 0.0 <= record["share_rate"] <= 100.0
    state = load_checkpoint(out / "checkpoints" / "last.pt", method="mixshare")
    assert state["step"] == summary["steps"] == 1437 * 2 // 256


def test_eval_reports_accuracies_and_the_share_rate(trained, run_cli, tmp_path):
    out, _ = trained
    report_path = tmp_path / "report.json"
    result = run_cli("eval", "-c", out / "checkpoints" / "last.pt", "--device", "cpu", "--json", report_path)
    assert result.exit_code == 0, result.output
    metrics = json.loads(report_path.read_text())["metrics"]
    final = json.loads((out / "summary.json").read_text())["final"]
    assert metrics["top1"] == pytest.approx(final["top1"])
    assert metrics["top1_individual"] == pytest.approx(final["top1_individual"])
    assert metrics["share_rate"] == pytest.approx(final["share_rate"])
    assert "share_rate" in result.output


def test_analyze_writes_numbers_and_a_plot(trained, run_cli, tmp_path):
    out, _ = trained
    result = run_cli("analyze", "-c", out / "checkpoints" / "last.pt", "--out", tmp_path / "an")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "an" / "analysis.json").read_text())
    final = json.loads((out / "summary.json").read_text())["final"]
    assert report["share_rate"] == pytest.approx(final["share_rate"])
    assert len(report["encoder_channel_influence"]) == 2 and len(report["encoder_channel_influence"][0]) == 16
    assert len(report["head_feature_influence"][0]) == 32  # smallcnn-1: D = 32
    for key in ("share_rate_unnormalized", "share_rate_mean_ratio", "encoder_share_rate", "active_filters"):
        assert key in report
    with Image.open(tmp_path / "an" / "analysis.png") as image:
        assert image.format == "PNG" and image.size == (1000, 560)
    core = report["core_features"]  # A.6.3: smallcnn-1's two stages, 16 and 32 channels
    assert core["fixed_input"] == "first" and core["images"] == 360
    assert [(s["stage"], s["channels"]) for s in core["stages"]] == [("block1", 16), ("block2", 32)]
    for stage in core["stages"]:
        assert len(stage["importance"]) == 2 and len(stage["importance"][0]) == stage["channels"]
        assert min(min(row) for row in stage["importance"]) >= 0 and 0 <= stage["share_rate"] <= 100
        assert sum(stage["dominant_counts"]) == stage["channels"]
    assert "core block2 (32 ch.): share_rate" in result.output
    with Image.open(tmp_path / "an" / "core_features.png") as image:
        assert image.format == "PNG" and image.size == (1000, 44 + 2 * 220)


def test_analyze_core_options(trained, run_cli, tmp_path):
    out, _ = trained
    checkpoint = out / "checkpoints" / "last.pt"
    result = run_cli(
        "analyze", "-c", checkpoint, "--out", tmp_path / "m", "--fixed-input", "mean", "--max-images", "50"
    )
    assert result.exit_code == 0, result.output
    core = json.loads((tmp_path / "m" / "analysis.json").read_text())["core_features"]
    assert (core["fixed_input"], core["images"]) == ("mean", 50)
    skipped = run_cli("analyze", "-c", checkpoint, "--out", tmp_path / "n", "--no-core")
    assert skipped.exit_code == 0, skipped.output
    assert "core_features" not in json.loads((tmp_path / "n" / "analysis.json").read_text())
    assert not (tmp_path / "n" / "core_features.png").exists()
    bad = run_cli("analyze", "-c", checkpoint, "--out", tmp_path / "o", "--fixed-input", "middle")
    assert "--fixed-input must be" in one_line_error(bad)


def test_recipes_lists_table_3_6(run_cli):
    result = run_cli("recipes", "--dataset", "cifar100")
    assert result.exit_code == 0
    for text in ("cifar100-wrn28-2-mixshare-fadeout", "cifar100-wrn28-5-unmix-kernel-init", "74.8 ± 0.2", "62.7 ± 8.3"):
        assert text in result.output
    shown = run_cli("recipes", "--show", "cifar100-wrn28-5-mixshare-partial")
    assert shown.exit_code == 0 and "79.9" in shown.output and '"unmix_fraction": 0.25' in shown.output


def test_resume_continues_exactly(run_cli, fast_options, tmp_path):
    """Fadeout with a per-step schedule, so rho itself depends on where the resumed run starts."""
    assert_resume_is_exact(
        run_cli,
        ["train", "--epochs", "1", "--fadeout-epochs", "0.5", "--set", "fadeout_granularity=step", *fast_options],
        tmp_path,
        stop_after=4,
    )


def test_one_line_errors(run_cli, fast_options, tmp_path):
    assert "unknown dataset" in one_line_error(
        run_cli("train", "--dataset", "imagenet42", *fast_options, "--out", tmp_path / "a")
    )
    assert "binary_prob=1" in one_line_error(
        run_cli("train", *fast_options, "--unmix", "full", "-p", "0.5", "--out", tmp_path / "b")
    )
    assert "unmix must be" in one_line_error(
        run_cli("train", *fast_options, "--unmix", "half", "--out", tmp_path / "c")
    )
    assert "unknown recipe" in one_line_error(run_cli("train", "--recipe", "nope", "--out", tmp_path / "d"))
    assert "no paper recipe" in one_line_error(
        run_cli("train", "--dataset", "cifar10", *fast_options, "--out", tmp_path / "e")
    )
    foreign = save_checkpoint(tmp_path / "mixmo.pt", {"model": {}}, method="mixmo")
    assert "written by 'mixmo'" in one_line_error(run_cli("eval", "-c", foreign, "--device", "cpu"))
    assert "written by 'mixmo'" in one_line_error(run_cli("analyze", "-c", foreign))
    assert "does not exist" in one_line_error(run_cli("analyze", "-c", tmp_path / "missing.pt"))
    assert not (tmp_path / "b" / "summary.json").exists()


def test_does_not_import_mixmo():
    code = (
        "import sys, mixshare.cli, mixshare.method, mixshare.analysis; "
        "bad = [m for m in ('mixmo', 'timm', 'segmentation_models_pytorch') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
