"""`realmix train | eval | recipes` as a user runs them, on the built-in digits."""

from __future__ import annotations

import dataclasses
import json

import torch
from mixlab.engine import load_checkpoint
from mixlab.testing import assert_resume_is_exact, one_line_error
from realmix.method import realmix_method
from realmix.recipes import BOOK


def test_train_default_recipe_writes_split_metrics_and_the_median(run_cli, fast_options, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", *fast_options, "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 4
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["variant"] == "realmix" and config["dataset"] == "digits" and config["extend_copies"] == 2
    split = json.loads((out / "split.json").read_text())
    assert len(split["labeled"]) == 100 and not set(split["labeled"]) & set(split["unlabeled"])
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert summary["final"]["median_error"] == 100 - summary["final"]["median_top1"]


def test_every_baseline_runs_through_the_same_command(run_cli, fast_options, tmp_path):
    for variant in ("supervised", "mean-teacher", "mixmatch", "fixmatch"):
        out = tmp_path / variant
        options = fast_options + (
            ["--set", "randaugment_ops=1", "--set", "unlabeled_ratio=1"] if variant == "fixmatch" else []
        )
        result = run_cli("train", "--variant", variant, *options, "--out", out)
        assert result.exit_code == 0, result.output
        assert json.loads((out / "config.json").read_text())["config"]["variant"] == variant


def test_resume_continues_exactly_including_the_ema(run_cli, fast_options, tmp_path):
    assert_resume_is_exact(run_cli, ["train", *fast_options], tmp_path, stop_after=3)
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["extra"]
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")["extra"]
    assert a["history"] == b["history"]
    assert all(torch.equal(a["ema"]["module"][k], b["ema"]["module"][k]) for k in a["ema"]["module"])


def test_eval_scores_the_ema_model_on_the_runs_evaluation_set(run_cli, fast_options, tmp_path):
    out = tmp_path / "mm"
    assert (
        run_cli(
            "train",
            *fast_options,
            "--mismatch",
            "50",
            "--labels",
            "60",
            "--set",
            "labeled_classes=[2,3,4,5,6,7]",
            "--out",
            out,
        ).exit_code
        == 0
    )
    report = tmp_path / "eval.json"
    result = run_cli("eval", "--checkpoint", out / "checkpoints" / "last.pt", "--device", "cpu", "--json", report)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert "labeled classes" in data["title"]
    final = json.loads((out / "summary.json").read_text())["final"]
    assert abs(data["metrics"]["top1"] - final["top1"]) < 1e-6


def test_bad_input_is_a_one_line_error(run_cli, fast_options, tmp_path):
    assert "evenly" in one_line_error(run_cli("train", *fast_options, "--labels", "55", "--out", tmp_path / "a"))
    assert "--variant" in one_line_error(run_cli("train", "--variant", "vat", "--out", tmp_path / "b"))
    assert "labeled_classes" in one_line_error(
        run_cli("train", *fast_options, "--set", "labeled_classes=[2,12]", "--out", tmp_path / "c")
    )
    assert "init_checkpoint" in one_line_error(
        run_cli(
            "train",
            *fast_options,
            "--recipe",
            "cifar10-250-realmix-tl",
            "--dataset",
            "digits",
            "--labels",
            "50",
            "--out",
            tmp_path / "d",
        )
    )
    assert not (tmp_path / "a" / "summary.json").exists()


def test_transfer_learning_loads_everything_but_the_head(run_cli, fast_options, tmp_path):
    source = tmp_path / "source"
    assert run_cli("train", *fast_options, "--variant", "supervised", "--out", source).exit_code == 0
    weights = load_checkpoint(source / "checkpoints" / "last.pt")["model"]
    config = dataclasses.replace(
        BOOK.get("digits-100-realmix").config, extend_copies=2, init_checkpoint=str(source / "checkpoints" / "last.pt")
    )
    torch.manual_seed(1)
    model = realmix_method(config).build_model(10)
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in weights.items() if not k.startswith("head."))
    assert not torch.equal(own["head.weight"], weights["head.weight"])  # re-initialised for the new task
    out = tmp_path / "tl"
    result = run_cli(
        "train",
        *fast_options,
        "--set",
        f"init_checkpoint={source / 'checkpoints' / 'last.pt'}",
        "--stop-after-steps",
        "1",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output


def test_recipes_lists_the_paper_numbers(run_cli):
    result = run_cli("recipes", "--dataset", "cifar10")
    assert result.exit_code == 0 and "cifar10-250-realmix" in result.output and "9.79" in result.output
    table = run_cli("recipes", "--paper", "1")
    assert "16.99" in table.output and "| Mean Teacher |" in table.output


def test_a_short_run_through_the_ssl_loop_learns_digits(run_cli, tmp_path):
    """60 steps through the SSL loop (streams, EMA evaluation) take the EMA model far above chance (10%)."""
    out = tmp_path / "learn"
    result = run_cli(
        "train",
        "--variant",
        "supervised",
        "--labels",
        "1000",
        "--steps",
        "60",
        "--eval-every",
        "60",
        "--batch-size",
        "32",
        "--no-progress",
        "--device",
        "cpu",
        "--set",
        "ema_decay=0.8",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["final"]["top1"] > 20.0  # 25.8 on the reference CPU
