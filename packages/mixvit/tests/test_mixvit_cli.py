"""`mixvit train | eval | recipes` on the built-in digits data with a tiny transformer."""

import json

import pytest
from mixlab.engine import load_checkpoint, save_checkpoint
from mixlab.testing import assert_resume_is_exact, one_line_error
from mixvit.recipes import BOOK

# A tiny but real configuration: a 1-block ConViT of width 32 on 8x8-pixel patches (16 tokens), large batches,
# no per-image AutoAugment, so an epoch on `digits` is about 17 steps of a few milliseconds.
TINY = [
    "--model",
    "convit1-32",
    "--set",
    "patch_size=8",
    "--set",
    "autoaugment=none",
    "--batch-size",
    "240",
    "--no-progress",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny MixViT-embedding run on digits (the default recipe, no --dataset) with the thesis's simultaneous
    CutMix + MixUp switched on, shared by the eval tests."""
    from mixvit.cli import app
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("runs") / "mixvit"
    args = ["train", "--epochs", "1", "--set", "msda=simultaneous", "--out", str(out), *TINY]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_a_complete_run_directory(trained):
    out, output = trained
    assert "top1" in output and "top1_individual" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 1
    config = json.loads((out / "config.json").read_text())["config"]
    default = BOOK.default("digits").config
    assert (config["dataset"], config["source_attribution"], config["num_members"], config["model"]) == (
        "digits",
        "embedding",
        2,
        "convit1-32",
    )
    assert config["mix_alpha"] == default.mix_alpha and config["batch_repetitions"] == default.batch_repetitions
    assert config["msda"] == "simultaneous" and config["epochs"] == 1
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"top1", "top1_individual", "head_top1", "nll", "ece", "diversity"} <= set(record)
    assert len(record["head_top1"]) == 2 and 0 <= record["train"]["msda_lambda"] <= 1
    state = load_checkpoint(out / "checkpoints" / "last.pt", method="mixvit")
    assert state["step"] == summary["steps"] == 1437 * 3 // 240
    assert "attribution.embedding" in state["model"] and state["model"]["attribution.embedding"].shape == (2, 32)


def test_eval_reproduces_the_final_metrics_and_switches_inference(trained, run_cli, tmp_path):
    out, _ = trained
    report_path = tmp_path / "report.json"
    result = run_cli("eval", "-c", out / "checkpoints" / "last.pt", "--device", "cpu", "--json", report_path)
    assert result.exit_code == 0, result.output
    metrics = json.loads(report_path.read_text())["metrics"]
    final = json.loads((out / "summary.json").read_text())["final"]
    assert metrics["top1"] == pytest.approx(final["top1"]) and metrics["head_top1"] == pytest.approx(final["head_top1"])
    single = run_cli(
        "eval", "-c", out / "checkpoints" / "last.pt", "--device", "cpu", "--inference", "single", "--json", report_path
    )
    assert single.exit_code == 0 and "single inference" in single.output
    single_metrics = json.loads(report_path.read_text())["metrics"]
    assert single_metrics["top1"] == pytest.approx(final["head_top1"][0]) and "head_top1" not in single_metrics
    for scheme in ("sum", "alternating"):
        assert (
            run_cli("eval", "-c", out / "checkpoints" / "last.pt", "--device", "cpu", "--inference", scheme).exit_code
            == 0
        )


def test_recipes_list_the_thesis_tables(run_cli):
    result = run_cli("recipes", "--table", "4.6")
    assert result.exit_code == 0
    for text in ("cifar100-convit-mixvit-all-tokens", "81.5 ± 0.2", "x1.1", "x2", "82.4 ± 0.1"):
        assert text in result.output
    assert "tinyimagenet" not in result.output
    result = run_cli("recipes", "--dataset", "tinyimagenet")
    assert "tinyimagenet-cait-xs24-mixvit-encoding" in result.output and "70.9 ± 0.2" in result.output
    shown = run_cli("recipes", "--show", "cifar100-convit-mixmo-separate")
    assert shown.exit_code == 0 and '"network": "multi_encoder"' in shown.output and "76.4" in shown.output


def test_resume_continues_exactly_through_the_whole_input_phase(run_cli, tmp_path):
    """The last half of training mixes whole-input batches in at random: the resumed run must draw the same."""
    args = ["train", "--epochs", "1", "--set", "whole_input_start=0.5", *TINY]
    assert_resume_is_exact(run_cli, args, tmp_path, stop_after=12)


@pytest.mark.parametrize(
    "extra",
    [
        ["--network", "multi_encoder", "--inference", "separate"],  # Table 4.1's naive MixMo transformer
        ["--input-mixing", "all_tokens", "--attribution", "encoding", "--attribution-layer", "0"],
    ],
)
def test_baselines_and_ablations_train(run_cli, tmp_path, extra):
    out = tmp_path / "run"
    result = run_cli("train", "--epochs", "1", "--stop-after-steps", "3", "--out", out, *TINY, *extra)
    assert result.exit_code == 0, result.output
    state = load_checkpoint(out / "checkpoints" / "last.pt", method="mixvit")
    assert state["step"] == 3
    if extra[1] == "multi_encoder":
        assert "encoders.1.proj.weight" in state["model"]
    else:
        assert state["model"]["attribution.weight"].shape == (2, 32, 32)


def test_one_line_errors(run_cli, tmp_path):
    assert "unknown dataset" in one_line_error(
        run_cli("train", "--dataset", "imagenet42", *TINY, "--out", tmp_path / "a")
    )
    tiny = one_line_error(
        run_cli("train", "--dataset", "tinyimagenet", "--data-root", tmp_path / "empty", *TINY, "--out", tmp_path / "b")
    )
    assert "tiny-imagenet-200" in tiny and "--download" in tiny
    assert "source_attribution must be" in one_line_error(
        run_cli("train", "--attribution", "tokens", *TINY, "--out", tmp_path / "c")
    )
    assert "attribution_layer must lie in 0..1" in one_line_error(
        run_cli("train", "--attribution-layer", "5", *TINY, "--out", tmp_path / "d")
    )
    assert "infers by" in one_line_error(
        run_cli("train", "--network", "multi_encoder", "--inference", "alternating", *TINY, "--out", tmp_path / "e")
    )
    assert "unknown recipe" in one_line_error(run_cli("train", "--recipe", "nope", "--out", tmp_path / "f"))
    assert "msda given both as an option and with --set" in one_line_error(
        run_cli("train", "--msda", "none", "--set", "msda=none", *TINY, "--out", tmp_path / "g")
    )
    foreign = save_checkpoint(tmp_path / "mixmo.pt", {"model": {}}, method="mixmo")
    assert "written by 'mixmo'" in one_line_error(run_cli("eval", "-c", foreign, "--device", "cpu"))
    assert not (tmp_path / "c" / "summary.json").exists()
